// Two server instances on one database, each with its own connection pool, credential cache and
// rate-limit hook, as two processes behind a load balancer would be: raters spread over both.
// The sign-in and submission limits count across them (their counters are in PostgreSQL); overlap
// holds when both hand out the same queue; a retried submission answered by the other instance
// stores nothing twice; a user disabled through one is refused by the other as soon as
// PostgreSQL's change notice reaches it (within moments of the change).
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type PrismaClient } from '../../core/db/client.js';
import { buildApp } from '../../server/app.js';
import { createTestApp, signIn, type SignedIn, type TestApp } from '../support/app.js';
import { addRaters, createProject, next, submit } from '../support/rating.js';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';

interface Pair {
  a: TestApp;
  /** The second instance, on the same database, as a TestApp for the helpers. */
  b: TestApp;
  close(): Promise<void>;
}

async function twoServers(env: Record<string, string> = {}): Promise<Pair> {
  const a = await createTestApp(env);
  const prisma: PrismaClient = createPrisma(a.database.url, { max: 4 });
  const app: FastifyInstance = await buildApp({ config: a.config, prisma, logger: false });
  await app.ready();
  return {
    a,
    b: { ...a, app, prisma },
    async close() {
      await app.close();
      await prisma.$disconnect();
      await a.close();
    },
  };
}

describe('rate limits across two servers', () => {
  let pair: Pair;
  beforeAll(async () => {
    pair = await twoServers({ LOGIN_RATE_LIMIT_PER_MINUTE: '6', SUBMIT_RATE_LIMIT_PER_MINUTE: '3' });
  });
  afterAll(async () => pair?.close());

  it('counts sign-in attempts from one address on both servers together', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const server = i % 2 === 0 ? pair.a : pair.b;
      const response = await server.app.inject({
        method: 'POST',
        url: '/api/auth/login',
        remoteAddress: '203.0.113.7',
        payload: { email: 'someone@example.com', password: 'a wrong guess' },
      });
      statuses.push(response.statusCode);
    }
    // Each server alone would have allowed 6: 12 in all.
    expect(statuses).toEqual([401, 401, 401, 401, 401, 401, 429, 429]);
    const other = await pair.b.app.inject({
      method: 'POST',
      url: '/api/auth/login',
      remoteAddress: '203.0.113.8',
      payload: { email: 'someone@example.com', password: 'a wrong guess' },
    });
    expect(other.statusCode).toBe(401);
  });

  it('counts attempts sent at the same moment to both servers exactly (one count each)', async () => {
    const statuses = await Promise.all(
      Array.from(
        { length: 16 },
        async (_, i) =>
          (
            await (i % 2 ? pair.a : pair.b).app.inject({
              method: 'POST',
              url: '/api/auth/login',
              remoteAddress: '203.0.113.9',
              payload: { email: 'someone@example.com', password: 'a wrong guess' },
            })
          ).statusCode,
      ),
    );
    expect(statuses.filter((status) => status === 401)).toHaveLength(6);
    expect(statuses.filter((status) => status === 429)).toHaveLength(10);
  });

  it("counts a rater's judgments on both servers together", async () => {
    const setup = await createProject(pair.a, { overlap: 1 }, { prompts: 4, responses: 2 });
    const [rater] = await addRaters(pair.a, setup, 1);
    const codes: number[] = [];
    for (let i = 0; i < 4; i++) {
      const server = i % 2 === 0 ? pair.a : pair.b;
      const lease = await next(server, rater!, setup.projectId);
      codes.push((await submit(server, rater!, lease!.id)).statusCode);
    }
    expect(codes).toEqual([201, 201, 201, 429]);
    expect(await pair.a.prisma.preference.count({ where: { raterId: rater!.userId } })).toBe(3);
  });
});

