// Who may still judge: a lease outlives neither its project's archiving nor its rater's membership.
// Submit (the single statement, and the general path of a server that did not hand the lease out),
// skip and undo all refuse, and store nothing; admins may judge in any active project.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../server/app.js';
import { createPrisma, poolOf } from '../../core/db/client.js';
import { createAndSignIn, createTestApp, type SignedIn, type TestApp } from '../support/app.js';
import { addRaters, createProject, next, submit, type RatingSetup } from '../support/rating.js';

let t: TestApp;
/** A second server on the same database: it did not hand out the leases, so it reads them back. */
let peer: TestApp;
beforeAll(async () => {
  t = await createTestApp({ DB_POOL_MAX: '10' });
  const prisma = createPrisma(t.database.url);
  peer = { ...t, prisma, app: await buildApp({ config: t.config, prisma, logger: false }) };
});
afterAll(async () => {
  await peer.app.close();
  await peer.prisma.$disconnect();
  if (!poolOf(peer.prisma).ending) await poolOf(peer.prisma).end();
  await t.close();
});

const body = { choice: 'LEFT', strength: 1, timeSpentMs: 900 };

function skip(app: TestApp, rater: SignedIn, assignmentId: string) {
  return app.app.inject({
    method: 'POST',
    url: `/api/leases/${assignmentId}/skip`,
    headers: rater.headers,
    payload: { reason: 'Not my language' },
  });
}

function undo(app: TestApp, rater: SignedIn, preferenceId: string) {
  return app.app.inject({
    method: 'POST',
    url: `/api/judgments/${preferenceId}/undo`,
    headers: rater.headers,
  });
}

async function archive(setup: RatingSetup) {
  const archived = await t.app.inject({
    method: 'PATCH',
    url: `/api/projects/${setup.projectId}`,
    headers: setup.admin.headers,
    payload: { archived: true },
  });
  expect(archived.statusCode, archived.body).toBe(200);
}

async function judgments(raterId: string): Promise<number> {
  return t.prisma.preference.count({ where: { raterId } });
}

/** The comparisons' counters still match their rows. */
async function expectCounters(projectId: string) {
  const rows = await t.prisma.$queryRaw<
    { leaseCount: number; leased: number; voteCount: number; votes: number }[]
  >`
    SELECT c."leaseCount", c."voteCount",
      (SELECT count(*)::int FROM "Assignment" a WHERE a."comparisonId" = c.id AND a.status = 'LEASED') AS leased,
      (SELECT count(*)::int FROM "Preference" p WHERE p."comparisonId" = c.id) AS votes
    FROM "Comparison" c WHERE c."projectId" = ${projectId}::uuid`;
  for (const row of rows) expect(row).toMatchObject({ leaseCount: row.leased, voteCount: row.votes });
}

describe('an archived project', () => {
  it('refuses submissions, skips and undos of leases held before it was archived', async () => {
    const setup = await createProject(t, {}, { prompts: 4, responses: 2 });
    const [rater] = await addRaters(t, setup, 1);
    const judged = await submit(t, rater!, (await next(t, rater!, setup.projectId))!.id, body);
    expect(judged.statusCode, judged.body).toBe(201);
    const held = await next(t, rater!, setup.projectId);
    const prefetched = await next(t, rater!, setup.projectId, [held!.id]);
    await archive(setup);

    // The single statement (a lease this server handed out), then a server that did not.
    for (const [app, lease] of [
      [t, held!],
      [peer, prefetched!],
    ] as const) {
      const refused = await submit(app, rater!, lease.id, { ...body, next: {} });
      expect(refused.statusCode, refused.body).toBe(403);
      expect(refused.json()).toMatchObject({
        code: 'PROJECT_ARCHIVED',
        message: expect.stringMatching(/archived/),
      });
    }
    expect(await judgments(rater!.userId)).toBe(1);
    const skipped = await skip(t, rater!, held!.id);
    expect(skipped.statusCode, skipped.body).toBe(403);
    expect(skipped.json().code).toBe('PROJECT_ARCHIVED');
    expect((await t.prisma.assignment.findUniqueOrThrow({ where: { id: held!.id } })).status).toBe('LEASED');
    const undone = await undo(t, rater!, judged.json().preferenceId);
    expect(undone.statusCode, undone.body).toBe(403);
    expect(await judgments(rater!.userId)).toBe(1);
    await expectCounters(setup.projectId);
  });
});

describe('a rater removed from a project', () => {
  it('can no longer undo within the window, get the lease back and judge again', async () => {
    const setup = await createProject(t, {}, { prompts: 3, responses: 2 });
    const [rater] = await addRaters(t, setup, 1);
    const lease = await next(t, rater!, setup.projectId);
    const judged = await submit(t, rater!, lease!.id, body);
    expect(judged.statusCode, judged.body).toBe(201);
    const removed = await t.app.inject({
      method: 'DELETE',
      url: `/api/projects/${setup.projectId}/members/${rater!.userId}`,
      headers: setup.admin.headers,
    });
    expect(removed.statusCode, removed.body).toBe(204);

    const undone = await undo(t, rater!, judged.json().preferenceId);
    expect(undone.statusCode, undone.body).toBe(403);
    expect(undone.json().code).toBe('NOT_A_MEMBER');
    expect(await judgments(rater!.userId)).toBe(1);
    const again = await submit(t, rater!, lease!.id, { ...body, choice: 'RIGHT' });
    expect(again.statusCode, again.body).toBe(403);
    const stored = await t.prisma.preference.findFirstOrThrow({ where: { raterId: rater!.userId } });
    expect(stored.id).toBe(judged.json().preferenceId);
    await expectCounters(setup.projectId);
  });

  it('cannot judge or skip a lease still open when the membership went', async () => {
    const setup = await createProject(t, {}, { prompts: 4, responses: 2 });
    const [rater, staying] = await addRaters(t, setup, 2);
    const held = await next(t, rater!, setup.projectId);
    const prefetched = await next(t, rater!, setup.projectId, [held!.id]);
    const third = await next(t, rater!, setup.projectId, [held!.id, prefetched!.id]);
    // As a removal racing these requests leaves it: the membership gone, the leases still open.
    await t.prisma.projectMember.delete({
      where: { projectId_userId: { projectId: setup.projectId, userId: rater!.userId } },
    });
    for (const [app, lease] of [
      [t, held!],
      [peer, prefetched!],
    ] as const) {
      const refused = await submit(app, rater!, lease.id, { ...body, next: {} }, randomUUID());
      expect(refused.statusCode, refused.body).toBe(403);
      expect(refused.json()).toMatchObject({
        code: 'NOT_A_MEMBER',
        message: expect.stringMatching(/member/),
      });
    }
    const skipped = await skip(t, rater!, third!.id);
    expect(skipped.statusCode, skipped.body).toBe(403);
    expect(skipped.json().code).toBe('NOT_A_MEMBER');
    expect(await judgments(rater!.userId)).toBe(0);

    // Members go on as before, and an admin (not a member) may judge in an active project.
    const theirs = await next(t, staying!, setup.projectId);
    expect((await submit(t, staying!, theirs!.id, body)).statusCode).toBe(201);
    const admin = await createAndSignIn(t, 'ADMIN');
    const adminLease = await next(t, admin, setup.projectId);
    const byAdmin = await submit(t, admin, adminLease!.id, { ...body, next: {} });
    expect(byAdmin.statusCode, byAdmin.body).toBe(201);
    const adminUndo = await undo(t, admin, byAdmin.json().preferenceId);
    expect(adminUndo.statusCode, adminUndo.body).toBe(200);
    await expectCounters(setup.projectId);
  });
});
