// The rating loop against real PostgreSQL: imports, the queue under 50 concurrent raters, leases
// that expire, idempotent submissions, the shown order, skip and undo, label rules, gold, quality.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../server/app.js';
import { createPrisma, poolOf } from '../../core/db/client.js';
import { createAndSignIn, createTestApp, type TestApp } from '../support/app.js';
import {
  addRaters,
  createProject,
  next,
  promptsJsonl,
  submit,
  type AssignmentJson,
} from '../support/rating.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ DB_POOL_MAX: '20' });
});
afterAll(() => t.close());

/** Every comparison's leaseCount equals its assignments in status LEASED (the queue's invariant). */
async function expectLeaseCounts(projectId: string) {
  const rows = await t.prisma.$queryRaw<{ id: string; leaseCount: number; leased: number }[]>`
    SELECT c.id, c."leaseCount",
      (SELECT count(*)::int FROM "Assignment" a WHERE a."comparisonId" = c.id AND a.status = 'LEASED') AS leased
    FROM "Comparison" c WHERE c."projectId" = ${projectId}::uuid`;
  expect(rows.length).toBeGreaterThan(0);
  for (const row of rows) expect(row.leaseCount, `comparison ${row.id}`).toBe(row.leased);
}

describe('import', () => {
  it('previews a file without storing it, then imports it; re-importing adds nothing', async () => {
    const { admin, projectId } = await createProject(t, {}, { prompts: 0, responses: 0 });
    const content =
      promptsJsonl(3, 2) +
      '\n\n' +
      JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }], response: 'Hello' });
    const dry = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/prompts/import`,
      headers: admin.headers,
      payload: { format: 'jsonl', content, dryRun: true },
    });
    expect(dry.json()).toMatchObject({
      dryRun: true,
      lines: 4,
      prompts: 4,
      newPrompts: 4,
      responses: 7,
      errors: [],
    });
    expect(dry.json().preview[0].messages[0].content).toMatch(/Question 0/);
    expect(await t.prisma.prompt.count({ where: { projectId } })).toBe(0);

    const real = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/prompts/import`,
      headers: admin.headers,
      payload: { format: 'jsonl', content },
    });
    expect(real.json()).toMatchObject({ dryRun: false, newPrompts: 4, responses: 7 });
    expect(await t.prisma.prompt.count({ where: { projectId } })).toBe(4);
    expect(await t.prisma.response.count({ where: { prompt: { projectId } } })).toBe(7);

    const again = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/prompts/import`,
      headers: admin.headers,
      payload: { format: 'jsonl', content },
    });
    expect(again.json()).toMatchObject({ newPrompts: 0 });
    expect(await t.prisma.response.count({ where: { prompt: { projectId } } })).toBe(7);
  });

  it('reports every bad line with its number and stores nothing from that file', async () => {
    const { admin, projectId } = await createProject(t, {}, { prompts: 2, responses: 2 });
    const before = {
      prompts: await t.prisma.prompt.count({ where: { projectId } }),
      responses: await t.prisma.response.count(),
    };
    const content = [
      JSON.stringify({ prompt: 'fine', responses: ['a', 'b'] }),
      '{not json',
      JSON.stringify({ prompt: '', responses: ['a'] }),
      JSON.stringify({ prompt: 'x', responses: [{ text: '' }] }),
      JSON.stringify({ prompt: 'y', colour: 'blue' }),
      JSON.stringify({ messages: [{ role: 'wizard', content: 'hi' }] }),
      JSON.stringify({ prompt: 'also fine', response: 'ok' }),
    ].join('\n');
    const response = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/prompts/import`,
      headers: admin.headers,
      payload: { format: 'jsonl', content },
    });
    expect(response.statusCode).toBe(400);
    const body = response.json<{ message: string; errors: { line: number; message: string }[] }>();
    expect(body.message).toMatch(/5 lines have errors; nothing was imported/);
    expect(body.errors.map((error) => error.line)).toEqual([2, 3, 4, 5, 6]);
    expect(body.errors[0]!.message).toMatch(/not valid JSON/);
    expect(body.errors[1]!.message).toMatch(/prompt must be a non-empty string/);
    expect(body.errors[2]!.message).toMatch(/responses\[0\]\.text/);
    expect(body.errors[3]!.message).toMatch(/unknown field colour/);
    expect(body.errors[4]!.message).toMatch(/role/);
    expect(await t.prisma.prompt.count({ where: { projectId } })).toBe(before.prompts);
    expect(await t.prisma.response.count()).toBe(before.responses);
  });

  it('imports CSV with quoted fields and reports CSV errors by line', async () => {
    const { admin, projectId } = await createProject(t, {}, { prompts: 0, responses: 0 });
    const csv =
      'id,prompt,response,source\np1,"Say ""hi""","Hi, there",model-a\np1,"Say ""hi""","Hello\nworld",model-b\np2,Count,123,model-a\n';
    const ok = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/prompts/import`,
      headers: admin.headers,
      payload: { format: 'csv', content: csv },
    });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json()).toMatchObject({ prompts: 2, responses: 3 });
    const texts = (
      await t.prisma.response.findMany({ where: { prompt: { projectId } }, orderBy: { text: 'asc' } })
    ).map((r) => r.text);
    expect(texts).toEqual(['123', 'Hello\nworld', 'Hi, there']);

    const bad = 'prompt,response\nfine,ok\n,empty prompt\n';
    const refused = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/prompts/import`,
      headers: admin.headers,
      payload: { format: 'csv', content: bad },
    });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().errors).toEqual([{ line: 3, message: 'prompt must be a non-empty string' }]);
    const noColumn = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/prompts/import`,
      headers: admin.headers,
      payload: { format: 'csv', content: 'prompt\nx\n' },
    });
    expect(noColumn.statusCode).toBe(400);
    expect(noColumn.json().message).toMatch(/response/);
  });

  it('generates comparisons by strategy without duplicating pairs', async () => {
    const { admin, projectId } = await createProject(t, {}, { prompts: 3, responses: 4 });
    expect(await t.prisma.comparison.count({ where: { projectId } })).toBe(3 * 6);
    const again = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/comparisons/generate`,
      headers: admin.headers,
      payload: { strategy: 'all-pairs' },
    });
    expect(again.json()).toEqual({ created: 0, skippedExisting: 18, skippedIdentical: 0 });

    const other = await createProject(t, {}, { prompts: 3, responses: 4 });
    const cross = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${other.projectId}/comparisons/generate`,
      headers: other.admin.headers,
      payload: { strategy: 'cross-source', sourceA: 'model-0', sourceB: 'model-1' },
    });
    expect(cross.json()).toEqual({ created: 0, skippedExisting: 3, skippedIdentical: 0 });
    const third = await createProject(t, {}, { prompts: 0, responses: 0 });
    await t.app.inject({
      method: 'POST',
      url: `/api/projects/${third.projectId}/prompts/import`,
      headers: third.admin.headers,
      payload: { format: 'jsonl', content: promptsJsonl(5, 4) },
    });
    const random = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${third.projectId}/comparisons/generate`,
      headers: third.admin.headers,
      payload: { strategy: 'random-pairs', maxPerPrompt: 2, seed: 7 },
    });
    expect(random.json()).toEqual({ created: 10, skippedExisting: 0, skippedIdentical: 0 });
    const crossOnly = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${third.projectId}/comparisons/generate`,
      headers: third.admin.headers,
      payload: { strategy: 'cross-source', sourceA: 'model-0', sourceB: 'model-3' },
    });
    expect(crossOnly.json().created + crossOnly.json().skippedExisting).toBe(5);
    const pairs = await t.prisma.comparison.findMany({
      where: { projectId: third.projectId },
      select: { responseAId: true, responseBId: true },
    });
    const keys = pairs.map((p) => [p.responseAId, p.responseBId].sort().join(':'));
    expect(new Set(keys).size).toBe(keys.length);
  });
});

describe('the queue', () => {
  it.each([
    ['next, then submit', false],
    ['each submission bringing the next, as the rating page does', true],
  ])(
    'lets 50 concurrent raters drain a project with overlap 3 (%s): exactly 3 distinct raters per comparison',
    async (_, chained) => {
      const setup = await createProject(t, { overlap: 3 }, { prompts: 10, responses: 3 });
      const raters = await addRaters(t, setup, 50);
      const comparisons = await t.prisma.comparison.count({ where: { projectId: setup.projectId } });
      expect(comparisons).toBe(30);

      const served = new Map<string, Set<string>>();
      await Promise.all(
        raters.map(async (rater) => {
          const seen = new Set<string>();
          served.set(rater.userId, seen);
          let assignment = await next(t, rater, setup.projectId);
          while (assignment) {
            const row = await t.prisma.assignment.findUniqueOrThrow({ where: { id: assignment.id } });
            expect(seen.has(row.comparisonId), 'a rater was served the same comparison twice').toBe(false);
            seen.add(row.comparisonId);
            const response = await submit(t, rater, assignment.id, {
              choice: Math.random() < 0.5 ? 'LEFT' : 'RIGHT',
              strength: 2,
              timeSpentMs: 10,
              ...(chained ? { next: {} } : {}),
            });
            expect(response.statusCode, response.body).toBe(201);
            assignment = chained
              ? response.json<{ next: AssignmentJson | null }>().next
              : await next(t, rater, setup.projectId);
          }
        }),
      );

      const rows = await t.prisma.comparison.findMany({
        where: { projectId: setup.projectId },
        include: { preferences: true },
      });
      for (const row of rows) {
        expect(row.voteCount).toBe(3);
        expect(row.preferences).toHaveLength(3);
        expect(new Set(row.preferences.map((p) => p.raterId)).size).toBe(3);
      }
      expect([...served.values()].reduce((sum, set) => sum + set.size, 0)).toBe(90);
      // Nothing is left for anyone, and no slot is held.
      expect(await next(t, raters[0]!, setup.projectId)).toBeNull();
      await expectLeaseCounts(setup.projectId);
    },
  );

  it('returns an expired lease to the queue, and never gives out more leases than votes wanted', async () => {
    const setup = await createProject(t, { overlap: 1 }, { prompts: 1, responses: 2 });
    const [first, second] = await addRaters(t, setup, 2);
    const leased = await next(t, first!, setup.projectId);
    expect(leased).not.toBeNull();
    expect(await next(t, second!, setup.projectId)).toBeNull();
    // The same lease comes back to its holder (e.g. after a reload).
    expect((await next(t, first!, setup.projectId))?.id).toBe(leased!.id);

    await t.prisma.assignment.update({
      where: { id: leased!.id },
      data: { expiresAt: new Date(Date.now() - 1000) },
    });
    const taken = await next(t, second!, setup.projectId);
    expect(taken).not.toBeNull();
    const comparisonIds = await t.prisma.assignment.findMany({
      where: { id: { in: [leased!.id, taken!.id] } },
      select: { comparisonId: true },
    });
    expect(new Set(comparisonIds.map((row) => row.comparisonId)).size).toBe(1);

    // The second rater judges it; the first one's late submission is refused, not counted twice.
    expect((await submit(t, second!, taken!.id)).statusCode).toBe(201);
    const late = await submit(t, first!, leased!.id);
    expect(late.statusCode).toBe(409);
    expect(
      (await t.prisma.comparison.findFirstOrThrow({ where: { projectId: setup.projectId } })).voteCount,
    ).toBe(1);
    await expectLeaseCounts(setup.projectId);
  });

  it('prefetches: a second call with exclude gives a different comparison', async () => {
    const setup = await createProject(t, {}, { prompts: 2, responses: 2 });
    const [rater] = await addRaters(t, setup, 1);
    const current = await next(t, rater!, setup.projectId);
    const prefetched = await next(t, rater!, setup.projectId, [current!.id]);
    expect(prefetched).not.toBeNull();
    expect(prefetched!.id).not.toBe(current!.id);
  });

  it('serves higher priorities first, and raters judge blind', async () => {
    const setup = await createProject(t, {}, { prompts: 3, responses: 2 });
    const [rater] = await addRaters(t, setup, 1);
    const target = await t.prisma.comparison.findFirstOrThrow({
      where: { projectId: setup.projectId },
      orderBy: { id: 'desc' },
    });
    const patched = await t.app.inject({
      method: 'PATCH',
      url: `/api/comparisons/${target.id}`,
      headers: setup.admin.headers,
      payload: { priority: 10 },
    });
    expect(patched.statusCode).toBe(200);
    const assignment = await next(t, rater!, setup.projectId);
    const row = await t.prisma.assignment.findUniqueOrThrow({ where: { id: assignment!.id } });
    expect(row.comparisonId).toBe(target.id);
    expect(Object.keys(assignment!).sort()).toEqual([
      'expiresAt',
      'id',
      'left',
      'messages',
      'projectId',
      'right',
    ]);
    expect(JSON.stringify(assignment)).not.toMatch(/model-|source|policy|voteCount/);
  });

  it('gives a removed member’s leases back to the queue at once', async () => {
    const setup = await createProject(t, { overlap: 1 }, { prompts: 1, responses: 2 });
    const [leaving, staying] = await addRaters(t, setup, 2);
    expect(await next(t, leaving!, setup.projectId)).not.toBeNull();
    expect(await next(t, staying!, setup.projectId)).toBeNull();
    const removed = await t.app.inject({
      method: 'DELETE',
      url: `/api/projects/${setup.projectId}/members/${leaving!.userId}`,
      headers: setup.admin.headers,
    });
    expect(removed.statusCode, removed.body).toBe(204);
    await expectLeaseCounts(setup.projectId);
    expect(await next(t, staying!, setup.projectId)).not.toBeNull();
  });

  it('does not offer or count comparisons completed by imported judgments', async () => {
    // 2 comparisons to rate, then 3 preference pairs imported (complete on arrival).
    const setup = await createProject(t, {}, { prompts: 2, responses: 2 });
    const pairs = Array.from({ length: 3 }, (_, i) =>
      JSON.stringify({ prompt: `Imported ${i}?`, chosen: `good ${i}`, rejected: `bad ${i}` }),
    ).join('\n');
    const imported = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${setup.projectId}/preferences/import`,
      headers: setup.admin.headers,
      payload: { format: 'trl', content: pairs, source: 'earlier-study' },
    });
    expect(imported.statusCode, imported.body).toBe(200);
    const closed = await t.prisma.comparison.findMany({
      where: { projectId: setup.projectId, preferences: { some: { source: 'IMPORTED' } } },
    });
    expect(closed.map((c) => [c.open, c.voteCount, c.requiredVotes])).toEqual(
      Array.from({ length: 3 }, () => [false, 1, 1]),
    );

    const [rater] = await addRaters(t, setup, 1);
    const progress = await t.app.inject({
      url: `/api/projects/${setup.projectId}/progress`,
      headers: rater!.headers,
    });
    expect(progress.json()).toMatchObject({ remaining: 6, availableToMe: 2 });
    const first = await next(t, rater!, setup.projectId);
    const second = await next(t, rater!, setup.projectId, [first!.id]);
    expect(await next(t, rater!, setup.projectId, [first!.id, second!.id])).toBeNull();
    // Held leases are still the rater's to judge; a judged one is not.
    const available = async () =>
      (
        await t.app.inject({ url: `/api/projects/${setup.projectId}/progress`, headers: rater!.headers })
      ).json<{ availableToMe: number }>().availableToMe;
    expect(await available()).toBe(2);
    expect((await submit(t, rater!, first!.id)).statusCode).toBe(201);
    expect(await available()).toBe(1);
    for (const view of [first!, second!]) expect(view.messages[0]!.content).not.toMatch(/^Imported/);

    // Raising the overlap of a complete comparison reopens it (open is computed, never written).
    const reopened = await t.prisma.comparison.update({
      where: { id: closed[0]!.id },
      data: { requiredVotes: 2 },
    });
    expect(reopened.open).toBe(true);
  });

  it('lists the projects one may rate: members their own, admins every active one', async () => {
    const setup = await createProject(t, {}, { prompts: 1, responses: 2 });
    const archived = await createProject(t, {}, { prompts: 1, responses: 2 });
    await t.prisma.project.update({ where: { id: archived.projectId }, data: { archivedAt: new Date() } });
    const [member] = await addRaters(t, setup, 1);
    const outsider = await createAndSignIn(t, 'RATER');
    const otherAdmin = await createAndSignIn(t, 'ADMIN');
    const listed = async (who: { headers: Record<string, string> }) =>
      (await t.app.inject({ url: '/api/rating/projects', headers: who.headers }))
        .json<{ id: string; progress: { availableToMe: number } }[]>()
        .map((project) => project.id);
    expect(await listed(member!)).toEqual([setup.projectId]);
    expect(await listed(outsider)).not.toContain(setup.projectId);
    const adminSees = await listed(otherAdmin);
    expect(adminSees).toContain(setup.projectId);
    expect(adminSees).not.toContain(archived.projectId);
    // What the list offers, the admin can rate.
    expect(await next(t, otherAdmin, setup.projectId)).not.toBeNull();
  });

  it('keeps raters out of projects they are not members of', async () => {
    const setup = await createProject(t, {}, { prompts: 1, responses: 2 });
    const outsider = await createAndSignIn(t, 'RATER');
    for (const url of [
      `/api/projects/${setup.projectId}`,
      `/api/projects/${setup.projectId}/rating-context`,
      `/api/projects/${setup.projectId}/progress`,
    ]) {
      expect((await t.app.inject({ url, headers: outsider.headers })).statusCode).toBe(404);
    }
    const response = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${setup.projectId}/leases/next`,
      headers: outsider.headers,
      payload: {},
    });
    expect(response.statusCode).toBe(404);
    const listed = await t.app.inject({ url: '/api/projects', headers: outsider.headers });
    expect(listed.json<{ id: string }[]>().map((p) => p.id)).not.toContain(setup.projectId);
  });
});

describe('submissions', () => {
  it('stores exactly one preference for concurrent submissions with one idempotency key', async () => {
    const setup = await createProject(t, {}, { prompts: 1, responses: 2 });
    const [rater] = await addRaters(t, setup, 1);
    const assignment = await next(t, rater!, setup.projectId);
    const key = randomUUID();
    const body = { choice: 'RIGHT', strength: 0, timeSpentMs: 3000 };
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => submit(t, rater!, assignment!.id, body, key)),
    );
    for (const answer of answers) expect(answer.statusCode, answer.body).toBe(201);
    expect(new Set(answers.map((answer) => answer.json().preferenceId)).size).toBe(1);
    expect(await t.prisma.preference.count({ where: { raterId: rater!.userId } })).toBe(1);
    expect(
      (await t.prisma.comparison.findFirstOrThrow({ where: { projectId: setup.projectId } })).voteCount,
    ).toBe(1);

    const different = await submit(t, rater!, assignment!.id, { ...body, choice: 'LEFT' }, key);
    expect(different.statusCode).toBe(422);
    const missingKey = await t.app.inject({
      method: 'POST',
      url: `/api/leases/${assignment!.id}/submit`,
      headers: rater!.headers,
      payload: body,
    });
    expect(missingKey.statusCode).toBe(400);
  });

  it('answers a submission with the next comparison when asked, one request per judgment', async () => {
    // 3 prompts x 2 responses = 3 comparisons; the rater holds one on screen and one prefetched.
    const setup = await createProject(t, {}, { prompts: 3, responses: 2 });
    const [rater] = await addRaters(t, setup, 1);
    const shown = await next(t, rater!, setup.projectId);
    const prefetched = await next(t, rater!, setup.projectId, [shown!.id]);
    expect(prefetched!.id).not.toBe(shown!.id);

    const body = { choice: 'LEFT', strength: 1, timeSpentMs: 900 };
    const key = randomUUID();
    const first = await submit(t, rater!, shown!.id, { ...body, next: { exclude: [prefetched!.id] } }, key);
    expect(first.statusCode, first.body).toBe(201);
    const third = first.json<{ next: { id: string; left: { text: string } } | null }>().next;
    expect(third).not.toBeNull();
    expect([shown!.id, prefetched!.id]).not.toContain(third!.id);
    expect(await t.prisma.assignment.count({ where: { raterId: rater!.userId, status: 'LEASED' } })).toBe(2);

    // A retry (same key and judgment) is answered as before; its `next` may differ and is not part
    // of the judgment. The held leases come back instead of new ones.
    const retry = await submit(t, rater!, shown!.id, { ...body, next: {} }, key);
    expect(retry.statusCode, retry.body).toBe(201);
    expect(retry.json().preferenceId).toBe(first.json().preferenceId);
    expect([prefetched!.id, third!.id]).toContain(retry.json().next.id);
    expect(await t.prisma.preference.count({ where: { raterId: rater!.userId } })).toBe(1);

    // Without `next` the answer has none; with nothing left it is null.
    const second = await submit(t, rater!, prefetched!.id);
    expect(second.statusCode).toBe(201);
    expect(second.json()).not.toHaveProperty('next');
    const last = await submit(t, rater!, third!.id, { ...body, next: { exclude: [] } });
    expect(last.statusCode).toBe(201);
    expect(last.json().next).toBeNull();
    await expectLeaseCounts(setup.projectId);

    // A project archived meanwhile takes no judgment more, not even the one on screen.
    const other = await createProject(t, {}, { prompts: 2, responses: 2 });
    const [late] = await addRaters(t, other, 1);
    const held = await next(t, late!, other.projectId);
    await t.prisma.project.update({ where: { id: other.projectId }, data: { archivedAt: new Date() } });
    const archived = await submit(t, late!, held!.id, { ...body, next: {} });
    expect(archived.statusCode, archived.body).toBe(403);
    expect(archived.json().code).toBe('PROJECT_ARCHIVED');
  });

  it('limits judgments and skips per rater, not per address, and leaves simulated raters alone', async () => {
    const limited = await createTestApp({ SUBMIT_RATE_LIMIT_PER_MINUTE: '3' });
    try {
      const setup = await createProject(limited, {}, { prompts: 6, responses: 2 });
      const [rater, other] = await addRaters(limited, setup, 2);
      const codes: number[] = [];
      for (let i = 0; i < 3; i++) {
        const assignment = await next(limited, rater!, setup.projectId);
        const response =
          i === 1
            ? await limited.app.inject({
                method: 'POST',
                url: `/api/leases/${assignment!.id}/skip`,
                headers: rater!.headers,
                payload: { reason: 'Unclear' },
              })
            : await submit(limited, rater!, assignment!.id);
        codes.push(response.statusCode);
      }
      expect(codes).toEqual([201, 204, 201]);
      const held = await next(limited, rater!, setup.projectId);
      const refused = await submit(limited, rater!, held!.id);
      expect(refused.statusCode).toBe(429);
      expect(refused.json().message).toMatch(/in a minute; try again in \d+ s/);
      expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
      expect(await limited.prisma.preference.count({ where: { raterId: rater!.userId } })).toBe(2);
      expect((await limited.prisma.assignment.findUniqueOrThrow({ where: { id: held!.id } })).status).toBe(
        'LEASED',
      );

      // Another rater (same address) has a budget of their own.
      const theirs = await next(limited, other!, setup.projectId);
      expect((await submit(limited, other!, theirs!.id)).statusCode).toBe(201);

      // Simulated accounts (the product's own CLI drives them) are not limited.
      await limited.prisma.user.update({ where: { id: rater!.userId }, data: { simulated: true } });
      await limited.app.services.auth.credentialsCurrent();
      expect((await submit(limited, rater!, held!.id)).statusCode).toBe(201);
      for (let i = 0; i < 2; i++) {
        const assignment = await next(limited, rater!, setup.projectId);
        expect((await submit(limited, rater!, assignment!.id)).statusCode).toBe(201);
      }
    } finally {
      await limited.close();
    }
  });

  it('stores the un-swapped side and the shown order', async () => {
    const setup = await createProject(t, {}, { prompts: 8, responses: 2 });
    const [rater] = await addRaters(t, setup, 1);
    const seen = { swapped: 0, straight: 0 };
    for (;;) {
      const assignment = await next(t, rater!, setup.projectId);
      if (!assignment) break;
      const row = await t.prisma.assignment.findUniqueOrThrow({
        where: { id: assignment.id },
        include: { comparison: { include: { responseA: true } } },
      });
      const response = await submit(t, rater!, assignment.id, {
        choice: 'LEFT',
        strength: 1,
        timeSpentMs: 500,
      });
      expect(response.statusCode).toBe(201);
      const stored = await t.prisma.preference.findUniqueOrThrow({
        where: { id: response.json().preferenceId },
      });
      expect(stored.shownSwapped).toBe(row.swapped);
      expect(stored.choice).toBe(row.swapped ? 'B' : 'A');
      expect(assignment.left.text).toBe(
        row.swapped
          ? (await t.prisma.response.findUniqueOrThrow({ where: { id: row.comparison.responseBId } })).text
          : row.comparison.responseA.text,
      );
      seen[row.swapped ? 'swapped' : 'straight']++;
    }
    expect(seen.swapped + seen.straight).toBe(8);
  });

  it('enforces the label schema', async () => {
    const setup = await createProject(
      t,
      {
        labelSchema: {
          allowTie: false,
          allowBothBad: true,
          strengths: ['Much better', 'Better'],
          criteria: [{ key: 'harmless', label: 'Harmlessness' }],
          flags: [{ key: 'unsafe', label: 'Unsafe' }],
        },
      },
      { prompts: 1, responses: 2 },
    );
    const [rater] = await addRaters(t, setup, 1);
    const assignment = await next(t, rater!, setup.projectId);
    const attempts: [Record<string, unknown>, RegExp][] = [
      [{ choice: 'TIE', timeSpentMs: 1 }, /does not allow ties/],
      [{ choice: 'LEFT', timeSpentMs: 1 }, /strength is required/],
      [{ choice: 'LEFT', strength: 2, timeSpentMs: 1 }, /strength must be below 2/],
      [{ choice: 'BOTH_BAD', strength: 0, timeSpentMs: 1 }, /strength applies only/],
      [{ choice: 'LEFT', strength: 0, criteria: { helpful: 'LEFT' }, timeSpentMs: 1 }, /Unknown criterion/],
      [{ choice: 'LEFT', strength: 0, flags: ['boring'], timeSpentMs: 1 }, /Unknown flag/],
    ];
    for (const [body, message] of attempts) {
      const response = await submit(t, rater!, assignment!.id, body);
      expect(response.statusCode, JSON.stringify(body)).toBe(400);
      expect(response.json().message).toMatch(message);
    }
    const ok = await submit(t, rater!, assignment!.id, {
      choice: 'RIGHT',
      strength: 0,
      criteria: { harmless: 'LEFT' },
      flags: ['unsafe'],
      rationale: '  Left is rude.  ',
      timeSpentMs: 4200,
    });
    expect(ok.statusCode, ok.body).toBe(201);
    const stored = await t.prisma.preference.findUniqueOrThrow({ where: { id: ok.json().preferenceId } });
    const { swapped } = await t.prisma.assignment.findUniqueOrThrow({ where: { id: stored.assignmentId! } });
    expect(stored.choice).toBe(swapped ? 'A' : 'B');
    expect(stored.criteria).toEqual({ harmless: swapped ? 'B' : 'A' });
    expect(stored.flags).toEqual(['unsafe']);
    expect(stored.rationale).toBe('Left is rude.');
    expect(stored.timeSpentMs).toBe(4200);
    expect(stored.strength).toBe(0);
  });

  it('checks a judgment against the project as it is when submitted, whichever server leased it', async () => {
    const setup = await createProject(
      t,
      { labelSchema: { allowTie: true, allowBothBad: true, strengths: ['Better'], criteria: [], flags: [] } },
      { prompts: 4, responses: 2 },
    );
    const [rater] = await addRaters(t, setup, 1);
    const first = await next(t, rater!, setup.projectId);
    // Ties were allowed when the comparison was leased, and are not any more.
    const edited = await t.app.inject({
      method: 'PATCH',
      url: `/api/projects/${setup.projectId}`,
      headers: setup.admin.headers,
      payload: {
        labelSchema: { allowTie: false, allowBothBad: true, strengths: ['Better'], criteria: [], flags: [] },
      },
    });
    expect(edited.statusCode, edited.body).toBe(200);
    const tie = await submit(t, rater!, first!.id, { choice: 'TIE', timeSpentMs: 5, next: {} });
    expect(tie.statusCode, tie.body).toBe(400);
    expect(tie.json().message).toMatch(/does not allow ties/);
    expect(await t.prisma.preference.count({ where: { raterId: rater!.userId } })).toBe(0);

    // A second server on the same database: leases handed out by one are judged through the other.
    const peerPrisma = createPrisma(t.database.url);
    const peer = await buildApp({ config: t.config, prisma: peerPrisma, logger: false });
    try {
      const other: TestApp = { ...t, app: peer };
      const body = { choice: 'LEFT', strength: 0, timeSpentMs: 5, next: {} };
      const key = randomUUID();
      const viaPeer = await submit(other, rater!, first!.id, body, key);
      expect(viaPeer.statusCode, viaPeer.body).toBe(201);
      const second = viaPeer.json<{ next: AssignmentJson }>().next;
      expect(second.id).not.toBe(first!.id);
      // The retry reaches the first server: the same judgment, nothing new stored.
      const retry = await submit(t, rater!, first!.id, body, key);
      expect(retry.statusCode, retry.body).toBe(201);
      expect(retry.json().preferenceId).toBe(viaPeer.json().preferenceId);
      const back = await submit(t, rater!, second.id, { ...body, choice: 'RIGHT' });
      expect(back.statusCode, back.body).toBe(201);
      const stored = await t.prisma.preference.findMany({
        where: { raterId: rater!.userId },
        orderBy: { createdAt: 'asc' },
      });
      const swapped = async (id: string) =>
        (await t.prisma.assignment.findUniqueOrThrow({ where: { id } })).swapped;
      expect(stored.map((p) => [p.assignmentId, p.choice])).toEqual([
        [first!.id, (await swapped(first!.id)) ? 'B' : 'A'],
        [second.id, (await swapped(second.id)) ? 'A' : 'B'],
      ]);
      // A server that did not hand out the lease refuses another rater's submission the same way.
      const [stranger] = await addRaters(t, setup, 1);
      const held = back.json<{ next: AssignmentJson }>().next;
      for (const app of [t, other])
        expect((await submit(app, stranger!, held.id, body)).statusCode).toBe(404);
      await expectLeaseCounts(setup.projectId);
    } finally {
      await peer.close();
      await peerPrisma.$disconnect();
      // Prisma ends the pool only if it connected itself; this one served raw queries alone.
      if (!poolOf(peerPrisma).ending) await poolOf(peerPrisma).end();
    }
  });

  it('skips for good, and undoes within the window', async () => {
    const setup = await createProject(t, {}, { prompts: 2, responses: 2 });
    const [rater] = await addRaters(t, setup, 1);
    const first = await next(t, rater!, setup.projectId);
    const skipped = await t.app.inject({
      method: 'POST',
      url: `/api/leases/${first!.id}/skip`,
      headers: rater!.headers,
      payload: { reason: 'Not my language' },
    });
    expect(skipped.statusCode).toBe(204);
    const second = await next(t, rater!, setup.projectId);
    expect(second!.id).not.toBe(first!.id);
    const done = await submit(t, rater!, second!.id);
    expect(done.statusCode).toBe(201);
    expect(await next(t, rater!, setup.projectId)).toBeNull();

    const undone = await t.app.inject({
      method: 'POST',
      url: `/api/judgments/${done.json().preferenceId}/undo`,
      headers: rater!.headers,
    });
    expect(undone.statusCode, undone.body).toBe(200);
    expect(undone.json().assignment).toMatchObject({
      id: second!.id,
      left: second!.left,
      right: second!.right,
    });
    expect(await t.prisma.preference.count({ where: { raterId: rater!.userId } })).toBe(0);
    const comparison = await t.prisma.assignment.findUniqueOrThrow({
      where: { id: second!.id },
      include: { comparison: true },
    });
    expect(comparison.comparison.voteCount).toBe(0);
    const redo = await submit(t, rater!, second!.id, { choice: 'TIE', timeSpentMs: 800 });
    expect(redo.statusCode).toBe(201);
    await expectLeaseCounts(setup.projectId);

    // Another rater cannot undo it, and after the window nobody can.
    const other = (await addRaters(t, setup, 1))[0]!;
    expect(
      (
        await t.app.inject({
          method: 'POST',
          url: `/api/judgments/${redo.json().preferenceId}/undo`,
          headers: other.headers,
        })
      ).statusCode,
    ).toBe(404);
    await t.prisma.preference.update({
      where: { id: redo.json().preferenceId },
      data: { createdAt: new Date(Date.now() - 120_000) },
    });
    expect(
      (
        await t.app.inject({
          method: 'POST',
          url: `/api/judgments/${redo.json().preferenceId}/undo`,
          headers: rater!.headers,
        })
      ).statusCode,
    ).toBe(409);
    // And nobody submits someone else's assignment.
    expect((await submit(t, other, second!.id)).statusCode).toBe(404);
  });
});

describe('gold and quality', () => {
  it('mixes in gold, measures accuracy on it, and reports agreement and biases', async () => {
    const setup = await createProject(t, { overlap: 2, goldRate: 1 }, { prompts: 3, responses: 2 });
    const raters = await addRaters(t, setup, 2);
    const comparisons = await t.prisma.comparison.findMany({
      where: { projectId: setup.projectId },
      orderBy: { id: 'asc' },
    });
    const gold = comparisons[0]!;
    expect(
      (
        await t.app.inject({
          method: 'PATCH',
          url: `/api/comparisons/${gold.id}`,
          headers: setup.admin.headers,
          payload: { goldChoice: 'A' },
        })
      ).json(),
    ).toMatchObject({ isGold: true, goldChoice: 'A' });

    // Both raters always pick response A (whatever side it is shown on).
    for (const rater of raters) {
      const first = await next(t, rater, setup.projectId);
      const firstRow = await t.prisma.assignment.findUniqueOrThrow({ where: { id: first!.id } });
      expect(firstRow.comparisonId, 'gold comes first at goldRate 1').toBe(gold.id);
      let assignment = first;
      while (assignment) {
        const row = await t.prisma.assignment.findUniqueOrThrow({ where: { id: assignment.id } });
        const choice = row.swapped ? 'RIGHT' : 'LEFT';
        expect(
          (await submit(t, rater, assignment.id, { choice, strength: 0, timeSpentMs: 1000 })).statusCode,
        ).toBe(201);
        assignment = await next(t, rater, setup.projectId);
      }
    }
    const quality = await t.app.inject({
      url: `/api/projects/${setup.projectId}/quality`,
      headers: setup.admin.headers,
    });
    expect(quality.statusCode).toBe(200);
    const body = quality.json();
    expect(body.judgments).toBe(6);
    expect(body.comparisonsWithMultipleJudgments).toBe(2);
    expect(body.pairwiseAgreement).toBe(1);
    expect(body.choiceCounts).toEqual({ A: 6, B: 0, TIE: 0, BOTH_BAD: 0 });
    const chosen = await t.prisma.preference.findMany({
      where: { comparison: { projectId: setup.projectId } },
      include: { comparison: { include: { responseA: true, responseB: true } } },
    });
    const longer = chosen.filter(
      (p) => p.comparison.responseA.text.length > p.comparison.responseB.text.length,
    ).length;
    expect(body.longerShare).toBeCloseTo(longer / 6);
    expect(body.positionBias).toBeCloseTo(chosen.filter((p) => !p.shownSwapped).length / 6 - 0.5);
    expect(body.raters).toHaveLength(2);
    for (const rater of body.raters) {
      expect(rater).toMatchObject({
        judgments: 3,
        goldJudged: 1,
        goldAccuracy: 1,
        majorityAgreement: 1,
        medianTimeMs: 1000,
      });
    }
    const progress = await t.app.inject({
      url: `/api/projects/${setup.projectId}/progress`,
      headers: raters[0]!.headers,
    });
    expect(progress.json()).toMatchObject({ today: 3, total: 3, remaining: 0, availableToMe: 0 });
  });
});
