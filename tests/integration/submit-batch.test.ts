// Judgments that arrive together are stored in batches (one transaction for many raters): the
// queue's guarantees hold inside a batch as they do for a lone judgment.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { poolOf } from '../../core/db/client.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { addRaters, createProject, next, submit, type AssignmentJson } from '../support/rating.js';
import { until } from '../support/wait.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ DB_POOL_MAX: '20' });
});
afterAll(() => t.close());

const body = { choice: 'LEFT', strength: 1, timeSpentMs: 900 };

async function comparisonOf(assignmentId: string): Promise<string> {
  return (await t.prisma.assignment.findUniqueOrThrow({ where: { id: assignmentId } })).comparisonId;
}

/**
 * Every comparison's counters match its rows: votes = judgments, leases = open assignments; and
 * the project holds `judgments` judgments, when given.
 */
async function expectCounters(projectId: string, judgments?: number) {
  if (judgments !== undefined)
    expect(await t.prisma.preference.count({ where: { comparison: { projectId } } })).toBe(judgments);
  const rows = await t.prisma.$queryRaw<
    {
      id: string;
      voteCount: number;
      leaseCount: number;
      requiredVotes: number;
      votes: number;
      leased: number;
    }[]
  >`SELECT c.id, c."voteCount", c."leaseCount", c."requiredVotes",
      (SELECT count(*)::int FROM "Preference" p WHERE p."comparisonId" = c.id) AS votes,
      (SELECT count(*)::int FROM "Assignment" a WHERE a."comparisonId" = c.id AND a.status = 'LEASED') AS leased
    FROM "Comparison" c WHERE c."projectId" = ${projectId}::uuid`;
  for (const row of rows) {
    expect(row.voteCount, `votes of ${row.id}`).toBe(row.votes);
    expect(row.leaseCount, `leases of ${row.id}`).toBe(row.leased);
    expect(row.voteCount + row.leaseCount, `slots of ${row.id}`).toBeLessThanOrEqual(row.requiredVotes);
  }
}

/**
 * Runs `submissions` as one batch: two judgments in another project take the two places for
 * batches in the database first and wait there on a row lock until all of `submissions` are
 * queued behind them; then the lock goes (and `during` runs). The batch stores them all together
 * unless it `fails` (and then each goes on its own).
 */
async function asOneBatch<T>(
  submissions: () => Promise<T>[],
  { fails = false, during }: { fails?: boolean; during?: () => Promise<void> } = {},
): Promise<T[]> {
  // One judgment wanted per comparison: the two in front are on different ones.
  const filler = await createProject(t, { overlap: 1 }, { prompts: 2, responses: 2 });
  const fillers = await addRaters(t, filler, 2);
  const leases = await Promise.all(fillers.map((rater) => next(t, rater, filler.projectId)));
  const blocker = await poolOf(t.prisma).connect();
  try {
    await blocker.query('BEGIN');
    await blocker.query(
      `SELECT 1 FROM "Comparison" WHERE id IN (SELECT "comparisonId" FROM "Assignment" WHERE id = ANY($1::uuid[])) FOR UPDATE`,
      [leases.map((lease) => lease!.id)],
    );
    const waiting = fillers.map((rater, i) => submit(t, rater, leases[i]!.id, body));
    await until(
      'the two judgments in front to wait on the lock',
      async () => {
        // Not on the blocker: within its transaction the activity view would not change.
        const { rows } = await poolOf(t.prisma).query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
        );
        return rows[0]!.n >= 2;
      },
      20_000,
      20,
    );
    const before = t.app.services.rating.batchStats();
    const batched = submissions();
    await until(
      'every judgment to be queued for the batch',
      async () => t.app.services.rating.batchStats().queued >= batched.length,
      20_000,
      20,
    );
    await blocker.query('COMMIT');
    await during?.();
    const answers = await Promise.all(batched);
    for (const answer of await Promise.all(waiting)) expect(answer.statusCode).toBe(201);
    const after = t.app.services.rating.batchStats();
    expect(after.batches - before.batches, 'one batch').toBe(1);
    expect(after.judgments - before.judgments, 'all in it').toBe(batched.length);
    expect(after.failed - before.failed, 'the batch failed').toBe(fails ? 1 : 0);
    return answers;
  } finally {
    await blocker.query('ROLLBACK').catch(() => undefined);
    blocker.release();
  }
}

