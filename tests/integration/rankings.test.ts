// K-wise rankings against real PostgreSQL: making ranking items, the lease's shown order, checked
// and stored rankings (alone and in a batch), undo, and their pairs where pairs are read.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kendallTau, kendallW } from '../../core/ranking/rankings.js';
import { createTestApp, type SignedIn, type TestApp } from '../support/app.js';
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

type RankedAssignment = AssignmentJson & { ranked?: { text: string }[] };

/** A project whose prompts have `responses` responses each (one repeated text on the last prompt). */
async function rankingProject(settings: Record<string, unknown> = {}, prompts = 3, responses = 5) {
  const setup = await createProject(t, settings, { prompts: 0, responses: 0 });
  const content =
    promptsJsonl(prompts, responses) +
    '\n' +
    JSON.stringify({
      id: 'few',
      prompt: 'Too few distinct answers',
      responses: [{ text: 'same' }, { text: 'same' }, { text: 'other' }, { text: 'third' }],
    });
  const imported = await t.app.inject({
    method: 'POST',
    url: `/api/projects/${setup.projectId}/prompts/import`,
    headers: setup.admin.headers,
    payload: { format: 'jsonl', content },
  });
  expect(imported.statusCode, imported.body).toBe(200);
  return setup;
}

function generate(admin: SignedIn, projectId: string, payload: Record<string, unknown>) {
  return t.app.inject({
    method: 'POST',
    url: `/api/projects/${projectId}/comparisons/generate`,
    headers: admin.headers,
    payload,
  });
}

describe('ranking items', () => {
  it('are made from K responses of distinct text per prompt, once per set', async () => {
    const { admin, projectId } = await rankingProject();
    const refused = await generate(admin, projectId, { strategy: 'ranking' });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().message).toMatch(/rankSize/);
    expect((await generate(admin, projectId, { strategy: 'ranking', rankSize: 10 })).statusCode).toBe(400);

    const made = await generate(admin, projectId, { strategy: 'ranking', rankSize: 4, seed: 7 });
    expect(made.statusCode, made.body).toBe(200);
    // Three prompts of 5 distinct answers; the fourth has 3 distinct texts only (the importer keeps
    // one of the two equal ones).
    expect(made.json()).toMatchObject({ created: 3, skippedTooFew: 1, skippedIdentical: 0 });
    const items = await t.prisma.comparison.findMany({ where: { projectId }, include: { prompt: true } });
    for (const item of items) {
      expect(item.responseIds).toHaveLength(4);
      expect(new Set(item.responseIds).size).toBe(4);
      expect([item.responseAId, item.responseBId]).toEqual(item.responseIds.slice(0, 2));
    }
    // The list says which items are rankings; a ranking has no gold answer.
    const listed = await t.app.inject({
      method: 'GET',
      url: `/api/projects/${projectId}/comparisons`,
      headers: admin.headers,
    });
    expect(listed.json().items.map((item: { rankSize: number }) => item.rankSize)).toEqual([4, 4, 4]);
    const gold = await t.app.inject({
      method: 'PATCH',
      url: `/api/comparisons/${items[0]!.id}`,
      headers: admin.headers,
      payload: { goldChoice: 'A' },
    });
    expect(gold.statusCode).toBe(400);
    expect(gold.json().message).toMatch(/Gold answers are for pairs/);

    // A second run with all five sets of a prompt drawn: new sets only.
    const more = await generate(admin, projectId, {
      strategy: 'ranking',
      rankSize: 4,
      maxPerPrompt: 5,
      seed: 8,
    });
    expect(more.statusCode, more.body).toBe(200);
    const all = await t.prisma.comparison.findMany({ where: { projectId } });
    const sets = all.map((c) => [...c.responseIds].sort().join());
    expect(new Set(sets).size).toBe(all.length);
    expect(all.length).toBe(3 + more.json().created);
    expect(all.length).toBeLessThanOrEqual(3 * 5);
  });
});

