// External policy versions (admins): models behind OpenAI-compatible endpoints, registered,
// edited, tested and deleted. API keys are accepted here and never answered.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { principalOf } from '../plugins/auth.js';
import { ErrorSchema, IdParams } from '../../core/schemas/common.js';
import {
  CreateEndpointBody,
  EndpointTestResultSchema,
  ModelVersionSchema,
  TestDraftEndpointBody,
  UpdateEndpointBody,
} from '../../core/schemas/endpoints.js';

const ADMIN = ['ADMIN'] as const;

const endpoints: FastifyPluginAsyncTypebox = async (app) => {
  const actor = (request: { ip: string }) => ({ id: principalOf(request as never).user.id, ip: request.ip });

  app.get(
    '/api/projects/:id/endpoints',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'listEndpoints',
        tags: ['models'],
        summary:
          'A project’s policy versions (built-in, external, imported) with their endpoints, newest first',
        description:
          'External versions show their base URL, model, settings and whether an API key is stored; never the key.',
        params: IdParams,
        response: { 200: Type.Array(ModelVersionSchema), 404: ErrorSchema },
      },
    },
    async (request) => {
      const project = await app.services.projects.visible(principalOf(request), request.params.id);
      return app.services.endpoints.list(project);
    },
  );

  app.post(
    '/api/projects/:id/endpoints',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'createEndpoint',
        tags: ['models'],
        summary: 'Register an external version: an OpenAI-compatible chat-completions endpoint',
        description:
          'The base URL must pass the outbound guard (no loopback, private or link-local address unless OUTBOUND_ALLOW_HOSTS allows it). The API key is stored encrypted.',
        params: IdParams,
        body: CreateEndpointBody,
        response: { 201: ModelVersionSchema, 404: ErrorSchema, 409: ErrorSchema },
      },
    },
    async (request, reply) => {
      const project = await app.services.projects.visible(principalOf(request), request.params.id);
      return reply
        .status(201)
        .send(await app.services.endpoints.create(project, request.body, actor(request)));
    },
  );

  app.patch(
    '/api/endpoints/:id',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'updateEndpoint',
        tags: ['models'],
        summary: 'Edit an external version (apiKey: a new one replaces, null removes, left out keeps)',
        params: IdParams,
        body: UpdateEndpointBody,
        response: { 200: ModelVersionSchema, 404: ErrorSchema, 409: ErrorSchema },
      },
    },
    async (request) => app.services.endpoints.update(request.params.id, request.body, actor(request)),
  );

  app.delete(
    '/api/endpoints/:id',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'deleteEndpoint',
        tags: ['models'],
        summary: 'Delete an external version that has no responses and is not promoted',
        params: IdParams,
        response: { 204: Type.Null(), 404: ErrorSchema, 409: ErrorSchema },
      },
    },
    async (request, reply) => {
      await app.services.endpoints.remove(request.params.id, actor(request));
      return reply.status(204).send(null);
    },
  );

  app.post(
    '/api/endpoints/:id/test',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'testEndpoint',
        tags: ['models'],
        summary:
          'Test an external version’s connection: one short completion, its latency and answer, or the error',
        description:
          'An endpoint that fails answers 200 with ok false and its message (the API key removed).',
        params: IdParams,
        response: { 200: EndpointTestResultSchema, 404: ErrorSchema, 409: ErrorSchema },
      },
    },
    async (request) => app.services.endpoints.test(request.params.id, actor(request)),
  );

  app.post(
    '/api/endpoints/test',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'testEndpointDraft',
        tags: ['models'],
        summary: 'Test endpoint settings before saving them',
        description: 'With versionId and no apiKey, that version’s stored key is used.',
        body: TestDraftEndpointBody,
        response: { 200: EndpointTestResultSchema, 404: ErrorSchema },
      },
    },
    async (request) => app.services.endpoints.testDraft(request.body, actor(request)),
  );
};
export default endpoints;
