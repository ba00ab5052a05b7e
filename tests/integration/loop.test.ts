// The whole loop at small size against real PostgreSQL: the demo project is seeded through the
// job queue, simulated raters judge through the HTTP API, a round runs from the queue, and a new
// policy version appears with its lineage, its metrics and new comparisons against its parent.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import { ensureDemoProject } from '../../core/demo.js';
import type { JobPayloads } from '../../core/jobs.js';
import { answerKey, ensureSimulatedRaters, runSimulatedRaters } from '../../server/simulated-raters.js';
import { runInThread } from '../../trainer/jobs/thread.js';
import { runRound } from '../../trainer/jobs/training-round.js';
import { until } from '../support/wait.js';
import { createAndSignIn, createTestApp, type SignedIn, type TestApp } from '../support/app.js';

const TINY = {
  sftSteps: 40,
  model: { contextLength: 32, nLayer: 1, nHead: 2, nEmbd: 32 },
  samplesPerPrompt: 2,
};
const ROUND = {
  iterations: 3,
  promptsPerIteration: 8,
  samplesPerPrompt: 2,
  rewardModelEpochs: 1,
  comparisonPrompts: 10,
};

let t: TestApp;
let origin: string;
let admin: SignedIn;
let projectId: string;

beforeAll(async () => {
  t = await createTestApp({}, { jobs: true });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  origin = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  admin = await createAndSignIn(t, 'ADMIN');
  // The worker's handlers, as trainer/worker.ts runs them: each job in a thread of its own.
  const settings = { databaseUrl: t.database.url, demoSftSteps: TINY.sftSteps, demo: TINY };
  await t.boss!.work<JobPayloads['seed-demo']>(
    'seed-demo',
    { pollingIntervalSeconds: 0.5 },
    async ([job]) => {
      if (job) await runInThread('seed-demo', job.data, settings, () => {});
    },
  );
  await t.boss!.work<JobPayloads['training-round']>(
    'training-round',
    { pollingIntervalSeconds: 0.5 },
    async ([job]) => {
      if (job) await runInThread('training-round', job.data, settings, () => {});
    },
  );
}, 120_000);
afterAll(() => t.close());

