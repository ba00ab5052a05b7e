// A trainer worker killed in the middle of a round: the job is retried by another worker, the
// round completes exactly once, and nothing from the killed attempt is promoted or left behind.
import type { ChildProcess } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDemoProject } from '../../core/demo.js';
import { answerKey, ensureSimulatedRaters, runSimulatedRaters } from '../../server/simulated-raters.js';
import { seedDemo } from '../../trainer/jobs/seed-demo.js';
import { initBackend } from '../../trainer/runtime.js';
import { startTrainerWorker } from '../support/trainer-worker.js';
import { until } from '../support/wait.js';
import { createAndSignIn, createTestApp, type TestApp } from '../support/app.js';

let t: TestApp;
const workers: ChildProcess[] = [];

function startWorker(): ChildProcess {
  const child = startTrainerWorker(t);
  workers.push(child);
  return child;
}

beforeAll(async () => {
  await initBackend();
  t = await createTestApp({}, { jobs: true });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
}, 120_000);
afterAll(async () => {
  for (const worker of workers) if (worker.exitCode === null) worker.kill('SIGKILL');
  await t.close();
});

describe('a trainer killed mid-round', () => {
  it('is retried elsewhere and the round completes exactly once', async () => {
    const projectId = (await ensureDemoProject(t.prisma, t.boss!, { train: 40, heldOut: 10 }))!;
    await seedDemo(t.prisma, projectId, {
      sftSteps: 30,
      model: { contextLength: 32, nLayer: 1, nHead: 2, nEmbd: 32 },
      samplesPerPrompt: 2,
    });
    const origin = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
    await runSimulatedRaters({
      origin,
      projectId,
      accounts: await ensureSimulatedRaters(t.prisma, projectId, 2),
      answers: await answerKey(t.prisma, projectId),
      noise: 0,
      judgments: 1000,
    });
    const admin = await createAndSignIn(t, 'ADMIN');

    const first = startWorker();
    const launched = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/rounds`,
      headers: admin.headers,
      payload: {
        config: {
          iterations: 40,
          promptsPerIteration: 8,
          samplesPerPrompt: 2,
          rewardModelEpochs: 1,
          comparisonPrompts: 5,
        },
      },
    });
    expect(launched.statusCode, launched.body).toBe(201);
    const roundId = launched.json<{ id: string }>().id;

    // Kill it while it optimizes the policy (after the reward model was saved).
    await until('the policy phase', async () => {
      const round = await t.prisma.trainingRound.findUniqueOrThrow({ where: { id: roundId } });
      if (round.status === 'SUCCEEDED')
        throw new Error('finished before it could be killed; give it more iterations');
      return round.phase === 'policy' && round.progress > 0.25;
    });
    first.kill('SIGKILL');
    const killed = await t.prisma.trainingRound.findUniqueOrThrow({ where: { id: roundId } });
    expect(killed).toMatchObject({ status: 'RUNNING', attempt: 1 });
    expect(await t.prisma.policyVersion.count({ where: { roundId } })).toBe(0);

    startWorker();
    const done = await until('the retried round', async () => {
      const round = await t.prisma.trainingRound.findUniqueOrThrow({ where: { id: roundId } });
      if (round.status === 'FAILED') throw new Error(`round failed: ${round.error}`);
      return round.status === 'SUCCEEDED' ? round : null;
    });
    expect(done.attempt).toBe(2);

    // Exactly one version, one reward model, one snapshot; no weights without an owner.
    expect(await t.prisma.policyVersion.count({ where: { roundId } })).toBe(1);
    expect(await t.prisma.rewardModel.count({ where: { roundId } })).toBe(1);
    expect(await t.prisma.datasetSnapshot.count({ where: { projectId } })).toBe(1);
    const orphans = await t.prisma.modelArtifact.count({
      where: { projectId, policyVersions: { none: {} }, rewardModels: { none: {} } },
    });
    expect(orphans).toBe(0);
    // Not promoted by itself (no automatic promotion configured).
    const project = await t.prisma.project.findUniqueOrThrow({ where: { id: projectId } });
    const version = await t.prisma.policyVersion.findFirstOrThrow({ where: { roundId } });
    expect(project.currentPolicyVersionId).not.toBe(version.id);
    expect(await t.prisma.comparison.count({ where: { roundId } })).toBe(5);
  }, 400_000);
});
