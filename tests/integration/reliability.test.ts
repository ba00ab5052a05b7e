// Rater reliability against real PostgreSQL: a project whose comparisons three careful raters,
// a random one and an inverting one judge (two of the careful ones on every comparison, with gold
// answers on some); the route's reliabilities equal the pure fit on the rows this test inserted,
// the inverting and random raters are flagged; an admin excludes the inverting rater (audited):
// the export count, a CSV export and a new snapshot leave their judgments out; including them
// again (audited) brings everything back. Raters get 403, unknown raters 404.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Choice } from '../../core/db/client.js';
import { seededRandom } from '../../core/ranking/bradley-terry.js';
import { fitReliability, labelOf, type Label } from '../../core/ranking/reliability.js';
import type { ProjectReliability } from '../../core/schemas/quality.js';
import { trainingWeights } from '../../core/services/reliability.js';
import { createAndSignIn, createUser, createTestApp, type SignedIn, type TestApp } from '../support/app.js';
import { createProject } from '../support/rating.js';

let t: TestApp;
let admin: SignedIn;
let projectId: string;
const raters: Record<string, string> = {};
const inserted: { comparisonId: string; raterId: string; label: Label }[] = [];
const gold = new Map<string, Label>();
const PROMPTS = 40;
const CONTESTED = 3;

beforeAll(async () => {
  t = await createTestApp();
  const setup = await createProject(t, {}, { prompts: 0, responses: 0 });
  projectId = setup.projectId;
  admin = setup.admin;
  for (const name of ['careful1', 'careful2', 'careful3', 'random', 'inverting']) {
    const user = await createUser(t, 'RATER');
    raters[name] = user.id;
    await t.prisma.projectMember.create({ data: { projectId, userId: user.id } });
  }
  const random = seededRandom(11);
  for (let p = 0; p < PROMPTS; p++) {
    const prompt = await t.prisma.prompt.create({
      data: { projectId, messages: [{ role: 'user', content: `Question ${p}` }] },
    });
    const [a, b] = await Promise.all(
      ['first', 'second'].map((side) =>
        t.prisma.response.create({ data: { promptId: prompt.id, text: `${side} answer to ${p}` } }),
      ),
    );
    const truth: Choice = random() < 0.5 ? 'A' : 'B';
    const isGold = p % 5 === 0;
    const comparison = await t.prisma.comparison.create({
      data: {
        projectId,
        promptId: prompt.id,
        responseAId: a!.id,
        responseBId: b!.id,
        requiredVotes: 4,
        isGold,
        goldChoice: isGold ? truth : null,
      },
    });
    if (isGold) gold.set(comparison.id, truth);
    const careful = [`careful${(p % 3) + 1}`, `careful${((p + 1) % 3) + 1}`];
    const judges = [...careful, p % 2 ? 'random' : 'inverting'];
    for (const name of judges) {
      const flipped = truth === 'A' ? 'B' : 'A';
      const choice: Choice =
        name === 'inverting' ? flipped : name === 'random' ? (random() < 0.5 ? 'A' : 'B') : truth;
      await t.prisma.preference.create({
        data: { comparisonId: comparison.id, raterId: raters[name]!, choice, timeSpentMs: 1000 },
      });
      inserted.push({ comparisonId: comparison.id, raterId: raters[name]!, label: labelOf(choice) });
    }
  }
  // Contested comparisons: the truth is always A; a careful rater says so, the inverting rater and
  // the random one (here) say B. The majority is wrong; weighing the raters by reliability is not.
  for (let p = 0; p < CONTESTED; p++) {
    const prompt = await t.prisma.prompt.create({
      data: { projectId, messages: [{ role: 'user', content: `Contested ${p}` }] },
    });
    const [a, b] = await Promise.all(
      ['right', 'wrong'].map((side) =>
        t.prisma.response.create({ data: { promptId: prompt.id, text: `${side} answer to contested ${p}` } }),
      ),
    );
    const comparison = await t.prisma.comparison.create({
      data: { projectId, promptId: prompt.id, responseAId: a!.id, responseBId: b!.id, requiredVotes: 3 },
    });
    for (const [name, choice] of [
      ['careful1', 'A'],
      ['inverting', 'B'],
      ['random', 'B'],
    ] as const) {
      await t.prisma.preference.create({
        data: { comparisonId: comparison.id, raterId: raters[name]!, choice, timeSpentMs: 1000 },
      });
      inserted.push({ comparisonId: comparison.id, raterId: raters[name]!, label: choice });
    }
  }
}, 60_000);

afterAll(async () => {
  await t?.close();
});

const reliability = async () => {
  const response = await t.app.inject({
    url: `/api/projects/${projectId}/reliability`,
    headers: admin.headers,
  });
  expect(response.statusCode, response.body).toBe(200);
  return response.json<ProjectReliability>();
};