describe('batched judgments', () => {
  it('store every judgment and hand each rater a fresh comparison they have not seen', async () => {
    const setup = await createProject(t, { overlap: 3 }, { prompts: 20, responses: 3 });
    const raters = await addRaters(t, setup, 40);
    const leases = await Promise.all(raters.map((rater) => next(t, rater, setup.projectId)));
    const seen = await Promise.all(leases.map((lease) => comparisonOf(lease!.id)));

    const before = t.app.services.rating.batchStats();
    const answers = await asOneBatch(() =>
      raters.map((rater, i) => submit(t, rater, leases[i]!.id, { ...body, next: {} })),
    );
    const fresh: string[] = [];
    for (const [i, answer] of answers.entries()) {
      expect(answer.statusCode, answer.body).toBe(201);
      const following = answer.json<{ next: AssignmentJson | null }>().next;
      expect(following, 'every rater goes on').not.toBeNull();
      const comparisonId = await comparisonOf(following!.id);
      expect(comparisonId, 'not the comparison just judged').not.toBe(seen[i]);
      fresh.push(following!.id);
    }
    expect(new Set(fresh).size).toBe(40);
    // The batch handed out all of them itself: nobody was left to search on their own.
    expect(t.app.services.rating.batchStats().searches - before.searches).toBe(0);
    await expectCounters(setup.projectId, 40);
  });

  it('store nothing from raters who are no longer members, and refuse them', async () => {
    const setup = await createProject(t, { overlap: 3 }, { prompts: 10, responses: 3 });
    const raters = await addRaters(t, setup, 6);
    const leases = await Promise.all(raters.map((rater) => next(t, rater, setup.projectId)));
    // Two lose their membership while they hold leases (as a removal racing them leaves it).
    const gone = new Set([1, 4]);
    await t.prisma.projectMember.deleteMany({
      where: { projectId: setup.projectId, userId: { in: [...gone].map((i) => raters[i]!.userId) } },
    });
    const answers = await asOneBatch(() =>
      raters.map((rater, i) => submit(t, rater, leases[i]!.id, { ...body, next: {} })),
    );
    for (const [i, answer] of answers.entries()) {
      if (gone.has(i)) {
        expect(answer.statusCode, answer.body).toBe(403);
        expect(answer.json().code).toBe('NOT_A_MEMBER');
      } else {
        expect(answer.statusCode, answer.body).toBe(201);
        expect(answer.json().next).not.toBeNull();
      }
    }
    await expectCounters(setup.projectId, 4);
  });

  it('store nothing in a project archived while its leases were held, and refuse every judgment', async () => {
    const setup = await createProject(t, { overlap: 3 }, { prompts: 10, responses: 3 });
    const raters = await addRaters(t, setup, 4);
    const leases = await Promise.all(raters.map((rater) => next(t, rater, setup.projectId)));
    await t.prisma.project.update({ where: { id: setup.projectId }, data: { archivedAt: new Date() } });
    const answers = await asOneBatch(() =>
      raters.map((rater, i) => submit(t, rater, leases[i]!.id, { ...body, next: {} })),
    );
    for (const answer of answers) {
      expect(answer.statusCode, answer.body).toBe(403);
      expect(answer.json().code).toBe('PROJECT_ARCHIVED');
    }
    await expectCounters(setup.projectId, 0);
  });

  it('hand back a lease the rater holds, unless excluded, and a new one otherwise', async () => {
    const setup = await createProject(t, { overlap: 3 }, { prompts: 20, responses: 3 });
    const raters = await addRaters(t, setup, 12);
    const shown = await Promise.all(raters.map((rater) => next(t, rater, setup.projectId)));
    const prefetched = await Promise.all(
      raters.map((rater, i) => next(t, rater, setup.projectId, [shown[i]!.id])),
    );

    // Not excluded: the prefetched lease comes back as the next one.
    const first = await asOneBatch(() =>
      raters.map((rater, i) => submit(t, rater, shown[i]!.id, { ...body, next: {} })),
    );
    first.forEach((answer, i) => {
      expect(answer.statusCode, answer.body).toBe(201);
      expect(answer.json<{ next: AssignmentJson }>().next.id).toBe(prefetched[i]!.id);
    });
    // Excluded (on screen): a third comparison.
    const second = await asOneBatch(() =>
      raters.map((rater, i) =>
        submit(t, rater, prefetched[i]!.id, { ...body, next: { exclude: [prefetched[i]!.id] } }),
      ),
    );
    for (const [i, answer] of second.entries()) {
      expect(answer.statusCode, answer.body).toBe(201);
      const third = answer.json<{ next: AssignmentJson }>().next;
      expect([shown[i]!.id, prefetched[i]!.id]).not.toContain(third.id);
      expect(
        await t.prisma.assignment.count({ where: { raterId: raters[i]!.userId, status: 'LEASED' } }),
      ).toBe(1);
    }
    await expectCounters(setup.projectId);
  });

  it('hand out gold first to the raters who drew it, each a gold comparison they have not judged', async () => {
    const setup = await createProject(t, { overlap: 3, goldRate: 1 }, { prompts: 20, responses: 2 });
    const raters = await addRaters(t, setup, 9);
    // No gold yet: each rater leases a plain comparison; then two others become gold (gold wants a
    // judgment from every rater).
    const leases = await Promise.all(raters.map((rater) => next(t, rater, setup.projectId)));
    const leased = new Set(await Promise.all(leases.map((lease) => comparisonOf(lease!.id))));
    const gold = (
      await t.prisma.comparison.findMany({ where: { projectId: setup.projectId }, orderBy: { id: 'asc' } })
    )
      .filter((comparison) => !leased.has(comparison.id))
      .slice(0, 2);
    for (const comparison of gold) {
      const marked = await t.app.inject({
        method: 'PATCH',
        url: `/api/comparisons/${comparison.id}`,
        headers: setup.admin.headers,
        payload: { goldChoice: 'A' },
      });
      expect(marked.statusCode, marked.body).toBe(200);
    }
    const goldIds = gold.map((comparison) => comparison.id).sort();
    const before = t.app.services.rating.batchStats();

    // Twice in a batch: every rater gets both gold comparisons, one each time, and never one twice.
    let shown = leases.map((lease) => lease!.id);
    const handed: string[][] = raters.map(() => []);
    for (let round = 0; round < 2; round++) {
      const answers = await asOneBatch(() =>
        raters.map((rater, i) => submit(t, rater, shown[i]!, { ...body, next: {} })),
      );
      shown = await Promise.all(
        answers.map(async (answer, i) => {
          expect(answer.statusCode, answer.body).toBe(201);
          const following = answer.json<{ next: AssignmentJson }>().next;
          handed[i]!.push(await comparisonOf(following.id));
          return following.id;
        }),
      );
    }
    for (const comparisons of handed) expect([...comparisons].sort()).toEqual(goldIds);
    expect(t.app.services.rating.batchStats().searches - before.searches).toBe(0);
    await expectCounters(setup.projectId, 18);
  });

  it('give a comparison no more votes than it has room for when its raters judge together', async () => {
    const setup = await createProject(t, { overlap: 3 }, { prompts: 12, responses: 2 });
    const raters = await addRaters(t, setup, 36);
    const leases = await Promise.all(raters.map((rater) => next(t, rater, setup.projectId)));
    // Every comparison has three raters on it; then it turns out one judgment each is enough.
    await t.prisma.comparison.updateMany({
      where: { projectId: setup.projectId },
      data: { requiredVotes: 1 },
    });

    const answers = await asOneBatch(() => raters.map((rater, i) => submit(t, rater, leases[i]!.id)));
    const stored = answers.filter((answer) => answer.statusCode === 201);
    expect(stored).toHaveLength(12);
    for (const answer of answers.filter((answer) => answer.statusCode !== 201)) {
      expect(answer.statusCode, answer.body).toBe(409);
      expect(answer.json<{ code: string }>().code).toBe('FULL');
    }
    const rows = await t.prisma.comparison.findMany({
      where: { projectId: setup.projectId },
      include: { _count: { select: { preferences: true } } },
    });
    for (const row of rows) expect(row._count.preferences).toBe(1);
    await expectCounters(setup.projectId);
  });

  it('answer each judgment on its own when one of a batch cannot be stored', async () => {
    const setup = await createProject(t, { overlap: 3 }, { prompts: 20, responses: 2 });
    const raters = await addRaters(t, setup, 20);
    const leases = await Promise.all(raters.map((rater) => next(t, rater, setup.projectId)));
    const reuser = raters[0]!;
    const second = await next(t, reuser, setup.projectId, [leases[0]!.id]);
    const key = randomUUID();

    // Two judgments of one rater under one key (a client bug): in a batch, the second breaks the
    // key's uniqueness and takes the batch's transaction down with it.
    const [a, b, ...rest] = await asOneBatch(
      () => [
        submit(t, reuser, leases[0]!.id, body, key),
        submit(t, reuser, second!.id, body, key),
        ...raters.slice(1).map((rater, i) => submit(t, rater, leases[i + 1]!.id, body)),
      ],
      { fails: true },
    );
    expect([a!.statusCode, b!.statusCode].sort()).toEqual([201, 422]);
    for (const answer of rest) expect(answer.statusCode, answer.body).toBe(201);
    expect(await t.prisma.preference.count({ where: { raterId: reuser.userId } })).toBe(1);
    await expectCounters(setup.projectId, 20);
  });

  it('answer each judgment on its own when the batch loses its connection, and drop that connection', async () => {
    const setup = await createProject(t, { overlap: 1 }, { prompts: 12, responses: 2 });
    const raters = await addRaters(t, setup, 12);
    const leases = await Promise.all(raters.map((rater) => next(t, rater, setup.projectId)));
    // The batch will wait on the first judgment's comparison, locked here, and lose its backend.
    const holder = await poolOf(t.prisma).connect();
    try {
      await holder.query('BEGIN');
      await holder.query(
        `SELECT 1 FROM "Comparison" WHERE id = (SELECT "comparisonId" FROM "Assignment" WHERE id = $1) FOR UPDATE`,
        [leases[0]!.id],
      );
      const answers = await asOneBatch(
        () => raters.map((rater, i) => submit(t, rater, leases[i]!.id, body)),
        {
          fails: true,
          during: async () => {
            const pid = await until(
              'the batch to wait on the lock',
              async () => {
                const { rows } = await poolOf(t.prisma).query<{ pid: number }>(
                  `SELECT pid FROM pg_stat_activity WHERE datname = current_database()
                     AND wait_event_type = 'Lock' AND query LIKE '%jsonb_to_recordset%'`,
                );
                return rows[0]?.pid;
              },
              20_000,
              20,
            );
            await holder.query('SELECT pg_terminate_backend($1)', [pid]);
            await holder.query('COMMIT');
          },
        },
      );
      for (const answer of answers) expect(answer.statusCode, answer.body).toBe(201);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }
    await expectCounters(setup.projectId, 12);
    // The pool gave up the dead connection: rating goes on.
    const more = await createProject(t, {}, { prompts: 2, responses: 2 });
    const [rater] = await addRaters(t, more, 1);
    const lease = await next(t, rater!, more.projectId);
    expect((await submit(t, rater!, lease!.id, { ...body, next: {} })).statusCode).toBe(201);
  });
});
