// Invitations (admins) and the one-time links they produce, including the first admin's setup link.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { notFound } from '../../core/errors.js';
import { clientInfo, principalOf, setSessionCookie } from '../plugins/auth.js';
import {
  AcceptInviteBody,
  InviteLookup,
  InviteLookupBody,
  MeResponse,
  SetupStatus,
} from '../../core/schemas/auth.js';
import { ErrorSchema, IdParams } from '../../core/schemas/common.js';
import { CreatedInvite, CreateInviteBody, InviteList } from '../../core/schemas/users.js';
import { oneTimeLink, publicOrigin, toInviteDto, toUserDto } from '../../core/services/users.js';

const ADMIN = ['ADMIN'] as const;

const invites: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/api/setup/status',
    {
      config: { access: 'public' },
      schema: {
        operationId: 'getSetupStatus',
        tags: ['setup'],
        summary: 'Whether the first admin is still to be created',
        response: { 200: SetupStatus },
      },
    },
    async () => ({ needsSetup: await app.services.users.needsSetup() }),
  );

  // A POST with the token in its body: a secret in a URL ends up in request logs and histories.
  app.post(
    '/api/invites/lookup',
    {
      config: { access: 'public', csrf: false, rateLimit: { max: 30, timeWindow: '1 minute' } },
      schema: {
        operationId: 'lookupInvite',
        tags: ['invites'],
        summary: 'What a setup or invitation link grants',
        body: InviteLookupBody,
        response: { 200: InviteLookup, 404: ErrorSchema },
      },
    },
    async (request) => {
      const invite = await app.services.users.findOpenInvite(request.body.token);
      if (!invite) throw notFound('This link is invalid, expired or already used.');
      return {
        kind: invite.email === null ? ('setup' as const) : ('invite' as const),
        email: invite.email,
        role: invite.role,
        expiresAt: invite.expiresAt.toISOString(),
        projects: invite.projects.map(({ project }) => ({ name: project.name })),
      };
    },
  );

  app.post(
    '/api/invites/accept',
    {
      config: { access: 'public', csrf: false, rateLimit: { max: 30, timeWindow: '1 minute' } },
      schema: {
        operationId: 'acceptInvite',
        tags: ['invites'],
        summary: 'Create the account a link grants, and sign in',
        body: AcceptInviteBody,
        response: { 201: MeResponse, 400: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema },
      },
    },
    async (request, reply) => {
      const user = await app.services.users.acceptInvite(request.body, request.ip);
      const {
        token,
        session,
        user: signedIn,
      } = await app.services.auth.startSession(user, clientInfo(request));
      setSessionCookie(reply, app.config, token);
      return reply.status(201).send({ user: toUserDto(signedIn), csrfToken: session.csrfToken });
    },
  );

  app.get(
    '/api/invites',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'listInvites',
        tags: ['invites'],
        summary: 'Invitations',
        response: { 200: InviteList },
      },
    },
    async () => (await app.services.users.listInvites()).map(toInviteDto),
  );

  app.post(
    '/api/invites',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'createInvite',
        tags: ['invites'],
        summary: 'Invite a user; the link is returned once',
        body: CreateInviteBody,
        response: { 201: CreatedInvite, 400: ErrorSchema, 409: ErrorSchema },
      },
    },
    async (request, reply) => {
      const actor = principalOf(request).user;
      const { invite, token, replaced } = await app.services.users.createInvite(request.body, {
        id: actor.id,
        ip: request.ip,
      });
      const address = app.server.address();
      const port = typeof address === 'object' && address ? address.port : app.config.port;
      const url = oneTimeLink(publicOrigin(app.config.publicUrl, port), 'invite', token);
      return reply.status(201).send({ invite: toInviteDto(invite), url, token, replaced });
    },
  );

  app.delete(
    '/api/invites/:id',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'revokeInvite',
        tags: ['invites'],
        summary: 'Revoke a pending invitation',
        params: IdParams,
        response: { 204: Type.Null(), 404: ErrorSchema },
      },
    },
    async (request, reply) => {
      await app.services.users.revokeInvite(request.params.id, {
        id: principalOf(request).user.id,
        ip: request.ip,
      });
      return reply.status(204).send(null);
    },
  );
};
export default invites;
