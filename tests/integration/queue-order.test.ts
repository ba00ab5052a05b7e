// The uncertainty queue order against real PostgreSQL and a real reward model. A project's
// comparisons pair responses of different lengths; the reward model is the text reward model with
// one weight set by hand (shorter is better, by the log of the length), stored as a round's would
// be. With the default (fixed) order nothing changes priority and the queue serves the priorities
// as set. Switched on through the API, a `queue-order` job is enqueued; its handler writes every
// open, non-gold comparison's priority from the reward model, and raters are served the most
// uncertain one first, by as many raters as the overlap asks, then the next; gold and full
// comparisons keep their priority and the gold rate still applies. The newest round's comparisons
// of its version against the parent come first. A bad value is refused with a 400 that names it.
// Then a real round of the tiny demo re-orders the queue by its own reward model.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDemoProject } from '../../core/demo.js';
import type { JobPayloads } from '../../core/jobs.js';
import {
  PROMOTION_PRIORITY,
  rankingUncertaintyPriority,
  uncertaintyPriority,
} from '../../core/ranking/uncertainty.js';
import { defaultSchedule } from '../../core/schemas/projects.js';
import { loadArtifact, saveArtifact } from '../../trainer/checkpoint.js';
import { runInThread } from '../../trainer/jobs/thread.js';
import { runQueueOrder } from '../../trainer/queue-order.js';
import { decodeRewardScorer } from '../../trainer/reward-model.js';
import { initBackend } from '../../trainer/runtime.js';
import { TextRewardModel } from '../../trainer/text-reward-model.js';
import { createAndSignIn, createTestApp, type SignedIn, type TestApp } from '../support/app.js';
import { addRaters, createProject, next, submit, type RatingSetup } from '../support/rating.js';
import { until } from '../support/wait.js';

let t: TestApp;
let setup: RatingSetup;
let raters: SignedIn[];
const scorer = new TextRewardModel({ hidden: 0, buckets: 16, seed: 1 });
// r = −6 · log(1 + length) / 3: the shorter response is better, surer the more the lengths differ.
scorer.w[0] = -6;

/** Response lengths of each comparison: near-equal lengths are the reward model's least certain. */
const LENGTHS: [number, number][] = [
  [10, 60],
  [20, 21],
  [5, 80],
  [30, 36],
  [12, 13],
  [40, 55],
];
const ids: string[] = [];
let goldId: string;
let fullId: string;
let rankingId: string;

async function comparison(lengths: [number, number], extra: Record<string, unknown> = {}) {
  const prompt = await t.prisma.prompt.create({
    data: { projectId: setup.projectId, messages: [{ role: 'user', content: `Prompt ${randomUUID()}` }] },
  });
  const [a, b] = await Promise.all(
    lengths.map((n, side) =>
      t.prisma.response.create({
        data: { promptId: prompt.id, text: (side ? 'y' : 'x').repeat(n), source: `side-${side}` },
      }),
    ),
  );
  return t.prisma.comparison.create({
    data: {
      projectId: setup.projectId,
      promptId: prompt.id,
      responseAId: a!.id,
      responseBId: b!.id,
      requiredVotes: 2,
      ...extra,
    },
  });
}

async function priorities(): Promise<Map<string, number>> {
  const rows = await t.prisma.comparison.findMany({ where: { projectId: setup.projectId } });
  return new Map(rows.map((row) => [row.id, row.priority]));
}

/** The comparison a rater is served next. */
async function served(rater: SignedIn): Promise<string | null> {
  const lease = await next(t, rater, setup.projectId);
  if (!lease) return null;
  return (await t.prisma.assignment.findUniqueOrThrow({ where: { id: lease.id } })).comparisonId;
}

function patchSchedule(schedule: Record<string, unknown>) {
  return t.app.inject({
    method: 'PATCH',
    url: `/api/projects/${setup.projectId}`,
    headers: setup.admin.headers,
    payload: { schedule },
  });
}

async function queueOrderJobs(): Promise<number> {
  const rows = await t.prisma.$queryRaw<{ n: number }[]>`
    SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'queue-order' AND data->>'projectId' = ${setup.projectId}`;
  return rows[0]!.n;
}

