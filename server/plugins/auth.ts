// Authentication and authorization for every route. Each /api route declares `config.access`
// ('public', 'authenticated', a list of roles, or 'training': only an API token scoped to training
// work, which reaches nothing else); a route without one refuses to register.
// Cookie sessions must send the CSRF token on writes; Bearer API tokens need none.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../../core/config.js';
import fp from 'fastify-plugin';
import { forbidden, HttpError, unauthorized } from '../../core/errors.js';
import type { Role } from '../../core/schemas/common.js';
import type { AuthService, Principal } from '../../core/services/auth.js';
import { safeEqual } from '../../core/services/secrets.js';

export type Access = 'public' | 'authenticated' | 'training' | readonly Role[];

export interface RouteEntry {
  method: string;
  url: string;
  access: Access;
  /** Cookie-authenticated writes need the CSRF token unless the route opts out (sign-in itself). */
  csrf: boolean;
  /** Whether the route takes a JSON body (has a body schema). */
  body: boolean;
}

export const SESSION_COOKIE = 'loom_session';
export const CSRF_HEADER = 'x-csrf-token';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
    csrf?: boolean;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyInstance {
    routeTable: RouteEntry[];
  }
}

/** The signed-in principal; routes with non-public access can rely on it being set. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw unauthorized();
  return request.principal;
}

/** Sets the session cookie: httpOnly, SameSite=Lax, Secure in production, as long as the session. */
export function setSessionCookie(reply: FastifyReply, config: Config, token: string): void {
  reply.setCookie(SESSION_COOKIE, token, {
    path: '/',
    httpOnly: true,
    sameSite: 'lax',
    secure: config.production,
    maxAge: Math.floor(config.sessionAbsoluteMs / 1000),
  });
}

export function clientInfo(request: FastifyRequest) {
  return { ip: request.ip ?? null, userAgent: request.headers['user-agent'] ?? null };
}

export default fp(async function auth(app: FastifyInstance, options: { auth: AuthService }) {
  const routeTable: RouteEntry[] = [];
  app.decorate('routeTable', routeTable);
  app.decorateRequest('principal', null);

  app.addHook('onRoute', (route) => {
    if (!route.url.startsWith('/api') || route.url.startsWith('/api/docs')) return;
    const access = route.config?.access;
    if (access === undefined)
      throw new Error(`Route ${String(route.method)} ${route.url} declares no access rule`);
    for (const method of [route.method].flat()) {
      if (method === 'HEAD') continue;
      routeTable.push({
        method,
        url: route.url,
        access,
        csrf: route.config?.csrf ?? true,
        body: Boolean(route.schema?.body),
      });
    }
  });

  app.addHook('onRequest', async (request) => {
    const access = request.routeOptions.config?.access;
    if (access === undefined) return;

    const header = request.headers.authorization;
    let viaCookie = false;
    if (header) {
      const match = /^Bearer\s+(\S+)$/i.exec(header);
      if (!match) throw new HttpError(401, 'Authorization header must be "Bearer <token>".');
      request.principal = await options.auth.resolveApiToken(match[1]!);
      if (!request.principal) throw unauthorized('This API token is invalid, expired or revoked.');
    } else {
      const token = request.cookies[SESSION_COOKIE];
      if (token) {
        request.principal = await options.auth.resolveSession(token);
        viaCookie = request.principal !== null;
      }
    }

    if (access === 'public') return;
    if (!request.principal) throw unauthorized('Sign in first (your session may have expired).');
    const training = request.principal.tokenScope === 'training';
    if (access === 'training') {
      if (!training) throw forbidden('This route needs an API token scoped to training work.');
    } else {
      if (training) throw forbidden('A training token reaches only the training engines’ routes.');
      if (access !== 'authenticated' && !access.includes(request.principal.user.role)) throw forbidden();
    }

    if (viaCookie && !SAFE_METHODS.has(request.method) && (request.routeOptions.config?.csrf ?? true)) {
      const sent = request.headers[CSRF_HEADER];
      if (typeof sent !== 'string' || !safeEqual(sent, request.principal.csrfToken ?? '')) {
        throw new HttpError(403, `Missing or invalid CSRF token (send the ${CSRF_HEADER} header).`, 'CSRF');
      }
    }
  });
});
