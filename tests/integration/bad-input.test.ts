// Bad input on every route with a body, query or id: malformed JSON, unknown fields, wrong types,
// oversized bodies, wrong content types and fuzzed values get a 4xx with a message, never a 5xx.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndSignIn, createTestApp, type SignedIn, type TestApp } from '../support/app.js';

let t: TestApp;
let admin: SignedIn;
beforeAll(async () => {
  t = await createTestApp({ BODY_LIMIT_BYTES: '4096', IMPORT_LIMIT_BYTES: '4096' });
  admin = await createAndSignIn(t, 'ADMIN');
});
afterAll(() => t.close());

/** Routes that take a JSON body (sign-out takes none, so a valid call cannot end the session). */
function writeRoutes() {
  return t.app.routeTable.filter((route) => route.body);
}

function concrete(url: string): string {
  return url.replace(/:\w+/g, '00000000-0000-4000-8000-000000000000');
}

function expectClientError(response: { statusCode: number; body: string }, label: string) {
  expect(response.statusCode, `${label}: ${response.body}`).toBeGreaterThanOrEqual(400);
  expect(response.statusCode, `${label}: ${response.body}`).toBeLessThan(500);
  const body = JSON.parse(response.body) as { message?: unknown };
  expect(typeof body.message, label).toBe('string');
  expect((body.message as string).length, label).toBeGreaterThan(0);
}

describe('bad input', () => {
  it('covers the write routes', () => {
    expect(writeRoutes().length).toBeGreaterThanOrEqual(6);
  });

  it('refuses malformed JSON with 400', async () => {
    for (const route of writeRoutes()) {
      for (const body of ['{bad', '{"a":', '[1,,2]', '']) {
        const response = await t.app.inject({
          method: route.method as 'POST',
          url: concrete(route.url),
          headers: { ...admin.headers, 'content-type': 'application/json' },
          payload: body,
        });
        expectClientError(response, `${route.method} ${route.url} with ${JSON.stringify(body)}`);
        expect(response.statusCode).toBe(400);
      }
    }
  });

  it('refuses unknown fields, wrong types and prototype pollution with 400', async () => {
    const bodies: unknown[] = [
      { unexpectedField: 1 },
      [],
      42,
      'text',
      null,
      { email: 12, password: ['x'], name: {}, role: 'OWNER' },
    ];
    for (const route of writeRoutes()) {
      for (const body of bodies) {
        const response = await t.app.inject({
          method: route.method as 'POST',
          url: concrete(route.url),
          headers: { ...admin.headers, 'content-type': 'application/json' },
          payload: JSON.stringify(body),
        });
        expectClientError(response, `${route.method} ${route.url} with ${JSON.stringify(body)}`);
        expect(
          response.statusCode,
          `${route.method} ${route.url} with ${JSON.stringify(body)}: ${response.body}`,
        ).toBe(400);
      }
      const polluted = await t.app.inject({
        method: route.method as 'POST',
        url: concrete(route.url),
        headers: { ...admin.headers, 'content-type': 'application/json' },
        payload: '{"__proto__":{"role":"ADMIN"},"constructor":{"prototype":{"x":1}}}',
      });
      expectClientError(polluted, `${route.method} ${route.url} with __proto__`);
    }
    const unknown = await t.app.inject({
      method: 'POST',
      url: '/api/tokens',
      headers: admin.headers,
      payload: { name: 'ok', scope: 'everything' },
    });
    expect(unknown.json().message).toMatch(/body\.scope: unknown field/);
  });

  it('refuses oversized bodies with 413 and other content types with 415', async () => {
    for (const route of writeRoutes()) {
      const big = await t.app.inject({
        method: route.method as 'POST',
        url: concrete(route.url),
        headers: { ...admin.headers, 'content-type': 'application/json' },
        payload: JSON.stringify({ name: 'x'.repeat(8192) }),
      });
      expectClientError(big, `${route.method} ${route.url} oversized`);
      expect(big.statusCode).toBe(413);
      const text = await t.app.inject({
        method: route.method as 'POST',
        url: concrete(route.url),
        headers: { ...admin.headers, 'content-type': 'text/plain' },
        payload: 'hello',
      });
      expectClientError(text, `${route.method} ${route.url} text/plain`);
      expect(text.statusCode).toBe(415);
    }
  });

  it('refuses bad ids and query strings with 400', async () => {
    for (const url of ['/api/tokens/not-a-uuid', '/api/invites/1', '/api/auth/sessions/%2e%2e%2f']) {
      expectClientError(await t.app.inject({ method: 'DELETE', url, headers: admin.headers }), url);
    }
    for (const url of [
      '/api/audit?limit=abc',
      '/api/audit?limit=100000',
      '/api/audit?before=-1',
      '/api/audit?sort=email',
    ]) {
      const response = await t.app.inject({ url, headers: admin.headers });
      expectClientError(response, url);
      expect(response.statusCode).toBe(400);
    }
    expectClientError(await t.app.inject({ url: '/api/invites/lookup' }), 'lookup without token');
  });

  it('never answers 5xx to fuzzed bodies', async () => {
    const value = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
      fc.constantFrom('ADMIN', 'RATER', 'a@b.co', '00000000-0000-4000-8000-000000000000', '{"role":"ADMIN"}'),
    );
    const keys = fc.constantFrom(
      'email',
      'name',
      'role',
      'password',
      'token',
      'disabled',
      'expiresInDays',
      'expiresInHours',
      'currentPassword',
      'newPassword',
      'where',
      'include',
    );
    const routes = writeRoutes();
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: routes.length - 1 }),
        fc.dictionary(keys, value, { maxKeys: 5 }),
        async (index, body) => {
          const route = routes[index]!;
          const response = await t.app.inject({
            method: route.method as 'POST',
            url: concrete(route.url),
            headers: admin.headers,
            payload: body,
          });
          expect(
            response.statusCode,
            `${route.method} ${route.url} ${JSON.stringify(body)}: ${response.body}`,
          ).toBeLessThan(500);
        },
      ),
      { numRuns: 150 },
    );
    // The admin is still signed in and the database is intact.
    expect((await t.app.inject({ url: '/api/auth/me', headers: admin.headers })).statusCode).toBe(200);
  });
});
