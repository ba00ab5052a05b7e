// The authorization matrix, built from the app's own route table: every route x every role (and
// anonymous) gives the expected status; ids the caller does not own give 404 and change nothing.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../../core/schemas/common.js';
import { createAndSignIn, createTestApp, signIn, type SignedIn, type TestApp } from '../support/app.js';

type Caller = Role | 'ANONYMOUS';
const CALLERS: Caller[] = ['ANONYMOUS', 'RATER', 'RESEARCHER', 'ADMIN'];

/** Who may call each route. A new route must be added here, or the first test fails. */
const EXPECTED: Record<string, 'public' | 'authenticated' | 'training' | Role[]> = {
  'GET /api/health': 'public',
  'GET /api/setup/status': 'public',
  'POST /api/invites/lookup': 'public',
  'POST /api/invites/accept': 'public',
  'POST /api/auth/login': 'public',
  'POST /api/auth/logout': 'authenticated',
  'GET /api/auth/me': 'authenticated',
  'GET /api/auth/sessions': 'authenticated',
  'DELETE /api/auth/sessions/:id': 'authenticated',
  'POST /api/auth/password': 'authenticated',
  'GET /api/users': ['ADMIN'],
  'POST /api/users': ['ADMIN'],
  'PATCH /api/users/:id': ['ADMIN'],
  'GET /api/invites': ['ADMIN'],
  'POST /api/invites': ['ADMIN'],
  'DELETE /api/invites/:id': ['ADMIN'],
  'GET /api/tokens': 'authenticated',
  'POST /api/tokens': ['ADMIN', 'RESEARCHER'],
  'DELETE /api/tokens/:id': 'authenticated',
  'GET /api/audit': ['ADMIN'],
  'GET /api/projects': 'authenticated',
  'POST /api/projects': ['ADMIN'],
  'GET /api/projects/:id': 'authenticated',
  'PATCH /api/projects/:id': ['ADMIN'],
  'GET /api/projects/:id/members': ['ADMIN'],
  'POST /api/projects/:id/members': ['ADMIN'],
  'DELETE /api/projects/:id/members/:userId': ['ADMIN'],
  'POST /api/projects/:id/prompts/import': ['ADMIN'],
  'POST /api/projects/:id/import': ['ADMIN'], // deprecated alias
  'POST /api/projects/:id/comparisons/generate': ['ADMIN'],
  'GET /api/projects/:id/comparisons': ['ADMIN', 'RESEARCHER'],
  'PATCH /api/comparisons/:id': ['ADMIN'],
  'GET /api/projects/:id/quality': ['ADMIN'],
  'GET /api/projects/:id/reliability': ['ADMIN'],
  'PUT /api/projects/:id/excluded-raters/:raterId': ['ADMIN'],
  'DELETE /api/projects/:id/excluded-raters/:raterId': ['ADMIN'],
  'GET /api/rating/projects': 'authenticated',
  'GET /api/projects/:id/rating-context': 'authenticated',
  'POST /api/projects/:id/leases/next': 'authenticated',
  'POST /api/leases/:id/submit': 'authenticated',
  'POST /api/leases/:id/skip': 'authenticated',
  'POST /api/judgments/:id/undo': 'authenticated',
  // The same four under their former paths (deprecated aliases).
  'POST /api/projects/:id/assignments/next': 'authenticated',
  'POST /api/assignments/:id/submit': 'authenticated',
  'POST /api/assignments/:id/skip': 'authenticated',
  'POST /api/preferences/:id/undo': 'authenticated',
  'GET /api/projects/:id/progress': 'authenticated',
  'GET /api/projects/:id/rounds': ['ADMIN', 'RESEARCHER'],
  'POST /api/projects/:id/rounds': ['ADMIN'],
  'GET /api/rounds/:id': ['ADMIN', 'RESEARCHER'],
  'GET /api/rounds/:id/events': ['ADMIN', 'RESEARCHER'],
  'POST /api/rounds/:id/cancel': ['ADMIN'],
  'GET /api/projects/:id/policy-versions': ['ADMIN', 'RESEARCHER'],
  'POST /api/policy-versions/:id/promote': ['ADMIN'],
  'GET /api/projects/:id/promotion': ['ADMIN', 'RESEARCHER'],
  'GET /api/projects/:id/leaderboard': ['ADMIN', 'RESEARCHER'],
  'POST /api/projects/:id/export': ['ADMIN', 'RESEARCHER'],
  'POST /api/projects/:id/export/count': ['ADMIN', 'RESEARCHER'],
  'POST /api/projects/:id/snapshots': ['ADMIN', 'RESEARCHER'],
  'GET /api/projects/:id/snapshots': ['ADMIN', 'RESEARCHER'],
  'GET /api/snapshots/:id': ['ADMIN', 'RESEARCHER'],
  'GET /api/snapshots/:id/download': ['ADMIN', 'RESEARCHER'],
  'POST /api/projects/:id/preferences/import': ['ADMIN', 'RESEARCHER'],
  'GET /api/projects/:id/generations': ['ADMIN'],
  'POST /api/projects/:id/generations': ['ADMIN'],
  'GET /api/generations/:id': ['ADMIN'],
  'POST /api/generations/:id/cancel': ['ADMIN'],
  'GET /api/projects/:id/endpoints': ['ADMIN'],
  'POST /api/projects/:id/endpoints': ['ADMIN'],
  'PATCH /api/endpoints/:id': ['ADMIN'],
  'DELETE /api/endpoints/:id': ['ADMIN'],
  'POST /api/endpoints/:id/test': ['ADMIN'],
  'POST /api/endpoints/test': ['ADMIN'],
  // External training engines: only API tokens scoped to training (no session, no plain token).
  'POST /api/engine/claim': 'training',
  'POST /api/engine/rounds/:id/attempts/:attempt/heartbeat': 'training',
  'POST /api/engine/rounds/:id/attempts/:attempt/events': 'training',
  'POST /api/engine/rounds/:id/attempts/:attempt/metrics': 'training',
  'GET /api/engine/rounds/:id/attempts/:attempt/snapshot': 'training',
  'POST /api/engine/rounds/:id/attempts/:attempt/results': 'training',
  'POST /api/engine/rounds/:id/attempts/:attempt/fail': 'training',
};

