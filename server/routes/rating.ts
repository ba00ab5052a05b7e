// The rater's side: projects to rate, the next comparison (leased), submit, skip, undo, progress.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { HttpError } from '../../core/errors.js';
import { principalOf } from '../plugins/auth.js';
import { ErrorSchema, IdParams } from '../../core/schemas/common.js';
import {
  IdempotencyHeaders,
  NextAssignmentBody,
  NextAssignmentResult,
  RaterProgress,
  RaterProjectList,
  RatingContext,
  SkipBody,
  SubmitBody,
  SubmitResult,
  UndoResult,
} from '../../core/schemas/rating.js';
import { labelSchemaOf, preparingOf } from '../../core/services/project-settings.js';

const rating: FastifyPluginAsyncTypebox = async (app) => {
  /**
   * Judgments and skips share one budget per rater (counted after sign-in: per account, not per
   * address). Simulated raters, driven by the product's own CLI and marked everywhere, are not limited.
   */
  const submissionBudget = app.createRateLimit({
    timeWindow: 60_000,
    keyGenerator: (request) => `submissions:${request.principal?.user.id ?? request.ip}`,
    max: (request) => (request.principal?.user.simulated ? 1_000_000 : app.config.submitRateLimitPerMinute),
  });
  const limitSubmissions = async (request: FastifyRequest, reply: FastifyReply) => {
    const budget = await submissionBudget(request);
    if (!budget.isAllowed && budget.isExceeded) {
      void reply.header('retry-after', budget.ttlInSeconds);
      throw new HttpError(
        429,
        `Too many judgments in a minute; try again in ${budget.ttlInSeconds} s.`,
        'RATE_LIMITED',
      );
    }
  };

  app.get(
    '/api/rating/projects',
    {
      config: { access: 'authenticated' },
      schema: {
        operationId: 'listRatingProjects',
        tags: ['rating'],
        summary: 'Projects I rate (admins: every active project), with my progress',
        response: { 200: RaterProjectList },
      },
    },
    async (request) => {
      const projects = await app.services.rating.projectsToRate(principalOf(request));
      return projects.map(({ project, progress }) => ({
        id: project.id,
        name: project.name,
        description: project.description,
        isDemo: project.isDemo,
        progress,
        preparing: preparingOf(project),
      }));
    },
  );

  app.get(
    '/api/projects/:id/rating-context',
    {
      config: { access: 'authenticated' },
      schema: {
        operationId: 'getRatingContext',
        tags: ['rating'],
        summary: 'Guidelines and label schema for raters',
        params: IdParams,
        response: { 200: RatingContext, 404: ErrorSchema },
      },
    },
    async (request) => {
      const project = await app.services.projects.ratable(principalOf(request), request.params.id);
      return {
        projectId: project.id,
        name: project.name,
        guidelines: project.guidelines,
        labelSchema: labelSchemaOf(project),
      };
    },
  );

  app.post(
    '/api/projects/:id/leases/next',
    {
      config: { access: 'authenticated', formerly: '/api/projects/:id/assignments/next' },
      schema: {
        operationId: 'leaseNextComparison',
        tags: ['rating'],
        summary: 'The next comparison for me (a lease that expires); call again with exclude to prefetch',
        params: IdParams,
        body: NextAssignmentBody,
        response: { 200: NextAssignmentResult, 404: ErrorSchema },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const project = await app.services.projects.ratable(principal, request.params.id);
      return { assignment: await app.services.rating.next(principal, project, request.body.exclude ?? []) };
    },
  );

  app.post(
    '/api/leases/:id/submit',
    {
      config: { access: 'authenticated', formerly: '/api/assignments/:id/submit' },
      preHandler: limitSubmissions,
      schema: {
        operationId: 'submitJudgment',
        tags: ['rating'],
        summary: 'Submit my judgment of the comparison I lease; the Idempotency-Key makes retries safe',
        params: IdParams,
        headers: IdempotencyHeaders,
        body: SubmitBody,
        response: {
          201: SubmitResult,
          400: ErrorSchema,
          403: ErrorSchema,
          404: ErrorSchema,
          409: ErrorSchema,
          422: ErrorSchema,
          429: ErrorSchema,
        },
      },
    },
    async (request, reply) => {
      const result = await app.services.rating.submit(
        principalOf(request),
        request.params.id,
        request.body,
        request.headers['idempotency-key'],
      );
      return reply.status(201).send(result);
    },
  );

  app.post(
    '/api/leases/:id/skip',
    {
      config: { access: 'authenticated', formerly: '/api/assignments/:id/skip' },
      preHandler: limitSubmissions,
      schema: {
        operationId: 'skipLease',
        tags: ['rating'],
        summary: 'Skip the comparison I lease, with a reason',
        params: IdParams,
        body: SkipBody,
        response: {
          204: Type.Null(),
          403: ErrorSchema,
          404: ErrorSchema,
          409: ErrorSchema,
          429: ErrorSchema,
        },
      },
    },
    async (request, reply) => {
      await app.services.rating.skip(principalOf(request), request.params.id, request.body.reason);
      return reply.status(204).send(null);
    },
  );

  app.post(
    '/api/judgments/:id/undo',
    {
      config: { access: 'authenticated', formerly: '/api/preferences/:id/undo' },
      schema: {
        operationId: 'undoJudgment',
        tags: ['rating'],
        summary: 'Take back my last judgment within the undo window',
        params: IdParams,
        response: { 200: UndoResult, 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema },
      },
    },
    async (request) => ({
      assignment: await app.services.rating.undo(principalOf(request), request.params.id),
    }),
  );

  app.get(
    '/api/projects/:id/progress',
    {
      config: { access: 'authenticated' },
      schema: {
        operationId: 'getRatingProgress',
        tags: ['rating'],
        summary: 'My progress in a project',
        params: IdParams,
        response: { 200: RaterProgress, 404: ErrorSchema },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const project = await app.services.projects.ratable(principal, request.params.id);
      return app.services.rating.progress(principal, project.id);
    },
  );
};
export default rating;
