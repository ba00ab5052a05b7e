// Training rounds (admins launch and cancel; researchers watch) and policy versions (promote,
// roll back).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { principalOf } from '../plugins/auth.js';
import { ErrorSchema, IdParams } from '../../core/schemas/common.js';
import { PromotionEvidenceSchema } from '../../core/schemas/promotion.js';
import {
  CreateRoundBody,
  PolicyVersionSchema,
  RoundEventSchema,
  RoundEventsQuery,
  RoundSchema,
} from '../../core/schemas/rounds.js';
import { toRoundDto } from '../../core/services/rounds.js';

const ADMIN = ['ADMIN'] as const;
const STAFF = ['ADMIN', 'RESEARCHER'] as const;

const rounds: FastifyPluginAsyncTypebox = async (app) => {
  const actor = (request: { ip: string }) => ({ id: principalOf(request as never).user.id, ip: request.ip });

  app.get(
    '/api/projects/:id/rounds',
    {
      config: { access: STAFF },
      schema: {
        operationId: 'listRounds',
        tags: ['rounds'],
        summary: 'A project’s training rounds, newest first',
        params: IdParams,
        response: { 200: Type.Array(RoundSchema) },
      },
    },
    async (request) => {
      const project = await app.services.projects.visible(principalOf(request), request.params.id);
      return app.services.rounds.list(project.id);
    },
  );

  app.post(
    '/api/projects/:id/rounds',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'launchRound',
        tags: ['rounds'],
        summary: 'Launch a training round from the promoted policy version',
        params: IdParams,
        body: CreateRoundBody,
        response: { 201: RoundSchema, 404: ErrorSchema, 409: ErrorSchema },
      },
    },
    async (request, reply) => {
      const project = await app.services.projects.visible(principalOf(request), request.params.id);
      // An external engine's round waits for its workers; the built-in trainer never takes it.
      const launched =
        request.body.engine && request.body.engine !== 'builtin'
          ? await app.services.engineRounds.launch(project, request.body, actor(request))
          : await app.services.rounds.launch(project, request.body, actor(request));
      return reply.status(201).send(launched);
    },
  );

  app.get(
    '/api/rounds/:id',
    {
      config: { access: STAFF },
      schema: {
        operationId: 'getRound',
        tags: ['rounds'],
        summary: 'A round: status, phase, progress, metrics',
        params: IdParams,
        response: { 200: RoundSchema, 404: ErrorSchema },
      },
    },
    async (request) => toRoundDto(await app.services.rounds.get(request.params.id)),
  );

  app.get(
    '/api/rounds/:id/events',
    {
      config: { access: STAFF },
      schema: {
        operationId: 'listRoundEvents',
        tags: ['rounds'],
        summary: 'A round’s live log (loss points, phases); poll with `after`',
        params: IdParams,
        querystring: RoundEventsQuery,
        response: { 200: Type.Array(RoundEventSchema), 404: ErrorSchema },
      },
    },
    async (request) => {
      const round = await app.services.rounds.get(request.params.id);
      const after = request.query.after === undefined ? undefined : BigInt(request.query.after);
      return app.services.rounds.events(round.id, after, request.query.limit ?? 1000);
    },
  );

  app.post(
    '/api/rounds/:id/cancel',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'cancelRound',
        tags: ['rounds'],
        summary: 'Cancel a queued or running round',
        params: IdParams,
        response: { 200: RoundSchema, 404: ErrorSchema, 409: ErrorSchema },
      },
    },
    async (request) => app.services.rounds.cancel(request.params.id, actor(request)),
  );

  app.get(
    '/api/projects/:id/policy-versions',
    {
      config: { access: STAFF },
      schema: {
        operationId: 'listPolicyVersions',
        tags: ['rounds'],
        summary: 'Policy versions with their lineage and metrics',
        params: IdParams,
        response: { 200: Type.Array(PolicyVersionSchema) },
      },
    },
    async (request) =>
      app.services.rounds.versions(
        await app.services.projects.visible(principalOf(request), request.params.id),
      ),
  );

  app.get(
    '/api/projects/:id/promotion',
    {
      config: { access: STAFF },
      schema: {
        operationId: 'getPromotionEvidence',
        tags: ['rounds'],
        summary: 'Both promotion rules for every version with a parent, side by side',
        description:
          'Per version: raters’ win rate against its parent on their comparisons (wins + ½ ties and both-bad, over votes; human votes only unless the project counts simulated ones) with its 95% interval, the votes it rests on and what the human rule decides; the reward model’s win rate from the round against 0.5 + its margin and what that rule decides; and the decision of the project’s active rule.',
        params: IdParams,
        response: { 200: PromotionEvidenceSchema, 404: ErrorSchema },
      },
    },
    async (request) =>
      app.services.rounds.promotion(
        await app.services.projects.visible(principalOf(request), request.params.id),
      ),
  );

  app.post(
    '/api/policy-versions/:id/promote',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'promotePolicyVersion',
        tags: ['rounds'],
        summary: 'Make this version answer new prompts (promote, or roll back to an earlier one)',
        params: IdParams,
        response: { 200: PolicyVersionSchema, 404: ErrorSchema, 409: ErrorSchema },
      },
    },
    async (request) => app.services.rounds.promote(request.params.id, actor(request)),
  );
};
export default rounds;