describe('rating on two servers', () => {
  let pair: Pair;
  beforeAll(async () => {
    pair = await twoServers();
  });
  afterAll(async () => pair?.close());

  it('keeps the overlap with raters spread over both servers', async () => {
    const setup = await createProject(pair.a, { overlap: 2 }, { prompts: 5, responses: 3 });
    const raters = await addRaters(pair.a, setup, 4);
    const rate = async (rater: SignedIn, index: number) => {
      for (let turn = 0; ; turn++) {
        // Raters 0 and 1 stay on one server each; 2 and 3 alternate.
        const server = index === 0 ? pair.a : index === 1 ? pair.b : (index + turn) % 2 ? pair.a : pair.b;
        const lease = await next(server, rater, setup.projectId);
        if (!lease) return;
        expect((await submit(server, rater, lease.id)).statusCode).toBe(201);
      }
    };
    await Promise.all(raters.map(rate));
    const comparisons = await pair.a.prisma.comparison.findMany({
      where: { projectId: setup.projectId },
      include: { preferences: true },
    });
    expect(comparisons).toHaveLength(15);
    for (const comparison of comparisons) {
      expect(comparison.voteCount).toBe(2);
      expect(comparison.leaseCount).toBe(0);
      expect(new Set(comparison.preferences.map((p) => p.raterId)).size).toBe(2);
    }
  });

  it('answers a retry sent to the other server with the judgment already stored', async () => {
    const setup = await createProject(pair.a, { overlap: 1 }, { prompts: 2, responses: 2 });
    const [rater] = await addRaters(pair.a, setup, 1);
    const lease = await next(pair.a, rater!, setup.projectId);
    const key = randomUUID();
    const first = await submit(pair.a, rater!, lease!.id, undefined, key);
    const retry = await submit(pair.b, rater!, lease!.id, undefined, key);
    expect(first.statusCode).toBe(201);
    expect(retry.statusCode).toBe(201);
    expect(retry.json().preferenceId).toBe(first.json().preferenceId);
    expect(await pair.a.prisma.preference.count({ where: { raterId: rater!.userId } })).toBe(1);
  });

  it('refuses a user disabled on one server on the other as soon as the change notice arrives', async () => {
    const setup = await createProject(pair.a, { overlap: 1 }, { prompts: 2, responses: 2 });
    const [rater] = await addRaters(pair.a, setup, 1);
    // The other server knows the session (its cache holds it) before the change.
    const before = await pair.b.app.inject({ method: 'GET', url: '/api/auth/me', headers: rater!.headers });
    expect(before.statusCode).toBe(200);
    const disabled = await pair.a.app.inject({
      method: 'PATCH',
      url: `/api/users/${rater!.userId}`,
      headers: setup.admin.headers,
      payload: { disabled: true },
    });
    expect(disabled.statusCode, disabled.body).toBe(200);
    // The other server forgets the session when PostgreSQL's change notice reaches it, a moment
    // after the change commits: a request that arrives before then is still answered.
    await expect
      .poll(
        async () =>
          (await pair.b.app.inject({ method: 'GET', url: '/api/auth/me', headers: rater!.headers }))
            .statusCode,
        { timeout: 2_000, interval: 10 },
      )
      .toBe(401);
    const lease = await pair.b.app.inject({
      method: 'POST',
      url: `/api/projects/${setup.projectId}/leases/next`,
      headers: rater!.headers,
      payload: {},
    });
    expect(lease.statusCode).toBe(401);
    // Signing in again is refused on both.
    for (const server of [pair.a, pair.b])
      await expect(signIn(server, rater!.email)).rejects.toThrow(/Sign-in failed: 401|403/);
  });
});

