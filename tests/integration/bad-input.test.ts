// Bad input on every route with a body, query or id: malformed JSON, unknown fields, wrong types,
// oversized bodies, wrong content types and fuzzed values get a 4xx with a message, never a 5xx.
// Text PostgreSQL cannot store (NUL, lone surrogates), numbers and dates out of its range and deep
// nesting are generated for every route with a body or a query, as an admin, a rater and anonymous.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndSignIn, createTestApp, type SignedIn, type TestApp } from '../support/app.js';
import { addRaters, createProject, next } from '../support/rating.js';

let t: TestApp;
let admin: SignedIn;
let rater: SignedIn;
let projectId: string;
/** A token scoped to training: the only caller the external engines' routes answer. */
let training: Record<string, string>;
beforeAll(async () => {
  t = await createTestApp({ BODY_LIMIT_BYTES: '4096', IMPORT_LIMIT_BYTES: '4096' });
  admin = await createAndSignIn(t, 'ADMIN');
  const created = await t.app.inject({
    method: 'POST',
    url: '/api/tokens',
    headers: admin.headers,
    payload: { name: 'engine', scope: 'training' },
  });
  training = { authorization: `Bearer ${created.json<{ token: string }>().token}` };
  const setup = await createProject(t, {}, { prompts: 3, responses: 2 });
  projectId = setup.projectId;
  rater = (await addRaters(t, setup, 1))[0]!;
});
afterAll(() => t.close());

/**
 * Routes that take a JSON body (sign-out takes none, so a valid call cannot end the session): the
 * API's, and the OpenAI-compatible chat completions, which answers errors in OpenAI's shape.
 */
function writeRoutes() {
  return [
    ...t.app.routeTable.filter((route) => route.body),
    { method: 'POST', url: '/v1/chat/completions', body: true },
  ];
}

function concrete(url: string): string {
  return url.replace(/:\w+/g, (param) =>
    param === ':attempt' ? '1' : '00000000-0000-4000-8000-000000000000',
  );
}

/** The admin, or for the external engines' routes the training token. */
function callerFor(route: object): Record<string, string> {
  return 'access' in route && route.access === 'training' ? training : admin.headers;
}

/** An error's message: Loom's routes answer {message}, the OpenAI-compatible /v1 routes {error: {message}}. */
function errorMessage(body: string): unknown {
  const parsed = JSON.parse(body) as { message?: unknown; error?: { message?: unknown } };
  return typeof parsed.error === 'object' && parsed.error !== null ? parsed.error.message : parsed.message;
}

