// User administration (admins only): list, create, change role or name, disable.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { principalOf } from '../plugins/auth.js';
import { UserSchema } from '../../core/schemas/auth.js';
import { ErrorSchema, IdParams } from '../../core/schemas/common.js';
import { CreateUserBody, UpdateUserBody } from '../../core/schemas/users.js';
import { toUserDto } from '../../core/services/users.js';

const ADMIN = ['ADMIN'] as const;

const users: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/api/users',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'listUsers',
        tags: ['users'],
        summary: 'All users',
        response: { 200: Type.Array(UserSchema) },
      },
    },
    async () => (await app.services.users.list()).map(toUserDto),
  );

  app.post(
    '/api/users',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'createUser',
        tags: ['users'],
        summary: 'Create a user with a password',
        body: CreateUserBody,
        response: { 201: UserSchema, 409: ErrorSchema },
      },
    },
    async (request, reply) => {
      const user = await app.services.users.create(request.body, {
        id: principalOf(request).user.id,
        ip: request.ip,
      });
      return reply.status(201).send(toUserDto(user));
    },
  );

  app.patch(
    '/api/users/:id',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'updateUser',
        tags: ['users'],
        summary: 'Change a user’s name or role, or disable them (ends their sessions at once)',
        params: IdParams,
        body: UpdateUserBody,
        response: { 200: UserSchema, 404: ErrorSchema, 409: ErrorSchema },
      },
    },
    async (request) => {
      const user = await app.services.users.update(request.params.id, request.body, {
        id: principalOf(request).user.id,
        ip: request.ip,
      });
      return toUserDto(user);
    },
  );
};
export default users;
