// API tokens for scripts: researchers and admins create them; every user sees and revokes their own
// (a role change revokes a user's tokens, and a demoted user can still see and clean up the list).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { forbidden } from '../../core/errors.js';
import { principalOf } from '../plugins/auth.js';
import { ErrorSchema, IdParams } from '../../core/schemas/common.js';
import { ApiTokenList, CreatedToken, CreateTokenBody } from '../../core/schemas/tokens.js';
import { toApiTokenDto } from '../../core/services/auth.js';

const CREATE = ['ADMIN', 'RESEARCHER'] as const;

const tokens: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/api/tokens',
    {
      config: { access: 'authenticated' },
      schema: {
        operationId: 'listTokens',
        tags: ['tokens'],
        summary: 'My API tokens',
        response: { 200: ApiTokenList },
      },
    },
    async (request) =>
      (await app.services.auth.listApiTokens(principalOf(request).user.id)).map(toApiTokenDto),
  );

  app.post(
    '/api/tokens',
    {
      config: { access: CREATE },
      schema: {
        operationId: 'createToken',
        tags: ['tokens'],
        summary: 'Create an API token; it is shown once (scope training: admins only)',
        body: CreateTokenBody,
        response: { 201: CreatedToken },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      // Training tokens take rounds and publish versions: an admin's decision, like launching one.
      if (request.body.scope === 'training' && principal.user.role !== 'ADMIN')
        throw forbidden('Only admins create training tokens.');
      const { apiToken, token } = await app.services.auth.createApiToken(
        principal.user.id,
        request.body.name,
        request.body.expiresInDays,
        request.ip,
        request.body.scope ?? 'user',
      );
      return reply.status(201).send({ apiToken: toApiTokenDto(apiToken), token });
    },
  );

  app.delete(
    '/api/tokens/:id',
    {
      config: { access: 'authenticated' },
      schema: {
        operationId: 'revokeToken',
        tags: ['tokens'],
        summary: 'Revoke one of my API tokens',
        params: IdParams,
        response: { 204: Type.Null(), 404: ErrorSchema },
      },
    },
    async (request, reply) => {
      await app.services.auth.revokeApiToken(principalOf(request).user.id, request.params.id, request.ip);
      return reply.status(204).send(null);
    },
  );
};
export default tokens;
