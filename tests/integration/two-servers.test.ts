// Two server instances on one database, each with its own connection pool, credential cache and
// rate-limit hook, as two processes behind a load balancer would be: raters spread over both.
// The sign-in and submission limits count across them (their counters are in PostgreSQL); overlap
// holds when both hand out the same queue; a retried submission answered by the other instance
// stores nothing twice; a user disabled through one is refused by the other as soon as
// PostgreSQL's change notice reaches it (within moments of the change).
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type PrismaClient } from '../../core/db/client.js';
import { buildApp } from '../../server/app.js';
import { createTestApp, signIn, type SignedIn, type TestApp } from '../support/app.js';
import { addRaters, createProject, next, submit } from '../support/rating.js';

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
