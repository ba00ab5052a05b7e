// A round's guards at small size against real PostgreSQL: judgments that pay for padding (a
// deliberately mis-specified reward; the tiny reward model fitted to them gets none of their
// held-out pairs right) drive the policy away from its parent; the held-out guard stops the policy
// phase for KL, the round publishes its version marked not better with the reasons, and a
// schedule does not promote it. A round with a reward-model ensemble optimizes their penalized
// mean and has each member judge its result. Then the same round runs again on the same snapshot and settings and gives the
// same weights.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDemoProject } from '../../core/demo.js';
import type { JobPayloads } from '../../core/jobs.js';
import { defaultSchedule } from '../../core/schemas/projects.js';
import { runInThread } from '../../trainer/jobs/thread.js';
import { loadPolicyVersion } from '../../trainer/jobs/policy-store.js';
import { initBackend } from '../../trainer/runtime.js';
import { until } from '../support/wait.js';
import { createAndSignIn, createTestApp, type SignedIn, type TestApp } from '../support/app.js';

const TINY = {
  sftSteps: 40,
  model: { contextLength: 32, nLayer: 1, nHead: 2, nEmbd: 32 },
  samplesPerPrompt: 2,
};
/** Steps large enough to run away from the parent within a dozen iterations; a check every 12. */
const ROUND = {
  iterations: 30,
  learningRate: 5e-3,
  beta: 0.01,
  promptsPerIteration: 8,
  samplesPerPrompt: 2,
  rewardModelEpochs: 20,
  generateComparisons: false,
  guardEvery: 12,
  klLimit: 1.5,
  reliabilityWeights: false,
};

let t: TestApp;
let admin: SignedIn;
let projectId: string;
let roundId: string;
const settings = () => ({ databaseUrl: t.database.url, demoSftSteps: TINY.sftSteps, demo: TINY });

beforeAll(async () => {
  t = await createTestApp({}, { jobs: true });
  admin = await createAndSignIn(t, 'ADMIN');
  await t.boss!.work<JobPayloads['seed-demo']>(
    'seed-demo',
    { pollingIntervalSeconds: 0.5 },
    async ([job]) => {
      if (job) await runInThread('seed-demo', job.data, settings(), () => {});
    },
  );
  await initBackend();
}, 120_000);
afterAll(() => t.close());

async function runRound(id: string): Promise<void> {
  await runInThread('training-round', { roundId: id }, settings(), () => {});
}

async function weightsOf(versionId: string): Promise<number[][]> {
  const policy = await loadPolicyVersion(t.prisma, versionId);
  const weights = [...policy.model.params.values()].map((v) => Array.from(v.dataSync()));
  policy.model.dispose();
  return weights;
}

