// Sign-in, sign-out, the current user, own sessions and password change.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { clientInfo, principalOf, SESSION_COOKIE, setSessionCookie } from '../plugins/auth.js';
import { ChangePasswordBody, LoginBody, MeResponse, SessionList } from '../../core/schemas/auth.js';
import { ErrorSchema, IdParams } from '../../core/schemas/common.js';
import { toUserDto } from '../../core/services/users.js';

const auth: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/api/auth/login',
    {
      config: {
        access: 'public',
        csrf: false,
        rateLimit: { max: app.config.loginRateLimitPerMinute, timeWindow: '1 minute' },
      },
      schema: {
        operationId: 'login',
        tags: ['auth'],
        summary: 'Sign in; sets the session cookie',
        body: LoginBody,
        response: { 200: MeResponse, 401: ErrorSchema, 429: ErrorSchema },
      },
    },
    async (request, reply) => {
      const { token, session, user } = await app.services.auth.login(
        request.body.email,
        request.body.password,
        clientInfo(request),
      );
      // The cookie from before sign-in (if any) is replaced: sessions are renewed at sign-in.
      setSessionCookie(reply, app.config, token);
      return { user: toUserDto(user), csrfToken: session.csrfToken };
    },
  );

  app.post(
    '/api/auth/logout',
    {
      config: { access: 'authenticated' },
      schema: { operationId: 'logout', tags: ['auth'], summary: 'Sign out', response: { 204: Type.Null() } },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      if (principal.sessionId) await app.services.auth.endSession(principal.sessionId);
      reply.clearCookie(SESSION_COOKIE, { path: '/' });
      return reply.status(204).send(null);
    },
  );

  app.get(
    '/api/auth/me',
    {
      config: { access: 'authenticated' },
      schema: {
        operationId: 'getMe',
        tags: ['auth'],
        summary: 'The signed-in user and the CSRF token',
        response: { 200: MeResponse, 401: ErrorSchema },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      return { user: toUserDto(principal.user), csrfToken: principal.csrfToken };
    },
  );

  app.get(
    '/api/auth/sessions',
    {
      config: { access: 'authenticated' },
      schema: {
        operationId: 'listSessions',
        tags: ['auth'],
        summary: 'My active sessions',
        response: { 200: SessionList },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const sessions = await app.services.auth.listSessions(principal.user.id);
      return sessions.map((session) => ({
        id: session.id,
        current: session.id === principal.sessionId,
        ip: session.ip,
        userAgent: session.userAgent,
        createdAt: session.createdAt.toISOString(),
        lastSeenAt: session.lastSeenAt.toISOString(),
        expiresAt: session.expiresAt.toISOString(),
      }));
    },
  );

  app.delete(
    '/api/auth/sessions/:id',
    {
      config: { access: 'authenticated' },
      schema: {
        operationId: 'revokeSession',
        tags: ['auth'],
        summary: 'End one of my sessions',
        params: IdParams,
        response: { 204: Type.Null(), 404: ErrorSchema },
      },
    },
    async (request, reply) => {
      await app.services.auth.revokeOwnSession(principalOf(request).user.id, request.params.id, request.ip);
      return reply.status(204).send(null);
    },
  );

  app.post(
    '/api/auth/password',
    {
      config: {
        access: 'authenticated',
        rateLimit: { max: app.config.loginRateLimitPerMinute, timeWindow: '1 minute' },
      },
      schema: {
        operationId: 'changePassword',
        tags: ['auth'],
        summary: 'Change my password (ends my other sessions)',
        body: ChangePasswordBody,
        response: { 204: Type.Null(), 409: ErrorSchema },
      },
    },
    async (request, reply) => {
      await app.services.auth.changePassword(
        principalOf(request),
        request.body.currentPassword,
        request.body.newPassword,
        request.ip,
      );
      return reply.status(204).send(null);
    },
  );
};
export default auth;