describe('two server processes on one database', () => {
  // The same checks through two operating-system processes started as `npm start` starts one
  // (nothing shared but the database): the project and its raters are made through an instance
  // of the app on the same database, whose sessions both processes read from PostgreSQL.
  let t: TestApp;
  const servers: ServerProcess[] = [];
  const secret = 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz';

  beforeAll(async () => {
    t = await createTestApp({ SESSION_SECRET: secret });
    const { TEST_DATABASE_URL: _unused, ...rest } = process.env;
    // One after the other: each applies the (already applied) migrations at its start.
    for (let i = 0; i < 2; i++)
      servers.push(
        await startServerProcess({
          ...rest,
          DATABASE_URL: t.database.url,
          DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'loom-two-')),
          SESSION_SECRET: secret,
          SEED_DEMO: 'false',
          START_TRAINER: 'false',
          PORT: '0',
          HOST: '127.0.0.1',
          NODE_ENV: 'development',
          LOG_LEVEL: 'warn',
          SUBMIT_RATE_LIMIT_PER_MINUTE: '4',
        }),
      );
  }, 180_000);
  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    await t?.close();
  });

  async function call(
    server: ServerProcess,
    method: string,
    url: string,
    rater: SignedIn,
    body?: unknown,
    key?: string,
  ) {
    const response = await fetch(`${server.origin}${url}`, {
      method,
      headers: {
        ...rater.headers,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(key ? { 'idempotency-key': key } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return {
      status: response.status,
      body: (await response.json().catch(() => ({}))) as Record<string, unknown>,
    };
  }

  const lease = async (server: ServerProcess, rater: SignedIn, projectId: string) => {
    const answer = await call(server, 'POST', `/api/projects/${projectId}/leases/next`, rater, {});
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    return (answer.body.assignment as { id: string } | null)?.id ?? null;
  };
  const judge = (server: ServerProcess, rater: SignedIn, id: string, key = randomUUID()) =>
    call(
      server,
      'POST',
      `/api/leases/${id}/submit`,
      rater,
      { choice: 'LEFT', strength: 1, timeSpentMs: 900 },
      key,
    );

  it('keeps overlap, idempotency and the submission limit across the processes, and stops a disabled user', async () => {
    const [a, b] = servers as [ServerProcess, ServerProcess];
    const setup = await createProject(t, { overlap: 2 }, { prompts: 4, responses: 2 });
    const [first, second] = (await addRaters(t, setup, 2)) as [SignedIn, SignedIn];

    // A lease from one process is judged through the other; the retry with the same key, sent
    // back to the first, answers the judgment already stored.
    const held = (await lease(a, first, setup.projectId))!;
    const key = randomUUID();
    const stored = await judge(b, first, held, key);
    expect(stored.status, JSON.stringify(stored.body)).toBe(201);
    const retried = await judge(a, first, held, key);
    expect(retried.status).toBe(201);
    expect(retried.body.preferenceId).toBe(stored.body.preferenceId);

    // The limit (4 a minute, counted per request) holds for both processes together: after the
    // judgment and its retry, two more pass and the next is refused.
    const codes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const server = i % 2 ? a : b;
      const id = await lease(server, first, setup.projectId);
      codes.push((await judge(server, first, id!)).status);
    }
    expect(codes).toEqual([201, 201, 429]);

    // The second rater judges everything through both processes in turn.
    for (let turn = 0; ; turn++) {
      const server = turn % 2 ? a : b;
      const id = await lease(server, second, setup.projectId);
      if (!id) break;
      expect((await judge(server, second, id)).status).toBe(201);
    }
    const comparisons = await t.prisma.comparison.findMany({
      where: { projectId: setup.projectId },
      include: { preferences: true },
    });
    expect(comparisons).toHaveLength(4);
    for (const comparison of comparisons)
      expect(new Set(comparison.preferences.map((p) => p.raterId)).size).toBe(comparison.preferences.length);
    expect(await t.prisma.preference.count({ where: { raterId: first.userId } })).toBe(3);
    expect(await t.prisma.preference.count({ where: { raterId: second.userId } })).toBe(4);

    // Disabled through one process, refused by the other within moments (the change notice).
    const before = await call(b, 'GET', '/api/auth/me', second);
    expect(before.status).toBe(200);
    const disabled = await call(a, 'PATCH', `/api/users/${second.userId}`, setup.admin, { disabled: true });
    expect(disabled.status, JSON.stringify(disabled.body)).toBe(200);
    await expect
      .poll(async () => (await call(b, 'GET', '/api/auth/me', second)).status, {
        timeout: 2_000,
        interval: 10,
      })
      .toBe(401);
  }, 60_000);
});