beforeAll(async () => {
  t = await createTestApp({}, { jobs: true });
  setup = await createProject(t, { overlap: 2, goldRate: 0 }, { prompts: 0, responses: 0 });
  raters = await addRaters(t, setup, 5);
  for (const [i, lengths] of LENGTHS.entries())
    // One priority set by hand: the fixed order serves it first.
    ids.push((await comparison(lengths, i === 0 ? { priority: 5 } : {})).id);
  // Gold, with equal lengths (a coin flip to the reward model), and a full one.
  goldId = (await comparison([25, 25], { isGold: true, goldChoice: 'TIE', priority: 7 })).id;
  fullId = (await comparison([50, 51], { voteCount: 2, priority: 3 })).id;
  // A ranking of three responses (8, 16 and 70 characters): its least certain pair sets its priority.
  const prompt = await t.prisma.prompt.create({
    data: { projectId: setup.projectId, messages: [{ role: 'user', content: 'Rank these' }] },
  });
  const ranked = await Promise.all(
    [8, 16, 70].map((n) => t.prisma.response.create({ data: { promptId: prompt.id, text: 'z'.repeat(n) } })),
  );
  rankingId = (
    await t.prisma.comparison.create({
      data: {
        projectId: setup.projectId,
        promptId: prompt.id,
        responseAId: ranked[0]!.id,
        responseBId: ranked[1]!.id,
        responseIds: ranked.map((r) => r.id),
        requiredVotes: 2,
      },
    })
  ).id;
  // A round that trained the reward model.
  const round = await t.prisma.trainingRound.create({
    data: { projectId: setup.projectId, number: 1, algorithm: 'RLOO', status: 'SUCCEEDED' },
  });
  const artifactId = await saveArtifact(t.prisma, scorer.encode(), { projectId: setup.projectId });
  await t.prisma.rewardModel.create({
    data: { projectId: setup.projectId, roundId: round.id, artifactId, kind: 'text' },
  });
}, 60_000);
afterAll(() => t.close());