function expectClientError(response: { statusCode: number; body: string }, label: string) {
  expect(response.statusCode, `${label}: ${response.body}`).toBeGreaterThanOrEqual(400);
  expect(response.statusCode, `${label}: ${response.body}`).toBeLessThan(500);
  const message = errorMessage(response.body);
  expect(typeof message, label).toBe('string');
  expect((message as string).length, label).toBeGreaterThan(0);
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
          headers: { ...callerFor(route), 'content-type': 'application/json' },
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
          headers: { ...callerFor(route), 'content-type': 'application/json' },
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
        headers: { ...callerFor(route), 'content-type': 'application/json' },
        payload: '{"__proto__":{"role":"ADMIN"},"constructor":{"prototype":{"x":1}}}',
      });
      expectClientError(polluted, `${route.method} ${route.url} with __proto__`);
    }
    const unknown = await t.app.inject({
      method: 'POST',
      url: '/api/tokens',
      headers: admin.headers,
      payload: { name: 'ok', permissions: 'everything' },
    });
    expect(unknown.json().message).toMatch(/body\.permissions: unknown field/);
  });

  it('refuses oversized bodies with 413 and other content types with 415', async () => {
    for (const route of writeRoutes()) {
      const big = await t.app.inject({
        method: route.method as 'POST',
        url: concrete(route.url),
        headers: { ...callerFor(route), 'content-type': 'application/json' },
        payload: JSON.stringify({ name: 'x'.repeat(8192) }),
      });
      expectClientError(big, `${route.method} ${route.url} oversized`);
      expect(big.statusCode).toBe(413);
      const text = await t.app.inject({
        method: route.method as 'POST',
        url: concrete(route.url),
        headers: { ...callerFor(route), 'content-type': 'text/plain' },
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
    expectClientError(
      await t.app.inject({ method: 'POST', url: '/api/invites/lookup', payload: {} }),
      'lookup without token',
    );
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
            headers: callerFor(route),
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

// --- Values PostgreSQL cannot store, for every route with a body or a query --------------------

type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  const?: unknown;
  enum?: unknown[];
  format?: string;
  pattern?: string;
  minLength?: number;
  minimum?: number;
  exclusiveMinimum?: number;
  maximum?: number;
  minItems?: number;
  default?: unknown;
};

interface Operation {
  method: string;
  url: string;
  body: JsonSchema | null;
  query: { name: string; schema: JsonSchema }[];
}

/** Every operation of the OpenAPI document with a JSON body or a query string. */
function operations(): Operation[] {
  const doc = t.app.swagger() as {
    paths: Record<
      string,
      Record<
        string,
        {
          requestBody?: { content?: Record<string, { schema: JsonSchema }> };
          parameters?: { in: string; name: string; schema: JsonSchema }[];
        }
      >
    >;
  };
  const found: Operation[] = [];
  for (const [url, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const body = op.requestBody?.content?.['application/json']?.schema ?? null;
      const query = (op.parameters ?? []).filter((p) => p.in === 'query');
      if (body || query.length) found.push({ method: method.toUpperCase(), url, body, query });
    }
  }
  return found;
}

/** A plausible value for a schema: what a well-behaved client would send. */
function sample(schema: JsonSchema): unknown {
  if (schema.const !== undefined) return schema.const;
  if (schema.enum) return schema.enum[0];
  if (schema.default !== undefined) return schema.default;
  const branches = schema.anyOf ?? schema.oneOf;
  if (branches) return sample(branches.find((b) => b.type !== 'null') ?? branches[0]!);
  if (schema.allOf) return Object.assign({}, ...schema.allOf.map((part) => sample(part) as object));
  const type = Array.isArray(schema.type) ? schema.type.find((x) => x !== 'null') : schema.type;
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const key of schema.required ?? []) out[key] = sample(schema.properties![key]!);
      return out;
    }
    case 'array':
      return Array.from({ length: schema.minItems ?? 0 }, () => sample(schema.items ?? {}));
    case 'integer':
    case 'number':
      return schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + 0.5 : 1);
    case 'boolean':
      return false;
    case 'string':
      if (schema.format === 'uuid') return '00000000-0000-4000-8000-000000000000';
      if (schema.format === 'email') return 'fuzz@example.com';
      if (schema.format === 'date-time') return '2026-01-01T00:00:00Z';
      return 'fuzz text'.padEnd(schema.minLength ?? 1, 'x');
    default:
      return 'fuzz';
  }
}

/** Paths (in the body) of every string leaf the schema describes, optional ones included. */
function stringPaths(schema: JsonSchema, at: string[] = [], depth = 0): string[][] {
  if (depth > 6) return [];
  const branches = schema.anyOf ?? schema.oneOf ?? schema.allOf;
  if (branches) return branches.flatMap((branch) => stringPaths(branch, at, depth + 1));
  const type = Array.isArray(schema.type) ? schema.type.find((x) => x !== 'null') : schema.type;
  if (type === 'string' && schema.const === undefined && !schema.enum) return [at];
  if (type === 'object' && schema.properties)
    return Object.entries(schema.properties).flatMap(([key, value]) =>
      stringPaths(value, [...at, key], depth + 1),
    );
  if (type === 'array' && schema.items) return stringPaths(schema.items, [...at, '0'], depth + 1);
  return [];
}

