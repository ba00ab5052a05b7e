// API tokens for scripts: researchers and admins create them; every user sees and revokes their own
// (a role change revokes a user's tokens, and a demoted user can still see and clean up the list).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { principalOf } from '../plugins/auth.js';
import { ErrorSchema, IdParams } from '../schemas/common.js';
import { ApiTokenList, CreatedToken, CreateTokenBody } from '../schemas/tokens.js';
import { toApiTokenDto } from '../services/auth.js';

const CREATE = ['ADMIN', 'RESEARCHER'] as const;

const tokens: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/api/tokens',
    {
      config: { access: 'authenticated' },
      schema: { tags: ['tokens'], summary: 'My API tokens', response: { 200: ApiTokenList } },
    },
    async (request) =>
      (await app.services.auth.listApiTokens(principalOf(request).user.id)).map(toApiTokenDto),
  );

  app.post(
    '/api/tokens',
    {
      config: { access: CREATE },
      schema: {
        tags: ['tokens'],
        summary: 'Create an API token; it is shown once',
        body: CreateTokenBody,
        response: { 201: CreatedToken },
      },
    },
    async (request, reply) => {
      const { apiToken, token } = await app.services.auth.createApiToken(
        principalOf(request).user.id,
        request.body.name,
        request.body.expiresInDays,
        request.ip,
      );
      return reply.status(201).send({ apiToken: toApiTokenDto(apiToken), token });
    },
  );

  app.delete(
    '/api/tokens/:id',
    {
      config: { access: 'authenticated' },
      schema: {
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
