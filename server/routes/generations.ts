// Generation jobs (admins): a project's prompts answered by its external versions' endpoints;
// start, list, watch with failures per prompt, cancel.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { principalOf } from '../plugins/auth.js';
import { ErrorSchema, IdParams } from '../../core/schemas/common.js';
import {
  CreateGenerationBody,
  GenerationDetailSchema,
  GenerationSchema,
} from '../../core/schemas/generations.js';

const ADMIN = ['ADMIN'] as const;

const generations: FastifyPluginAsyncTypebox = async (app) => {
  const actor = (request: { ip: string }) => ({ id: principalOf(request as never).user.id, ip: request.ip });

  app.get(
    '/api/projects/:id/generations',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'listGenerations',
        tags: ['generations'],
        summary: 'A project’s generation jobs, newest first',
        params: IdParams,
        response: { 200: Type.Array(GenerationSchema), 404: ErrorSchema },
      },
    },
    async (request) => {
      const project = await app.services.projects.visible(principalOf(request), request.params.id);
      return app.services.generations.list(project.id);
    },
  );

  app.post(
    '/api/projects/:id/generations',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'createGeneration',
        tags: ['generations'],
        summary: 'Generate responses: selected prompts × external versions × samples per prompt',
        description:
          'Each (prompt, version, sample index) gets at most one response: a response already stored for one (by an earlier job) counts as done and is not asked for again.',
        params: IdParams,
        body: CreateGenerationBody,
        response: { 201: GenerationSchema, 400: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema },
      },
    },
    async (request, reply) => {
      const project = await app.services.projects.visible(principalOf(request), request.params.id);
      return reply
        .status(201)
        .send(await app.services.generations.create(project, request.body, actor(request)));
    },
  );

  app.get(
    '/api/generations/:id',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'getGeneration',
        tags: ['generations'],
        summary: 'A generation job: status, counts and failures per prompt',
        params: IdParams,
        response: { 200: GenerationDetailSchema, 404: ErrorSchema },
      },
    },
    async (request) => app.services.generations.detail(request.params.id),
  );

  app.post(
    '/api/generations/:id/cancel',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'cancelGeneration',
        tags: ['generations'],
        summary: 'Cancel a queued or running generation job (requests in flight are aborted)',
        params: IdParams,
        response: { 200: GenerationSchema, 404: ErrorSchema, 409: ErrorSchema },
      },
    },
    async (request) => app.services.generations.cancel(request.params.id, actor(request)),
  );
};
export default generations;