function setAt(target: unknown, path: string[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path;
  const container = (
    typeof target === 'object' && target !== null ? target : /^\d+$/.test(head!) ? [] : {}
  ) as Record<string, unknown>;
  container[head!] = setAt(container[head!], rest, value);
  return container;
}

/** A string that PostgreSQL cannot store as text or jsonb. */
const unstorableText = fc
  .tuple(
    fc.string({ maxLength: 12 }),
    fc.constantFrom('\u0000', '\ud800', '\udfff', '\udc00x', '\u0000\u0000'),
    fc.string({ maxLength: 12 }),
  )
  .map(([before, bad, after]) => `${before}${bad}${after}`);

/** Numbers and dates outside what PostgreSQL's integer, bigint and timestamp columns hold. */
const outOfRange = fc.constantFrom(
  '9999999999999999999',
  '99999999999999999999999999',
  '-9223372036854775809',
  '1e400',
  '0000-01-01T00:00:00Z',
  '10000-01-01T00:00:00Z',
  '-001000-01-01T00:00:00Z',
);

/** encodeURIComponent, except that a lone surrogate is sent as its 3 bytes (it throws on them). */
function queryEncode(text: string): string {
  return text.replace(/[\s\S]/gu, (char) =>
    /^[\ud800-\udfff]$/.test(char)
      ? `%${[0xe0 | (char.charCodeAt(0) >> 12), 0x80 | ((char.charCodeAt(0) >> 6) & 63), 0x80 | (char.charCodeAt(0) & 63)].map((b) => b.toString(16).toUpperCase()).join('%')}`
      : encodeURIComponent(char),
  );
}

function nested(depth: number): unknown {
  let value: unknown = 'bottom';
  for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { a: value };
  return value;
}

describe('values PostgreSQL cannot store', () => {
  const callers = () =>
    [
      ['admin', admin.headers],
      ['rater', rater.headers],
      ['anonymous', {}],
    ] as const;

  /** Real ids where a route names one, so the request gets as far as it can. */
  async function concreteFor(url: string, who: string): Promise<string> {
    let assignment = '00000000-0000-4000-8000-000000000000';
    // Leases, also under their deprecated path /api/assignments.
    const lease = /^\/api\/(leases|assignments)\/\{id\}/;
    if (who === 'rater' && lease.test(url)) assignment = (await next(t, rater, projectId))?.id ?? assignment;
    return url
      .replace(/^\/api\/projects\/\{id\}/, `/api/projects/${projectId}`)
      .replace(lease, `/api/$1/${assignment}`)
      .replace(/\{\w+\}/g, '00000000-0000-4000-8000-000000000000');
  }

  /** Never 5xx; with a field, refused: 400 naming it unless refused before (auth, rate limit). */
  function expectRefused(response: { statusCode: number; body: string }, label: string, field?: string) {
    expect(response.statusCode, `${label}: ${response.body}`).toBeLessThan(500);
    if (!field) {
      if (response.statusCode >= 400) expectClientError(response, label);
      return;
    }
    expectClientError(response, label);
    if (![401, 403, 404, 413, 429].includes(response.statusCode)) {
      expect(response.statusCode, `${label}: ${response.body}`).toBe(400);
      expect(errorMessage(response.body), label).toContain(field);
    }
  }

  it('covers every route with a body or a query string', () => {
    const ops = operations();
    expect(ops.filter((op) => op.body).length).toBe(writeRoutes().length);
    expect(ops.filter((op) => op.query.length).length).toBeGreaterThanOrEqual(3);
  });

  it('refuses NUL and lone surrogates in any text field of any body with 400 naming the field', async () => {
    const ops = operations().filter((op) => op.body && stringPaths(op.body).length);
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: ops.length - 1 }),
        fc.nat(),
        fc.integer({ min: 0, max: 2 }),
        unstorableText,
        async (index, pathIndex, callerIndex, bad) => {
          const op = ops[index]!;
          const paths = stringPaths(op.body!);
          const path = paths[pathIndex % paths.length]!;
          const [who, headers] = callers()[callerIndex]!;
          const body = setAt(sample(op.body!), path, bad);
          const response = await t.app.inject({
            method: op.method as 'POST',
            url: await concreteFor(op.url, who),
            headers: { ...headers, 'content-type': 'application/json' },
            payload: JSON.stringify(body),
          });
          const label = `${who} ${op.method} ${op.url} ${JSON.stringify(body)}`;
          if (op.url.endsWith('/import') && path.join('.') === 'content' && response.statusCode === 400) {
            // A file's text: refused by line, like any other bad line of a file.
            expect(response.json().errors?.[0]?.line, `${label}: ${response.body}`).toBe(1);
            return;
          }
          expectRefused(response, label, `body.${path.join('.')}`);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses out-of-range numbers, dates and unstorable text in query strings with 400', async () => {
    const ops = operations().filter((op) => op.query.length);
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: ops.length - 1 }),
        fc.nat(),
        fc.integer({ min: 0, max: 2 }),
        fc.oneof(outOfRange, unstorableText),
        async (index, paramIndex, callerIndex, bad) => {
          const op = ops[index]!;
          const param = op.query[paramIndex % op.query.length]!;
          const [who, headers] = callers()[callerIndex]!;
          const url = `${await concreteFor(op.url, who)}?${param.name}=${queryEncode(bad)}`;
          const response = await t.app.inject({ method: op.method as 'GET', url, headers });
          expectRefused(response, `${who} ${op.method} ${url}`, `querystring.${param.name}`);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('refuses out-of-range numbers and dates and deep nesting in bodies', async () => {
    const ops = operations().filter((op) => op.body);
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: ops.length - 1 }),
        fc.nat(),
        fc.oneof(
          outOfRange,
          fc.constantFrom(1e308, -1e308, 1e19, 2 ** 53, -(2 ** 63)),
          fc.integer({ min: 300, max: 900 }).map(nested),
        ),
        async (index, pathIndex, bad) => {
          const op = ops[index]!;
          const properties = Object.keys(op.body!.properties ?? { value: {} });
          const key = properties[pathIndex % properties.length]!;
          const body = { ...(sample(op.body!) as object), [key]: bad };
          const response = await t.app.inject({
            method: op.method as 'POST',
            url: await concreteFor(op.url, 'admin'),
            headers: { ...admin.headers, 'content-type': 'application/json' },
            payload: JSON.stringify(body),
          });
          expectRefused(response, `${op.method} ${op.url} ${JSON.stringify(body).slice(0, 200)}`);
        },
      ),
      { numRuns: 150 },
    );
    expect((await t.app.inject({ url: '/api/auth/me', headers: admin.headers })).statusCode).toBe(200);
  });

  it('refuses the reported cases with 400 and a message that names the field', async () => {
    const cases: [string, string, SignedIn | null, unknown, string][] = [
      ['POST', '/api/auth/login', null, { email: 'a\u0000@b.co', password: 'x'.repeat(12) }, 'body.email'],
      ['POST', '/api/auth/login', null, { email: 'a\ud800@b.co', password: 'x'.repeat(12) }, 'body.email'],
      ['POST', '/api/projects', admin, { name: 'a\u0000b' }, 'body.name'],
      ['POST', '/api/tokens', admin, { name: 'a\u0000b' }, 'body.name'],
      ['PATCH', `/api/projects/${projectId}`, admin, { guidelines: 'read \u0000 this' }, 'body.guidelines'],
      [
        'POST',
        `/api/projects/${projectId}/export`,
        admin,
        { format: 'trl', filters: { split: { validationFraction: 0.1, part: 'train', seed: 'a\u0000' } } },
        'body.filters.split.seed',
      ],
      [
        'POST',
        `/api/projects/${projectId}/export`,
        admin,
        { format: 'trl', filters: { from: '0000-01-01T00:00:00Z' } },
        'body.filters.from',
      ],
      [
        'POST',
        `/api/projects/${projectId}/export/count`,
        admin,
        { format: 'trl', filters: { to: '10000-01-01T00:00:00Z' } },
        'body.filters.to',
      ],
    ];
    for (const [method, url, who, payload, field] of cases) {
      const response = await t.app.inject({
        method: method as 'POST',
        url,
        headers: who?.headers ?? {},
        payload: payload as object,
      });
      expect(response.statusCode, `${method} ${url}: ${response.body}`).toBe(400);
      expect(response.json().message, url).toContain(field);
    }
    const audit = await t.app.inject({
      url: '/api/audit?before=9999999999999999999',
      headers: admin.headers,
    });
    expect(audit.statusCode, audit.body).toBe(400);
    expect(audit.json().message).toContain('querystring.before');
  });

  it('refuses NUL in a rater’s rationale and skip reason, and the lease stays usable', async () => {
    const lease = (await next(t, rater, projectId))!;
    const submitted = await t.app.inject({
      method: 'POST',
      url: `/api/leases/${lease.id}/submit`,
      headers: { ...rater.headers, 'idempotency-key': crypto.randomUUID() },
      payload: { choice: 'LEFT', strength: 1, timeSpentMs: 1000, rationale: 'because\u0000' },
    });
    expect(submitted.statusCode, submitted.body).toBe(400);
    expect(submitted.json().message).toContain('body.rationale');
    const skipped = await t.app.inject({
      method: 'POST',
      url: `/api/leases/${lease.id}/skip`,
      headers: rater.headers,
      payload: { reason: 'x\u0000' },
    });
    expect(skipped.statusCode, skipped.body).toBe(400);
    expect(skipped.json().message).toContain('body.reason');
    const fine = await t.app.inject({
      method: 'POST',
      url: `/api/leases/${lease.id}/skip`,
      headers: rater.headers,
      payload: { reason: 'unclear' },
    });
    expect(fine.statusCode, fine.body).toBeLessThan(300);
  });
});