describe('the closed loop', () => {
  it(
    'seeds the demo through the queue: a fine-tuned policy and comparisons ready to rate',
    { timeout: 180_000 },
    async () => {
      const created = await ensureDemoProject(t.prisma, t.boss!, { train: 40, heldOut: 10 });
      expect(created).not.toBeNull();
      projectId = created!;
      expect(await ensureDemoProject(t.prisma, t.boss!)).toBeNull();
      const project = await until('the demo policy', async () => {
        const row = await t.prisma.project.findUniqueOrThrow({ where: { id: projectId } });
        return row.currentPolicyVersionId ? row : null;
      });
      const sft = await t.prisma.policyVersion.findUniqueOrThrow({
        where: { id: project.currentPolicyVersionId! },
      });
      expect(sft).toMatchObject({ kind: 'BUILTIN', status: 'READY', parentId: null });
      // One comparison a prompt, never of two equal answers (those prompts sample again first).
      const comparisons = await t.prisma.comparison.findMany({
        where: { projectId },
        include: { responseA: true, responseB: true },
      });
      expect(comparisons.length).toBeGreaterThan(30);
      expect(comparisons.length).toBeLessThanOrEqual(40);
      for (const comparison of comparisons)
        expect(comparison.responseA.text).not.toBe(comparison.responseB.text);
    },
  );

  it('lets simulated raters judge through the API, marked as simulated', async () => {
    const accounts = await ensureSimulatedRaters(t.prisma, projectId, 3);
    const result = await runSimulatedRaters({
      origin,
      projectId,
      accounts,
      answers: await answerKey(t.prisma, projectId),
      noise: 0.1,
      judgments: 1000,
    });
    const comparisons = await t.prisma.comparison.count({ where: { projectId } });
    expect(result).toMatchObject({ judged: comparisons, errors: 0, empty: true });
    const preferences = await t.prisma.preference.findMany({
      where: { comparison: { projectId } },
      include: { rater: true },
    });
    expect(preferences).toHaveLength(comparisons);
    expect(preferences.every((p) => p.source === 'SIMULATED' && p.rater?.simulated)).toBe(true);
  });

  it(
    'runs a round from the queue into a new version with lineage, metrics and comparisons vs its parent',
    { timeout: 180_000 },
    async () => {
      const launched = await t.app.inject({
        method: 'POST',
        url: `/api/projects/${projectId}/rounds`,
        headers: admin.headers,
        payload: { algorithm: 'RLOO', config: ROUND },
      });
      expect(launched.statusCode, launched.body).toBe(201);
      const roundId = launched.json<{ id: string }>().id;
      const again = await t.app.inject({
        method: 'POST',
        url: `/api/projects/${projectId}/rounds`,
        headers: admin.headers,
        payload: {},
      });
      expect(again.statusCode).toBe(409);

      const round = await until('the round to finish', async () => {
        const response = await t.app.inject({ url: `/api/rounds/${roundId}`, headers: admin.headers });
        const body = response.json<{ status: string; error: string | null }>();
        if (body.status === 'FAILED') throw new Error(`round failed: ${body.error}`);
        return body.status === 'SUCCEEDED'
          ? response.json<Record<string, unknown> & { metrics: Record<string, unknown> }>()
          : null;
      });
      expect(round).toMatchObject({ progress: 1, attempt: 1, phase: 'done' });
      for (const key of [
        'rmTrainAccuracy',
        'reward',
        'kl',
        'meanLength',
        'lengthDrift',
        'winRateVsParent',
        'utility',
        'correctShare',
      ]) {
        expect(round.metrics, key).toHaveProperty(key);
      }

      const versions = await t.app.inject({
        url: `/api/projects/${projectId}/policy-versions`,
        headers: admin.headers,
      });
      const [sft, child] = versions.json<
        {
          id: string;
          parentId: string | null;
          roundId: string | null;
          rewardModelId: string | null;
          snapshotId: string | null;
          current: boolean;
        }[]
      >();
      expect(child).toMatchObject({ parentId: sft!.id, roundId, current: false });
      expect(child!.rewardModelId).toBeTruthy();
      expect(child!.snapshotId).toBe(round.snapshotId);
      const snapshot = await t.prisma.datasetSnapshot.findUniqueOrThrow({
        where: { id: child!.snapshotId! },
        include: { _count: { select: { items: true } } },
      });
      const judged = await t.prisma.preference.count({ where: { comparison: { projectId } } });
      expect(snapshot._count.items).toBe(judged);
      // The snapshot the lineage cites is a file like any other: listed with its size, and every
      // download repeats the bytes it was hashed with.
      const listed = await t.app.inject({
        url: `/api/projects/${projectId}/snapshots`,
        headers: admin.headers,
      });
      const entry = listed
        .json<{ id: string; name: string; byteSize: number; rowCount: number; contentHash: string }[]>()
        .find((s) => s.id === snapshot.id);
      expect(entry).toMatchObject({ name: 'round-1-attempt-1', contentHash: snapshot.contentHash });
      expect(entry!.byteSize).toBeGreaterThan(0);
      const download = await t.app.inject({
        url: `/api/snapshots/${snapshot.id}/download`,
        headers: admin.headers,
      });
      expect(download.statusCode, download.body).toBe(200);
      expect(download.rawPayload.length).toBe(entry!.byteSize);
      expect(createHash('sha256').update(download.rawPayload).digest('hex')).toBe(snapshot.contentHash);
      expect(download.body.trim().split('\n')).toHaveLength(entry!.rowCount);

      const comparisons = await t.prisma.comparison.findMany({
        where: { roundId },
        include: { responseA: true, responseB: true },
      });
      // New against parent, one a prompt, never two equal answers.
      expect(comparisons.length).toBeGreaterThan(0);
      expect(comparisons.length).toBeLessThanOrEqual(10);
      for (const comparison of comparisons) {
        expect(comparison.responseA.text).not.toBe(comparison.responseB.text);
        expect([comparison.responseA.policyVersionId, comparison.responseB.policyVersionId].sort()).toEqual(
          [child!.id, sft!.id].sort(),
        );
      }
      const events = await t.app.inject({ url: `/api/rounds/${roundId}/events`, headers: admin.headers });
      const policySteps = events
        .json<{ phase: string; step: number | null; data: { loss?: number } }[]>()
        .filter((e) => e.phase === 'policy' && e.step !== null);
      expect(policySteps).toHaveLength(3);
      expect(typeof policySteps[0]!.data.loss).toBe('number');

      const promoted = await t.app.inject({
        method: 'POST',
        url: `/api/policy-versions/${child!.id}/promote`,
        headers: admin.headers,
      });
      expect(promoted.json()).toMatchObject({ id: child!.id, current: true });
      // Rolling back is promoting the parent again.
      const rolledBack = await t.app.inject({
        method: 'POST',
        url: `/api/policy-versions/${sft!.id}/promote`,
        headers: admin.headers,
      });
      expect(rolledBack.json()).toMatchObject({ id: sft!.id, current: true });
    },
  );

  it('cancels a queued round, and its job then does nothing', async () => {
    await t.boss!.offWork('training-round');
    const launched = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/rounds`,
      headers: admin.headers,
      payload: { config: ROUND },
    });
    const roundId = launched.json<{ id: string }>().id;
    const cancelled = await t.app.inject({
      method: 'POST',
      url: `/api/rounds/${roundId}/cancel`,
      headers: admin.headers,
    });
    expect(cancelled.json()).toMatchObject({ status: 'CANCELLED', cancelRequested: true });
    await runRound(t.prisma, roundId);
    const row = await t.prisma.trainingRound.findUniqueOrThrow({ where: { id: roundId } });
    expect(row.status).toBe('CANCELLED');
    expect(await t.prisma.policyVersion.count({ where: { roundId } })).toBe(0);
  });

  it('starts rounds by the project’s schedule once enough new judgments arrived', async () => {
    const patched = await t.app.inject({
      method: 'PATCH',
      url: `/api/projects/${projectId}`,
      headers: admin.headers,
      payload: {
        schedule: {
          enabled: true,
          minNewPreferences: 5,
          minIntervalMinutes: 1,
          algorithm: 'GRPO',
          config: ROUND,
          autoPromote: true,
          promoteMargin: 0.1,
        },
      },
    });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(patched.json().schedule).toMatchObject({ enabled: true, algorithm: 'GRPO' });
    // The last round is too recent, and nothing new was judged since.
    expect(await t.app.services.rounds.runSchedules()).toEqual([]);
    // Two minutes later, still nothing new judged since the last round.
    await t.prisma.trainingRound.updateMany({
      where: { projectId },
      data: { createdAt: new Date(Date.now() - 120_000) },
    });
    await t.prisma.preference.updateMany({
      where: { comparison: { projectId } },
      data: { createdAt: new Date(Date.now() - 180_000) },
    });
    expect(await t.app.services.rounds.runSchedules()).toEqual([]);
    // Raters judge the new version against its parent: enough new judgments for a round.
    const result = await runSimulatedRaters({
      origin,
      projectId,
      accounts: await ensureSimulatedRaters(t.prisma, projectId, 2),
      answers: await answerKey(t.prisma, projectId),
      noise: 0,
      judgments: 1000,
    });
    expect(result.judged).toBe(10);
    await t.boss!.offWork('training-round');
    const started = await t.app.services.rounds.runSchedules();
    expect(started).toHaveLength(1);
    const round = await t.prisma.trainingRound.findUniqueOrThrow({ where: { id: started[0]! } });
    expect(round).toMatchObject({ algorithm: 'GRPO', status: 'QUEUED', createdById: null });
    expect(await t.app.services.rounds.runSchedules()).toEqual([]);
    await t.app.services.rounds.cancel(round.id, { id: null });
  });
});