describe('judging a ranking', () => {
  it('shows the K responses in a per-lease order and stores the ranks in stored order', async () => {
    const setup = await rankingProject({ overlap: 3 });
    await generate(setup.admin, setup.projectId, { strategy: 'ranking', rankSize: 4, seed: 1 });
    const [rater] = await addRaters(t, setup, 1);
    const lease = (await next(t, rater!, setup.projectId)) as RankedAssignment;
    expect(lease.ranked).toHaveLength(4);
    expect([lease.left, lease.right]).toEqual(lease.ranked!.slice(0, 2));

    // Wrong shapes: a choice, a rank per response missing, a rank past K, strength.
    for (const [body, message] of [
      [{ choice: 'LEFT', timeSpentMs: 10 }, /ranking/],
      [{ ranking: [1, 2, 3], timeSpentMs: 10 }, /each of the 4/],
      [{ ranking: [1, 2, 3, 5], timeSpentMs: 10 }, /1 \(best\) to 4/],
      [{ ranking: [1, 2, 3, 4], strength: 0, timeSpentMs: 10 }, /order only/],
    ] as const) {
      const answer = await submit(t, rater!, lease.id, body);
      expect(answer.statusCode, JSON.stringify(body)).toBe(400);
      expect(answer.json().message).toMatch(message);
    }

    // Shown 3rd best, then 1st and 4th tied, then 2nd (any rank numbers; stored as 1, 1, 3, 4).
    const stored = await submit(t, rater!, lease.id, { ranking: [2, 4, 1, 2], timeSpentMs: 900 });
    expect(stored.statusCode, stored.body).toBe(201);
    const preference = await t.prisma.preference.findUniqueOrThrow({
      where: { id: stored.json().preferenceId },
      include: { comparison: true },
    });
    const texts = await t.prisma.response.findMany({
      where: { id: { in: preference.comparison.responseIds } },
    });
    const textOf = new Map(texts.map((r) => [r.id, r.text]));
    const rankOfText = new Map(
      preference.comparison.responseIds.map((id, i) => [textOf.get(id)!, preference.ranks[i]!]),
    );
    expect(lease.ranked!.map((r) => rankOfText.get(r.text))).toEqual([2, 4, 1, 2]);
    expect([...preference.ranks].sort()).toEqual([1, 2, 2, 4]);
    // The choice is the first two stored responses' order.
    const [a, b] = preference.ranks;
    expect(preference.choice).toBe(a! < b! ? 'A' : a! > b! ? 'B' : 'TIE');

    // Undo gives the same lease back, in the same shown order.
    const undone = await t.app.inject({
      method: 'POST',
      url: `/api/judgments/${preference.id}/undo`,
      headers: rater!.headers,
    });
    expect(undone.statusCode, undone.body).toBe(200);
    expect(undone.json().assignment.ranked).toEqual(lease.ranked);
    expect(await t.prisma.preference.count({ where: { id: preference.id } })).toBe(0);
  });

  it('refuses ties where the project does not allow them, and a ranking for a pair', async () => {
    const setup = await rankingProject({
      labelSchema: { allowTie: false, allowBothBad: true, strengths: [], criteria: [], flags: [] },
    });
    await generate(setup.admin, setup.projectId, { strategy: 'ranking', rankSize: 3, seed: 2 });
    await generate(setup.admin, setup.projectId, { strategy: 'random-pairs', maxPerPrompt: 1, seed: 2 });
    const [rater] = await addRaters(t, setup, 1);
    let sawPair = false;
    let sawRanking = false;
    for (let lease = (await next(t, rater!, setup.projectId)) as RankedAssignment | null; lease;) {
      if (lease.ranked) {
        sawRanking = true;
        const tie = await submit(t, rater!, lease.id, { ranking: [1, 1, 3], timeSpentMs: 5 });
        expect(tie.statusCode).toBe(400);
        expect(tie.json().message).toMatch(/does not allow ties/);
        expect((await submit(t, rater!, lease.id, { ranking: [3, 1, 2], timeSpentMs: 5 })).statusCode).toBe(
          201,
        );
      } else {
        sawPair = true;
        const ranking = await submit(t, rater!, lease.id, { ranking: [1, 2, 3], timeSpentMs: 5 });
        expect(ranking.statusCode).toBe(400);
        expect(ranking.json().message).toMatch(/is a pair/);
        expect((await submit(t, rater!, lease.id, { choice: 'LEFT', timeSpentMs: 5 })).statusCode).toBe(201);
      }
      lease = (await next(t, rater!, setup.projectId, [])) as RankedAssignment | null;
    }
    expect(sawPair && sawRanking).toBe(true);
  });

  it('stores rankings submitted at once by many raters (the batched path) exactly once each', async () => {
    const setup = await rankingProject({ overlap: 3 }, 8, 4);
    await generate(setup.admin, setup.projectId, { strategy: 'ranking', rankSize: 4, seed: 3 });
    const raters = await addRaters(t, setup, 12);
    const leases = await Promise.all(raters.map((rater) => next(t, rater, setup.projectId)));
    const keys = raters.map(() => randomUUID());
    const answers = await Promise.all(
      raters.map((rater, i) =>
        submit(t, rater, leases[i]!.id, { ranking: [4, 3, 2, 1], timeSpentMs: 50, next: {} }, keys[i]),
      ),
    );
    for (const answer of answers) {
      expect(answer.statusCode, answer.body).toBe(201);
      const following = answer.json().next as RankedAssignment | null;
      if (following) expect(following.ranked).toHaveLength(4);
    }
    // Retries with the same keys store nothing more.
    await Promise.all(
      raters.map((rater, i) =>
        submit(t, rater, leases[i]!.id, { ranking: [4, 3, 2, 1], timeSpentMs: 50, next: {} }, keys[i]),
      ),
    );
    const stored = await t.prisma.preference.findMany({
      where: { comparison: { projectId: setup.projectId } },
      include: { comparison: true },
    });
    expect(stored).toHaveLength(12);
    for (const preference of stored) {
      expect(preference.ranks).toHaveLength(4);
      expect([...preference.ranks].sort()).toEqual([1, 2, 3, 4]);
    }
  });
});