const exportCount = async () =>
  (
    await t.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/export/count`,
      headers: admin.headers,
      payload: { format: 'csv', filters: {} },
    })
  ).json<{ judgments: number }>().judgments;

describe('rater reliability', () => {
  it('reports the fit of the pure model, with intervals, and flags the unreliable raters', async () => {
    const body = await reliability();
    const expected = fitReliability(inserted, gold);
    expect(body.informativeComparisons).toBe(PROMPTS + CONTESTED);
    expect(body.enoughOverlap).toBe(true);
    expect(body.raters).toHaveLength(5);
    for (const rater of body.raters) {
      const own = expected.raters.find((r) => r.raterId === rater.raterId)!;
      expect(rater.reliability).toBeCloseTo(own.reliability, 9);
      expect(rater.low).toBeLessThanOrEqual(rater.reliability);
      expect(rater.high).toBeGreaterThanOrEqual(rater.reliability);
    }
    const byId = new Map(body.raters.map((r) => [r.raterId, r]));
    expect(byId.get(raters.inverting!)!.flagged).toBe(true);
    expect(byId.get(raters.random!)!.flagged).toBe(true);
    expect(byId.get(raters.careful1!)!.flagged).toBe(false);
    expect(byId.get(raters.careful1!)!.reliability).toBeGreaterThan(0.8);
    // The lowest first.
    expect(body.raters[0]!.raterId).toBe(raters.inverting);
  });

  it('excludes a rater from exports and snapshots, audited, and includes them again', async () => {
    const before = await exportCount();
    expect(before).toBe(inserted.length);
    const excluded = await t.app.inject({
      method: 'PUT',
      url: `/api/projects/${projectId}/excluded-raters/${raters.inverting}`,
      headers: admin.headers,
      payload: { reason: 'answers inverted' },
    });
    expect(excluded.statusCode, excluded.body).toBe(204);
    // Again: nothing changes, nothing more is audited.
    await t.app.inject({
      method: 'PUT',
      url: `/api/projects/${projectId}/excluded-raters/${raters.inverting}`,
      headers: admin.headers,
      payload: {},
    });
    const theirs = inserted.filter((j) => j.raterId === raters.inverting).length;
    expect(await exportCount()).toBe(before - theirs);
    const csv = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/export`,
      headers: admin.headers,
      payload: { format: 'csv' },
    });
    expect(csv.statusCode).toBe(200);
    expect(csv.body.trim().split('\n')).toHaveLength(1 + before - theirs);
    const snapshot = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/snapshots`,
      headers: admin.headers,
      payload: { name: 'without the inverting rater', format: 'csv' },
    });
    expect(snapshot.statusCode, snapshot.body).toBe(201);
    const items = await t.prisma.datasetSnapshotItem.count({
      where: { snapshotId: snapshot.json<{ id: string }>().id },
    });
    expect(items).toBe(before - theirs);

    const body = await reliability();
    const row = body.raters.find((r) => r.raterId === raters.inverting)!;
    expect(row).toMatchObject({ excluded: true, exclusionReason: 'answers inverted' });

    const included = await t.app.inject({
      method: 'DELETE',
      url: `/api/projects/${projectId}/excluded-raters/${raters.inverting}`,
      headers: admin.headers,
    });
    expect(included.statusCode).toBe(204);
    expect(await exportCount()).toBe(before);
    const audit = await t.prisma.auditLog.findMany({
      where: { targetId: raters.inverting, action: { in: ['rater.exclude', 'rater.include'] } },
      orderBy: { id: 'asc' },
    });
    expect(audit.map((a) => a.action)).toEqual(['rater.exclude', 'rater.include']);
    expect(audit[0]!.details).toMatchObject({ projectId, reason: 'answers inverted' });
  });

  it('gives rounds weights near 1 for careful judgments and near 0 for inverted ones', async () => {
    const judgments = inserted.map((j) => ({
      comparisonId: j.comparisonId,
      raterId: j.raterId,
      choice: j.label,
    }));
    const weights = (await trainingWeights(t.prisma, projectId, judgments))!;
    expect(weights).toHaveLength(judgments.length);
    const mean = (rater: string) => {
      const own = weights.filter((_, k) => judgments[k]!.raterId === rater);
      return own.reduce((a, b) => a + b, 0) / own.length;
    };
    expect(mean(raters.careful1!)).toBeGreaterThan(0.9);
    expect(mean(raters.inverting!)).toBeLessThan(0.1);
    // A project with too little overlap gets no weights: every judgment counts as 1.
    const other = await createProject(t, {}, { prompts: 0, responses: 0 });
    expect(await trainingWeights(t.prisma, other.projectId, judgments.slice(0, 3))).toBeNull();
  });

  it('aggregated exports weigh raters by reliability when asked', async () => {
    const chosen = async (options: Record<string, unknown>) => {
      const response = await t.app.inject({
        method: 'POST',
        url: `/api/projects/${projectId}/export`,
        headers: admin.headers,
        payload: { format: 'trl', mode: 'aggregated', options },
      });
      expect(response.statusCode, response.body).toBe(200);
      return response.body
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { chosen: string })
        .map((row) => row.chosen)
        .filter((text) => text.includes('contested'));
    };
    const majority = await chosen({});
    expect(majority).toHaveLength(CONTESTED);
    expect(majority.every((text) => text.includes('wrong answer'))).toBe(true);
    const weighted = await chosen({ reliabilityWeights: true });
    expect(weighted).toHaveLength(CONTESTED);
    expect(weighted.every((text) => text.includes('right answer'))).toBe(true);
  });

  it('refuses raters, unknown raters and users outside the project', async () => {
    const rater = await createAndSignIn(t, 'RATER');
    const forbidden = await t.app.inject({
      url: `/api/projects/${projectId}/reliability`,
      headers: rater.headers,
    });
    expect(forbidden.statusCode).toBe(403);
    const unknown = await t.app.inject({
      method: 'PUT',
      url: `/api/projects/${projectId}/excluded-raters/00000000-0000-4000-8000-000000000000`,
      headers: admin.headers,
      payload: {},
    });
    expect(unknown.statusCode).toBe(404);
    const outsider = await t.app.inject({
      method: 'PUT',
      url: `/api/projects/${projectId}/excluded-raters/${rater.userId}`,
      headers: admin.headers,
      payload: {},
    });
    expect(outsider.statusCode).toBe(400);
    const badThreshold = await t.app.inject({
      url: `/api/projects/${projectId}/reliability?threshold=2`,
      headers: admin.headers,
    });
    expect(badThreshold.statusCode).toBe(400);
    expect(await t.prisma.raterExclusion.count()).toBe(0);
  });
});