const SECRET_KEYS = /passwordHash|tokenHash|ciphertext|"credential"|sessionSecret/;

let t: TestApp;
const callers = new Map<Caller, SignedIn | null>();

beforeAll(async () => {
  t = await createTestApp();
  callers.set('ANONYMOUS', null);
  for (const role of ['RATER', 'RESEARCHER', 'ADMIN'] as const)
    callers.set(role, await createAndSignIn(t, role));
});
afterAll(() => t.close());

function expectedStatus(access: (typeof EXPECTED)[string], caller: Caller): 'allowed' | 401 | 403 {
  if (access === 'public') return 'allowed';
  if (caller === 'ANONYMOUS') return 401;
  if (access === 'authenticated') return 'allowed';
  if (access === 'training') return 403; // no session reaches them; tokens are tested below
  return access.includes(caller) ? 'allowed' : 403;
}

describe('authorization matrix', () => {
  it('covers exactly the routes the app registers', () => {
    const registered = t.app.routeTable.map((route) => `${route.method} ${route.url}`).sort();
    expect(registered).toEqual(Object.keys(EXPECTED).sort());
    for (const route of t.app.routeTable)
      expect(route.access).toEqual(EXPECTED[`${route.method} ${route.url}`]);
  });

  it('answers every route x caller as expected, never 5xx, never with a secret', async () => {
    const rows: string[] = [];
    // Sign-out ends the caller's session, so it goes last; the callers sign in again afterwards.
    const routes = [...t.app.routeTable].sort(
      (a, b) => Number(a.url === '/api/auth/logout') - Number(b.url === '/api/auth/logout'),
    );
    for (const route of routes) {
      const access = EXPECTED[`${route.method} ${route.url}`]!;
      for (const caller of CALLERS) {
        const signedIn = callers.get(caller) ?? null;
        // A random id is an object the caller does not own (or that does not exist).
        const url = route.url.replace(/:\w+/g, (param) => (param === ':attempt' ? '1' : randomUUID()));
        const response = await t.app.inject({
          method: route.method as 'GET',
          url,
          headers: signedIn?.headers ?? {},
          ...(route.method === 'GET' || route.method === 'DELETE' ? {} : { payload: {} }),
        });
        const expected = expectedStatus(access, caller);
        const status = response.statusCode;
        rows.push(`${route.method} ${route.url} ${caller} -> ${status}`);
        expect(status, `${route.method} ${route.url} as ${caller}`).toBeLessThan(500);
        if (expected === 'allowed') {
          expect([401, 403], `${route.method} ${route.url} as ${caller}: ${response.body}`).not.toContain(
            status,
          );
        } else {
          expect(status, `${route.method} ${route.url} as ${caller}: ${response.body}`).toBe(expected);
        }
        expect(response.body).not.toMatch(SECRET_KEYS);
      }
    }
    expect(rows.length).toBe(Object.keys(EXPECTED).length * CALLERS.length);
    for (const role of ['RATER', 'RESEARCHER', 'ADMIN'] as const) {
      const previous = callers.get(role)!;
      expect(
        (await t.app.inject({ method: 'GET', url: '/api/auth/me', headers: previous.headers })).statusCode,
      ).toBe(401);
      callers.set(role, await signIn(t, previous.email));
    }
  });

  it('accepts an API token wherever a session is accepted, with the same role rules', async () => {
    const researcher = callers.get('RESEARCHER')!;
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/tokens',
      headers: researcher.headers,
      payload: { name: 'matrix' },
    });
    const { token } = created.json<{ token: string }>();
    const bearer = { authorization: `Bearer ${token}` };
    expect((await t.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer })).statusCode).toBe(
      200,
    );
    expect((await t.app.inject({ method: 'GET', url: '/api/tokens', headers: bearer })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'GET', url: '/api/users', headers: bearer })).statusCode).toBe(403);
    // No CSRF token is needed with a bearer token.
    const write = await t.app.inject({
      method: 'POST',
      url: '/api/tokens',
      headers: bearer,
      payload: { name: 'second' },
    });
    expect(write.statusCode).toBe(201);
  });
});