describe('rankings in exports', () => {
  it('pairwise formats carry the pairs of each ranking, marked; the ranking format one row each', async () => {
    const setup = await rankingProject({ overlap: 2 }, 1, 4);
    await generate(setup.admin, setup.projectId, { strategy: 'ranking', rankSize: 4, seed: 5 });
    const raters = await addRaters(t, setup, 2);
    const shown: { text: string }[][] = [];
    // Rater 1: shown order best to worst; rater 2: the 2nd and 3rd shown tied first.
    for (const [i, ranking] of [
      [1, 2, 3, 4],
      [3, 1, 1, 4],
    ].entries()) {
      const lease = (await next(t, raters[i]!, setup.projectId)) as RankedAssignment;
      shown.push(lease.ranked!);
      expect((await submit(t, raters[i]!, lease.id, { ranking, timeSpentMs: 10 })).statusCode).toBe(201);
    }
    const exported = async (payload: Record<string, unknown>) => {
      const response = await t.app.inject({
        method: 'POST',
        url: `/api/projects/${setup.projectId}/export`,
        headers: setup.admin.headers,
        payload,
      });
      expect(response.statusCode, response.body).toBe(200);
      return response.body;
    };
    const better = (order: { text: string }[], ranking: number[]) => (x: string, y: string) =>
      ranking[order.findIndex((r) => r.text === x)]! < ranking[order.findIndex((r) => r.text === y)]!;

    // TRL: 6 pairs from rater 1, 5 from rater 2 (their tie has no chosen response).
    const trl = (await exported({ format: 'trl' }))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { chosen: string; rejected: string; from_ranking: string });
    expect(trl).toHaveLength(11);
    const comparison = await t.prisma.comparison.findFirstOrThrow({ where: { projectId: setup.projectId } });
    const isBetter = [better(shown[0]!, [1, 2, 3, 4]), better(shown[1]!, [3, 1, 1, 4])];
    for (const row of trl) {
      expect(row.from_ranking).toBe(comparison.id);
      const [chosen, rejected] = [row.chosen.slice(1), row.rejected.slice(1)];
      expect(isBetter.some((says) => says(chosen, rejected))).toBe(true);
    }
    const pairKeys = new Set(trl.map((row) => [row.chosen, row.rejected].sort().join('|')));
    expect(pairKeys.size).toBe(6);

    // CSV: every pair of every ranking, ties included, with its ranking.
    const csv = (await exported({ format: 'csv' })).trim().split('\r\n');
    expect(csv[0]!.split(',').at(-1)).toBe('from_ranking');
    expect(csv).toHaveLength(1 + 12);
    expect(csv.slice(1).filter((line) => line.includes(',TIE,'))).toHaveLength(1);
    for (const line of csv.slice(1)) expect(line.endsWith(`,${comparison.id}`)).toBe(true);

    // Aggregated: one row per pair of responses, both raters' votes.
    const aggregated = (await exported({ format: 'csv', mode: 'aggregated' })).trim().split('\r\n');
    expect(aggregated).toHaveLength(1 + 6);

    // The ranking format: one row per ranking, best first.
    const rankings = (await exported({ format: 'ranking' }))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { responses: { text: string; rank: number; id: string }[] });
    expect(rankings).toHaveLength(2);
    const byRanks = rankings.map((row) => row.responses.map((r) => r.rank));
    expect(byRanks).toContainEqual([1, 2, 3, 4]);
    expect(byRanks).toContainEqual([1, 1, 3, 4]);
    const first = rankings.find((row) => row.responses[1]!.rank === 2)!;
    expect(first.responses.map((r) => r.text)).toEqual(shown[0]!.map((r) => r.text));
    expect(new Set(first.responses.map((r) => r.id))).toEqual(new Set(comparison.responseIds));

    // The Quality tab: rank agreement of the two rankings of the one item.
    const quality = await t.app.inject({
      method: 'GET',
      url: `/api/projects/${setup.projectId}/quality`,
      headers: setup.admin.headers,
    });
    expect(quality.statusCode, quality.body).toBe(200);
    const stored = await t.prisma.preference.findMany({
      where: { comparisonId: comparison.id },
      orderBy: { createdAt: 'asc' },
    });
    expect(quality.json().rankings).toEqual({
      judgments: 2,
      itemsWithMultiple: 1,
      kendallW: kendallW(stored.map((p) => p.ranks)),
    });
    const tau = kendallTau(stored[0]!.ranks, stored[1]!.ranks);
    for (const rater of quality.json().raters as { rankings: number; rankTau: number; judgments: number }[]) {
      expect(rater).toMatchObject({ rankings: 1, judgments: 1 });
      expect(rater.rankTau).toBeCloseTo(tau!, 12);
    }

    const refused = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${setup.projectId}/export`,
      headers: setup.admin.headers,
      payload: { format: 'ranking', mode: 'aggregated' },
    });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().message).toMatch(/raw/);
  });
});

describe('importing rankings', () => {
  function importRankings(admin: SignedIn, projectId: string, content: string, extra = {}) {
    return t.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/preferences/import`,
      headers: admin.headers,
      payload: { format: 'ranking', source: 'rankings.jsonl', content, ...extra },
    });
  }

  it('stores each row as one ranking judgment of one ranking item per set of responses', async () => {
    const { admin, projectId } = await createProject(t, {}, { prompts: 0, responses: 0 });
    const rows = [
      // Two rankings of the same four responses, listed in different orders.
      { prompt: 'Name a colour', responses: ['red', 'blue', 'green', 'grey'] },
      {
        prompt: 'Name a colour',
        responses: [
          { text: 'green', rank: 1 },
          { text: 'red', rank: 1 },
          { text: 'grey', rank: 3 },
          { text: 'blue', rank: 4 },
        ],
      },
      // Conversational prompt, three responses.
      { prompt: [{ role: 'user', content: 'Count to three' }], responses: ['1 2 3', '1 2', '3 2 1'] },
    ];
    const bad = [
      '{"prompt": "p", "responses": ["a", "b"]}',
      '{"prompt": "p", "responses": ["a", "a", "b"]}',
      '{"prompt": "p", "responses": [{"text": "a", "rank": 2}, {"text": "b", "rank": 1}, "c"]}',
      '{"prompt": "", "responses": ["a", "b", "c"]}',
      'not json',
    ];
    const content = [...rows.map((row) => JSON.stringify(row)), ...bad].join('\n');
    const refused = await importRankings(admin, projectId, content);
    expect(refused.statusCode).toBe(400);
    expect(refused.json().errors.map((e: { line: number }) => e.line)).toEqual([4, 5, 6, 7, 8]);
    expect(refused.json().errors[0].message).toMatch(/3 to 9 responses/);
    expect(refused.json().errors[1].message).toMatch(/same text/);
    expect(refused.json().errors[2].message).toMatch(/best first/);
    expect(await t.prisma.comparison.count({ where: { projectId } })).toBe(0);

    const imported = await importRankings(admin, projectId, content, { onError: 'skip' });
    expect(imported.statusCode, imported.body).toBe(200);
    expect(imported.json()).toMatchObject({ imported: 3, skipped: 5, newPrompts: 2, comparisons: 2 });
    const items = await t.prisma.comparison.findMany({
      where: { projectId },
      include: { preferences: { orderBy: { createdAt: 'asc' } }, prompt: true },
    });
    expect(items).toHaveLength(2);
    const colours = items.find((item) => item.responseIds.length === 4)!;
    expect(colours).toMatchObject({ requiredVotes: 2, voteCount: 2 });
    const texts = new Map(
      (await t.prisma.response.findMany({ where: { id: { in: colours.responseIds } } })).map((r) => [
        r.id,
        r.text,
      ]),
    );
    const rankOf = (ranks: number[]) =>
      Object.fromEntries(colours.responseIds.map((id, i) => [texts.get(id), ranks[i]]));
    expect(colours.preferences.map((p) => rankOf(p.ranks))).toEqual([
      { red: 1, blue: 2, green: 3, grey: 4 },
      { green: 1, red: 1, grey: 3, blue: 4 },
    ]);
    for (const preference of colours.preferences)
      expect(preference).toMatchObject({ source: 'IMPORTED', importSource: 'rankings.jsonl', raterId: null });

    // Importing the same file again adds the judgments to the same items.
    const again = await importRankings(admin, projectId, rows.map((row) => JSON.stringify(row)).join('\n'));
    expect(again.json()).toMatchObject({ imported: 3, comparisons: 0, newPrompts: 0 });
    expect(await t.prisma.comparison.count({ where: { projectId } })).toBe(2);
    expect(await t.prisma.preference.count({ where: { comparison: { projectId } } })).toBe(6);

    // The ranking export reads back in: the same rankings in a new project.
    const exported = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/export`,
      headers: admin.headers,
      payload: { format: 'ranking' },
    });
    expect(exported.statusCode, exported.body).toBe(200);
    const copy = await createProject(t, {}, { prompts: 0, responses: 0 });
    const back = await importRankings(copy.admin, copy.projectId, exported.body);
    expect(back.json()).toMatchObject({ imported: 6, comparisons: 2, newPrompts: 2 });
    const ranksOf = async (project: string) =>
      (
        await t.prisma.preference.findMany({
          where: { comparison: { projectId: project } },
          include: { comparison: true },
        })
      )
        .map((p) => p.ranks.slice().sort().join())
        .sort();
    expect(await ranksOf(copy.projectId)).toEqual(await ranksOf(projectId));
  });
});