describe('round guards', () => {
  it(
    'stops a policy driven astray by judgments that pay for padding and marks its version not better',
    { timeout: 180_000 },
    async () => {
      projectId = (await ensureDemoProject(t.prisma, t.boss!, { train: 40, heldOut: 10 }))!;
      await until('the demo policy', async () => {
        const row = await t.prisma.project.findUniqueOrThrow({ where: { id: projectId } });
        return row.currentPolicyVersionId ? row : null;
      });
      // The mis-specified reward: judgments that prefer a padded answer to the bare right one.
      const prompts = await t.prisma.prompt.findMany({ where: { projectId, split: 'TRAIN' } });
      for (const prompt of prompts) {
        const answer = String((prompt.metadata as { answer?: string }).answer ?? '');
        for (const padding of [1, 2, 3]) {
          const [long, bare] = await Promise.all(
            [`${answer}${' and so on'.repeat(padding)}`, answer].map((text) =>
              t.prisma.response.create({ data: { promptId: prompt.id, source: 'test', text } }),
            ),
          );
          const comparison = await t.prisma.comparison.create({
            data: {
              projectId,
              promptId: prompt.id,
              responseAId: long!.id,
              responseBId: bare!.id,
              requiredVotes: 1,
            },
          });
          await t.prisma.preference.create({
            data: { comparisonId: comparison.id, source: 'IMPORTED', choice: 'A' },
          });
        }
      }
      // A schedule that would promote by the reward model's win rate at once.
      await t.prisma.project.update({
        where: { id: projectId },
        data: {
          schedule: {
            ...defaultSchedule(),
            autoPromote: true,
            promotionRule: 'reward-model',
            rewardModelMargin: 0,
          },
        },
      });
      const sftId = (await t.prisma.project.findUniqueOrThrow({ where: { id: projectId } }))
        .currentPolicyVersionId;
      const launched = await t.app.inject({
        method: 'POST',
        url: `/api/projects/${projectId}/rounds`,
        headers: admin.headers,
        payload: { algorithm: 'RLOO', config: ROUND },
      });
      expect(launched.statusCode, launched.body).toBe(201);
      roundId = launched.json<{ id: string }>().id;
      await runRound(roundId);

      const round = await t.prisma.trainingRound.findUniqueOrThrow({
        where: { id: roundId },
        include: { events: { orderBy: { createdAt: 'asc' } }, outputPolicyVersion: true },
      });
      expect(round.status, round.error ?? '').toBe('SUCCEEDED');
      const metrics = round.metrics as Record<string, unknown>;
      // β moved with the adaptive controller, each iteration's β in its event.
      const policyEvents = round.events.filter((e) => e.phase === 'policy' && e.step !== null);
      expect(policyEvents.every((e) => typeof (e.data as { beta?: unknown }).beta === 'number')).toBe(true);
      // The guard stopped the phase at its first check after the start, for KL, and kept the
      // parent's weights (the check at the start was the best).
      const guards = round.events
        .filter((e) => e.phase === 'guard')
        .map((e) => e.data as Record<string, unknown>);
      expect(guards).toHaveLength(2);
      expect(guards[0]).toMatchObject({ iteration: 0, stop: false, best: true });
      expect(guards[1]).toMatchObject({ iteration: 12, stop: true, reason: 'kl-limit' });
      expect(Number(guards[1]!.heldOutKl)).toBeGreaterThan(ROUND.klLimit);
      expect(metrics).toMatchObject({
        stoppedAt: 12,
        stopReason: 'kl-limit',
        keptIteration: 0,
        notBetter: true,
      });
      expect((metrics.notBetterReasons as string[])[0]).toMatch(
        /^the policy phase stopped \(held-out KL beyond the limit\) before any held-out check improved/,
      );
      expect(await weightsOf(round.outputPolicyVersion!.id)).toEqual(await weightsOf(sftId!));
      const verdict = round.events.find((e) => e.phase === 'verdict')!;
      expect(verdict.message).toMatch(/^Not better than its parent: /);
      // Published as a candidate, not promoted: neither by the round nor by the scheduler.
      expect(round.outputPolicyVersion).toMatchObject({ status: 'READY', promotedAt: null });
      await t.app.services.rounds.autoPromote();
      const project = await t.prisma.project.findUniqueOrThrow({ where: { id: projectId } });
      expect(project.currentPolicyVersionId).toBe(sftId);
      const evidence = await t.app.inject({
        url: `/api/projects/${projectId}/promotion`,
        headers: admin.headers,
      });
      expect(evidence.statusCode, evidence.body).toBe(200);
      const mine = evidence
        .json<{ versions: { versionId: string; decision: string; notBetterReasons: string[] }[] }>()
        .versions.find((v) => v.versionId === round.outputPolicyVersion!.id);
      expect(mine).toMatchObject({ decision: 'not-better' });
      expect(mine!.notBetterReasons).toEqual(metrics.notBetterReasons);
    },
  );

  it(
    'gives the same weights when the same round runs again on the same snapshot and settings',
    { timeout: 120_000 },
    async () => {
      const first = await t.prisma.policyVersion.findFirstOrThrow({ where: { roundId } });
      const before = await weightsOf(first.id);
      const metricsBefore = first.metrics as Record<string, unknown>;
      // As after a crash before the round's end: its version gone, the round running again.
      await t.prisma.policyVersion.delete({ where: { id: first.id } });
      await t.prisma.trainingRound.update({ where: { id: roundId }, data: { status: 'RUNNING' } });
      await runRound(roundId);
      const second = await t.prisma.policyVersion.findFirstOrThrow({ where: { roundId } });
      expect(second.id).not.toBe(first.id);
      const after = await weightsOf(second.id);
      expect(after).toEqual(before);
      // The round's own measurements repeat too (the parent's as well as the new version's).
      const metricsAfter = second.metrics as Record<string, unknown>;
      for (const key of [
        'reward',
        'parentReward',
        'kl',
        'utility',
        'parentUtility',
        'winRateVsParent',
        'stoppedAt',
      ])
        expect(metricsAfter[key], key).toEqual(metricsBefore[key]);
    },
  );
  it(
    'optimizes an ensemble of reward models, less their disagreement, and has each member judge the result',
    { timeout: 180_000 },
    async () => {
      const launched = await t.app.inject({
        method: 'POST',
        url: `/api/projects/${projectId}/rounds`,
        headers: admin.headers,
        payload: {
          algorithm: 'RLOO',
          config: { ...ROUND, rewardModelEpochs: 4, rewardEnsemble: 3, uncertaintyPenalty: 2 },
        },
      });
      expect(launched.statusCode, launched.body).toBe(201);
      const id = launched.json<{ id: string }>().id;
      await runRound(id);
      const round = await t.prisma.trainingRound.findUniqueOrThrow({
        where: { id },
        include: { events: { orderBy: { createdAt: 'asc' } } },
      });
      expect(round.status, round.error ?? '').toBe('SUCCEEDED');
      const ensemble = round.events.find((e) => e.phase === 'ensemble');
      expect(ensemble?.data).toMatchObject({ members: 3, uncertaintyPenalty: 2 });
      expect((ensemble!.data as { validationAccuracies: number[] }).validationAccuracies).toHaveLength(3);
      // The two other members were fitted, epoch by epoch, beside the first.
      const members = round.events
        .filter((e) => e.phase === 'reward-model-member')
        .map((e) => (e.data as { member: number }).member);
      expect([...new Set(members)]).toEqual([1, 2]);
      const metrics = round.metrics as Record<string, unknown>;
      expect(metrics.rewardEnsemble).toBe(3);
      const rates = metrics.ensembleWinRates as number[];
      expect(rates).toHaveLength(3);
      for (const rate of rates) expect(rate).toBeGreaterThanOrEqual(0);
      // The first member is the round's reward model, judging the same samples.
      expect(rates[0]).toBe(metrics.winRateVsParent);
      // A member counts against the round only when its whole interval is below 0.5.
      const intervals = metrics.ensembleIntervals as [number, number][];
      expect(intervals).toHaveLength(3);
      intervals.forEach(([low, high], i) => expect(low <= rates[i]! && rates[i]! <= high).toBe(true));
      const disagreeing = intervals.filter(([, high]) => high < 0.5).length;
      if (disagreeing)
        expect((metrics.notBetterReasons as string[]).join(' ')).toMatch(/ensemble prefer the parent/);
      await expect(
        t.app.inject({
          method: 'POST',
          url: `/api/projects/${projectId}/rounds`,
          headers: admin.headers,
          payload: { config: { rewardEnsemble: 6 } },
        }),
      ).resolves.toMatchObject({ statusCode: 400 });
    },
  );
});