describe('training routes', () => {
  it('answer only tokens scoped to training; plain researcher and admin tokens get 403', async () => {
    const token = async (caller: SignedIn, scope?: 'training') => {
      const created = await t.app.inject({
        method: 'POST',
        url: '/api/tokens',
        headers: caller.headers,
        payload: { name: 'engine', ...(scope ? { scope } : {}) },
      });
      expect(created.statusCode, created.body).toBe(201);
      return { authorization: `Bearer ${created.json<{ token: string }>().token}` };
    };
    const admin = callers.get('ADMIN')!;
    const plain = [await token(callers.get('RESEARCHER')!), await token(admin)];
    const training = await token(admin, 'training');
    const routes = t.app.routeTable.filter((route) => route.access === 'training');
    expect(routes).toHaveLength(7);
    for (const route of routes) {
      const url = route.url.replace(/:\w+/g, (param) => (param === ':attempt' ? '1' : randomUUID()));
      const send = (headers: Record<string, string>) =>
        t.app.inject({
          method: route.method as 'GET',
          url,
          headers,
          ...(route.method === 'GET' ? {} : { payload: {} }),
        });
      for (const headers of plain) expect((await send(headers)).statusCode, route.url).toBe(403);
      const allowed = await send(training);
      expect([401, 403], `${route.url}: ${allowed.body}`).not.toContain(allowed.statusCode);
      expect(allowed.statusCode, route.url).toBeLessThan(500);
    }
  });
});

describe('object ownership', () => {
  it('never lets one user revoke another user’s API token; the row is unchanged', async () => {
    const owner = await createAndSignIn(t, 'RESEARCHER');
    const other = await createAndSignIn(t, 'RESEARCHER');
    const admin = callers.get('ADMIN')!;
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/tokens',
      headers: owner.headers,
      payload: { name: 'mine' },
    });
    const { apiToken, token } = created.json<{ apiToken: { id: string }; token: string }>();
    for (const intruder of [other, admin]) {
      const response = await t.app.inject({
        method: 'DELETE',
        url: `/api/tokens/${apiToken.id}`,
        headers: intruder.headers,
      });
      expect(response.statusCode).toBe(404);
    }
    const row = await t.prisma.apiToken.findUniqueOrThrow({ where: { id: apiToken.id } });
    expect(row.revokedAt).toBeNull();
    const stillWorks = await t.app.inject({
      method: 'GET',
      url: '/api/auth/me',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(stillWorks.statusCode).toBe(200);
    const listed = await t.app.inject({ method: 'GET', url: '/api/tokens', headers: other.headers });
    expect(listed.json<unknown[]>()).toHaveLength(0);
  });

  it('never lets one user end another user’s session', async () => {
    const victim = await createAndSignIn(t, 'RATER');
    const attacker = await createAndSignIn(t, 'RATER');
    const session = await t.prisma.session.findFirstOrThrow({ where: { userId: victim.userId } });
    const response = await t.app.inject({
      method: 'DELETE',
      url: `/api/auth/sessions/${session.id}`,
      headers: attacker.headers,
    });
    expect(response.statusCode).toBe(404);
    expect((await t.prisma.session.findUniqueOrThrow({ where: { id: session.id } })).revokedAt).toBeNull();
    expect(
      (await t.app.inject({ method: 'GET', url: '/api/auth/me', headers: victim.headers })).statusCode,
    ).toBe(200);
  });

  it('does not let a rater or researcher change roles, their own included', async () => {
    for (const role of ['RATER', 'RESEARCHER'] as const) {
      const user = await createAndSignIn(t, role);
      const response = await t.app.inject({
        method: 'PATCH',
        url: `/api/users/${user.userId}`,
        headers: user.headers,
        payload: { role: 'ADMIN' },
      });
      expect(response.statusCode).toBe(403);
      expect((await t.prisma.user.findUniqueOrThrow({ where: { id: user.userId } })).role).toBe(role);
    }
  });
});