describe('uncertainty queue order', () => {
  it('leaves the priorities as set with the default order', async () => {
    const before = await priorities();
    // Saved without a queue order: the default.
    const saved = await patchSchedule({ ...defaultSchedule(), queueOrder: undefined });
    expect(saved.statusCode, saved.body).toBe(200);
    expect(saved.json<{ schedule: { queueOrder: string } }>().schedule.queueOrder).toBe('fixed');
    expect(await queueOrderJobs()).toBe(0);
    expect(await runQueueOrder(t.prisma, setup.projectId)).toBeNull();
    expect(await priorities()).toEqual(before);
    // The fixed order: the priority set by hand first.
    expect(await served(raters[3]!)).toBe(ids[0]);
  });

  it('refuses a queue order it does not know, naming the field', async () => {
    const bad = await patchSchedule({ ...defaultSchedule(), queueOrder: 'random' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json<{ message: string }>().message).toBe(
      'Invalid request: body.schedule.queueOrder: must be one of "fixed", "uncertainty"',
    );
  });

  it('serves the most uncertain open comparison first once switched on; gold and overlap hold', async () => {
    const before = await priorities();
    const saved = await patchSchedule({ ...defaultSchedule(), queueOrder: 'uncertainty' });
    expect(saved.statusCode, saved.body).toBe(200);
    expect(saved.json<{ schedule: { queueOrder: string } }>().schedule.queueOrder).toBe('uncertainty');
    // The switch enqueued the refresh in the same transaction; the worker's handler runs it.
    expect(await queueOrderJobs()).toBe(1);
    const audit = await t.prisma.auditLog.findFirstOrThrow({
      where: { action: 'project.update', targetId: setup.projectId },
      orderBy: { createdAt: 'desc' },
    });
    expect(audit.details).toMatchObject({ queueOrder: 'uncertainty' });
    const refresh = await runQueueOrder(t.prisma, setup.projectId);
    expect(refresh).toMatchObject({ scored: LENGTHS.length + 1, promotion: 0, superseded: false });

    // Every open, non-gold comparison's priority is the reward model's uncertainty about it.
    const rows = await t.prisma.comparison.findMany({
      where: { id: { in: ids } },
      include: { prompt: true, responseA: true, responseB: true },
    });
    const expected = new Map(
      rows.map((row) => {
        const prompt = (row.prompt.messages as { content: string }[])[0]!.content;
        const [ra, rb] = scorer.score([
          { prompt, response: row.responseA.text },
          { prompt, response: row.responseB.text },
        ]);
        return [row.id, uncertaintyPriority(ra!, rb!)];
      }),
    );
    const after = await priorities();
    for (const id of ids) expect(after.get(id), id).toBe(expected.get(id));
    const rankingRewards = scorer.score(
      [8, 16, 70].map((n) => ({ prompt: 'Rank these', response: 'z'.repeat(n) })),
    );
    expect(after.get(rankingId)).toBe(rankingUncertaintyPriority(rankingRewards));
    expect(after.get(rankingId)).toBe(uncertaintyPriority(rankingRewards[0]!, rankingRewards[1]!));
    expect(refresh!.reordered).toBe(ids.filter((id) => before.get(id) !== expected.get(id)).length + 1);
    // Gold and full comparisons keep theirs.
    expect(after.get(goldId)).toBe(7);
    expect(after.get(fullId)).toBe(3);
    // The round's events say so (the Rounds page's log).
    const event = await t.prisma.roundEvent.findFirstOrThrow({ where: { phase: 'queue' } });
    expect(event.message).toMatch(/^Queue re-ordered by the reward model's uncertainty \(switched on/);
    expect(event.data).toMatchObject({ scored: LENGTHS.length + 1, trigger: 'switched-on' });

    // In the queue's order (priority, then id): 20 vs 21 characters (953), then 12 vs 13 (925).
    const ranked = [...ids].sort((a, b) => expected.get(b)! - expected.get(a)! || (a < b ? -1 : 1));
    expect(ranked.slice(0, 2)).toEqual([ids[1], ids[4]]);
    expect(ranked.slice(0, 2).map((id) => expected.get(id))).toEqual([953, 925]);
    expect(ranked[0]).not.toBe(ids[0]);
    // Overlap 2: the most uncertain goes to two raters, then it is full and the next one is served.
    const [first, second, third] = raters;
    const one = await served(first!);
    expect(one).toBe(ranked[0]);
    expect(await served(second!)).toBe(ranked[0]);
    for (const rater of [first!, second!]) {
      const lease = await next(t, rater, setup.projectId);
      const stored = await submit(t, rater, lease!.id);
      expect(stored.statusCode, stored.body).toBe(201);
    }
    expect(await served(third!)).toBe(ranked[1]);
    expect(await served(first!)).toBe(ranked[1]);
    // The gold rate still decides when gold is served: at rate 1, gold comes first.
    const gold = await t.app.inject({
      method: 'PATCH',
      url: `/api/projects/${setup.projectId}`,
      headers: setup.admin.headers,
      payload: { goldRate: 1 },
    });
    expect(gold.statusCode, gold.body).toBe(200);
    expect(await served(raters[4]!)).toBe(goldId);
    await t.prisma.project.update({ where: { id: setup.projectId }, data: { goldRate: 0 } });
  });

  it('puts the newest round’s comparisons of its version against the parent first', async () => {
    const round = await t.prisma.trainingRound.create({
      data: { projectId: setup.projectId, number: 2, algorithm: 'RLOO', status: 'SUCCEEDED' },
    });
    const first = await t.prisma.rewardModel.findFirstOrThrow({ where: { projectId: setup.projectId } });
    await t.prisma.rewardModel.create({
      data: { projectId: setup.projectId, roundId: round.id, artifactId: first.artifactId, kind: 'text' },
    });
    // A sure pair to the reward model (5 against 90 characters), but it decides a promotion.
    const versus = await comparison([5, 90], { roundId: round.id });
    const refresh = await runQueueOrder(t.prisma, setup.projectId);
    expect(refresh).toMatchObject({ promotion: 1, reordered: 1 });
    expect((await priorities()).get(versus.id)).toBe(PROMOTION_PRIORITY);
    const rater = await createAndSignIn(t, 'RATER');
    await t.prisma.projectMember.create({ data: { projectId: setup.projectId, userId: rater.userId } });
    expect(await served(rater)).toBe(versus.id);
  });

  it('changes nothing more once switched back to the fixed order', async () => {
    const saved = await patchSchedule({ ...defaultSchedule(), queueOrder: 'fixed' });
    expect(saved.statusCode, saved.body).toBe(200);
    expect(await queueOrderJobs()).toBe(1);
    const before = await priorities();
    await t.prisma.comparison.update({ where: { id: ids[5]! }, data: { priority: 900 } });
    expect(await runQueueOrder(t.prisma, setup.projectId)).toBeNull();
    expect(await priorities()).toEqual(new Map([...before, [ids[5]!, 900]]));
  });
});

describe('a round with the uncertainty order on', () => {
  const TINY = {
    sftSteps: 40,
    model: { contextLength: 32, nLayer: 1, nHead: 2, nEmbd: 32 },
    samplesPerPrompt: 2,
  };
  const settings = () => ({ databaseUrl: t.database.url, demoSftSteps: TINY.sftSteps, demo: TINY });

  it('re-orders the queue by its reward model, its new comparisons first', { timeout: 240_000 }, async () => {
    await t.boss!.work<JobPayloads['seed-demo']>(
      'seed-demo',
      { pollingIntervalSeconds: 0.5 },
      async ([job]) => {
        if (job) await runInThread('seed-demo', job.data, settings(), () => {});
      },
    );
    const projectId = (await ensureDemoProject(t.prisma, t.boss!, { train: 24, heldOut: 6 }))!;
    await until('the demo policy', async () => {
      const row = await t.prisma.project.findUniqueOrThrow({ where: { id: projectId } });
      return row.currentPolicyVersionId ? row : null;
    });
    // Half of the first comparisons judged (the answer key's side), the rest open.
    const comparisons = await t.prisma.comparison.findMany({
      where: { projectId },
      include: { responseA: true, responseB: true },
      orderBy: { id: 'asc' },
    });
    for (const c of comparisons.slice(0, Math.ceil(comparisons.length / 2))) {
      await t.prisma.preference.create({
        data: {
          comparisonId: c.id,
          source: 'IMPORTED',
          choice: c.responseA.text.length <= c.responseB.text.length ? 'A' : 'B',
        },
      });
      await t.prisma.comparison.update({ where: { id: c.id }, data: { voteCount: c.requiredVotes } });
    }
    await t.prisma.project.update({
      where: { id: projectId },
      data: { schedule: { ...defaultSchedule(), queueOrder: 'uncertainty' } },
    });
    const admin = await createAndSignIn(t, 'ADMIN');
    const launched = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/rounds`,
      headers: admin.headers,
      payload: {
        algorithm: 'RLOO',
        config: {
          iterations: 2,
          promptsPerIteration: 4,
          samplesPerPrompt: 2,
          comparisonPrompts: 6,
          guardEvery: 0,
          reliabilityWeights: false,
        },
      },
    });
    expect(launched.statusCode, launched.body).toBe(201);
    const roundId = launched.json<{ id: string }>().id;
    await runInThread('training-round', { roundId }, settings(), () => {});
    const round = await t.prisma.trainingRound.findUniqueOrThrow({
      where: { id: roundId },
      include: { events: { where: { phase: 'queue' } }, rewardModel: true },
    });
    expect(round.status, round.error ?? '').toBe('SUCCEEDED');
    expect(round.events).toHaveLength(1);
    expect(round.events[0]!.message).toMatch(
      /^Queue re-ordered by the reward model's uncertainty \(round 1's/,
    );

    // Every open comparison's priority is the round's reward model's uncertainty (to a unit: the
    // refresh scores in other batches), its own first.
    await initBackend();
    const rm = decodeRewardScorer(await loadArtifact(t.prisma, round.rewardModel!.artifactId!));
    const open = await t.prisma.comparison.findMany({
      where: { projectId, open: true, isGold: false },
      include: { prompt: true, responseA: true, responseB: true },
    });
    const own = open.filter((c) => c.roundId === roundId);
    const rest = open.filter((c) => c.roundId !== roundId);
    expect(own.length).toBeGreaterThan(0);
    expect(rest.length).toBeGreaterThan(0);
    expect(own.every((c) => c.priority === PROMOTION_PRIORITY)).toBe(true);
    const rewards = rm.score(
      rest.flatMap((c) => {
        const prompt = (c.prompt.messages as { content: string }[]).at(-1)!.content;
        return [
          { prompt, response: c.responseA.text },
          { prompt, response: c.responseB.text },
        ];
      }),
    );
    rest.forEach((c, i) =>
      expect(
        Math.abs(c.priority - uncertaintyPriority(rewards[2 * i]!, rewards[2 * i + 1]!)),
      ).toBeLessThanOrEqual(1),
    );
    expect(round.events[0]!.data).toMatchObject({
      scored: rest.length,
      promotion: own.length,
      trigger: 'round',
    });
  });
});
