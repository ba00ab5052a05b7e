// The closed loop on the demo project: simulated raters (with noise) judge through the HTTP API,
// a round trains from the queue, its version is promoted, raters judge it against its parent, and
// so on for 5 rounds. The peer is the SFT policy the loop started from, judged on held-out prompts
// by the raters' hidden utility (correct first, then concise).
// Ends with `loop: win_rate_vs_sft=<0..1> kl=<nats> length_drift=<ratio>`.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { benchDatabase } from './database.js';
import { buildApp } from '../server/app.js';
import { loadConfig } from '../server/config.js';
import { createPrisma } from '../server/db/client.js';
import { demoUtility, ensureDemoProject, isCorrect } from '../server/demo.js';
import { startBoss, type JobPayloads } from '../server/jobs.js';
import { answerKey, ensureSimulatedRaters, runSimulatedRaters } from '../server/simulated-raters.js';
import { evaluatePolicy } from '../trainer/evaluate.js';
import { freezeCopy } from '../trainer/policy.js';
import { loadPolicyVersion, promptText } from '../trainer/jobs/policy-store.js';
import { runInThread } from '../trainer/jobs/thread.js';
import type { RewardScorer } from '../trainer/preferences.js';
import { initBackend } from '../trainer/runtime.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const NOISE = Number(process.env.BENCH_NOISE ?? 0.1);
/** Round settings over the defaults, as JSON (e.g. `{"beta":0.05}`), for trying settings. */
const ROUND_CONFIG = JSON.parse(process.env.BENCH_ROUND ?? '{}') as Record<string, unknown>;
const SAMPLES_PER_PROMPT = 4;

export async function main(): Promise<void> {
  const database = await benchDatabase('loop');
  const databaseUrl = database.url;
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)} s`;
  try {
    const config = loadConfig({
      NODE_ENV: 'test',
      DATABASE_URL: databaseUrl,
      DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'loom-bench-loop-')),
      SESSION_SECRET: randomBytes(48).toString('base64'),
      LOGIN_RATE_LIMIT_PER_MINUTE: '10000',
      LOG_LEVEL: 'silent',
    });
    const prisma = createPrisma(databaseUrl);
    const boss = await startBoss(databaseUrl, { heartbeatSeconds: 120 });
    const app = await buildApp({ config, prisma, boss, logger: false });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const settings = { databaseUrl, demoSftSteps: config.demoSftSteps };
    const log = (message: string) => console.log(`loop: [${elapsed()}] ${message}`);
    await boss.work<JobPayloads['seed-demo']>('seed-demo', { pollingIntervalSeconds: 0.5 }, async ([job]) => {
      if (job) await runInThread('seed-demo', job.data, settings, log);
    });
    await boss.work<JobPayloads['training-round']>(
      'training-round',
      { pollingIntervalSeconds: 0.5 },
      async ([job]) => {
        if (job) await runInThread('training-round', job.data, settings, log);
      },
    );

    const projectId = (await ensureDemoProject(prisma, boss))!;
    let project = await waitFor(async () => {
      const row = await prisma.project.findUniqueOrThrow({ where: { id: projectId } });
      return row.currentPolicyVersionId ? row : null;
    });
    const sftId = project.currentPolicyVersionId!;
    const answers = await answerKey(prisma, projectId);
    const accounts = await ensureSimulatedRaters(prisma, projectId, 3);

    for (let round = 1; round <= ROUNDS; round++) {
      const judged = await runSimulatedRaters({
        origin,
        projectId,
        accounts,
        answers,
        noise: NOISE,
        judgments: Number.POSITIVE_INFINITY,
        seed: round,
      });
      log(`round ${round}: ${judged.judged} new judgments (noise ${NOISE})`);
      project = await prisma.project.findUniqueOrThrow({ where: { id: projectId } });
      const launched = await app.services.rounds.launch(
        project,
        { algorithm: 'RLOO', config: ROUND_CONFIG },
        { id: null },
      );
      const finished = await waitFor(async () => {
        const row = await prisma.trainingRound.findUniqueOrThrow({
          where: { id: launched.id },
          include: { outputPolicyVersion: true },
        });
        if (row.status === 'FAILED' || row.status === 'CANCELLED')
          throw new Error(`round ${round} ${row.status}: ${row.error}`);
        return row.status === 'SUCCEEDED' ? row : null;
      });
      const m = finished.metrics as Record<string, number | null>;
      log(
        `round ${round}: RM val acc ${fmt(m.rmValidationAccuracy)}, utility ${fmt(m.parentUtility)} → ${fmt(m.utility)}, ` +
          `correct ${fmt(m.parentCorrectShare)} → ${fmt(m.correctShare)}, KL ${fmt(m.kl)}, win vs parent ${fmt(m.winRateVsParent)}`,
      );
      await app.services.rounds.promote(finished.outputPolicyVersion!.id, { id: null });
    }

    // The final policy against the SFT policy it started from, by the hidden utility.
    await initBackend();
    project = await prisma.project.findUniqueOrThrow({ where: { id: projectId } });
    const final = await loadPolicyVersion(prisma, project.currentPolicyVersionId!);
    const sft = freezeCopy(await loadPolicyVersion(prisma, sftId));
    const heldOut = (await prisma.prompt.findMany({ where: { projectId, split: 'TEST' } })).map((p) =>
      promptText(p.messages),
    );
    const prompts = heldOut.flatMap((p) => Array.from({ length: SAMPLES_PER_PROMPT }, () => p));
    const utility: RewardScorer = {
      score: (items) => items.map((i) => demoUtility(i.response, answers.get(i.prompt) ?? '')),
    };
    const sampling = { temperature: 1, topK: 0, maxNewTokens: 24, batchSize: 64 };
    const finalEval = evaluatePolicy(final, sft, utility, prompts, sampling, 101);
    const sftEval = evaluatePolicy(sft, sft, utility, prompts, sampling, 202);
    let wins = 0;
    finalEval.samples.forEach((s, i) => {
      const other = sftEval.samples[i]!.reward;
      wins += s.reward > other ? 1 : s.reward === other ? 0.5 : 0;
    });
    const winRate = wins / prompts.length;
    // What these SFT samples leave to win: a policy always right and bare ties their right, bare answers.
    let bound = 0;
    sftEval.samples.forEach((s) => {
      const answer = answers.get(s.prompt) ?? '';
      const best = demoUtility(answer, answer);
      bound += best > s.reward ? 1 : best === s.reward ? 0.5 : 0;
    });
    const correct = (samples: { prompt: string; response: string }[]) =>
      samples.filter((s) => isCorrect(s.response, answers.get(s.prompt) ?? '')).length / samples.length;
    // Per task (the word before the colon): which skill carries over to unseen words, and which not.
    const byTask = (samples: { prompt: string; response: string }[]) => {
      const tasks = new Map<string, { prompt: string; response: string }[]>();
      for (const s of samples) {
        const task = s.prompt.split(':')[0]!;
        tasks.set(task, [...(tasks.get(task) ?? []), s]);
      }
      return [...tasks].map(([task, group]) => `${task} ${fmt(correct(group))}`).join(', ');
    };
    log(
      `final vs SFT on ${heldOut.length} held-out prompts × ${SAMPLES_PER_PROMPT}: utility ${fmt(sftEval.meanReward)} → ${fmt(finalEval.meanReward)}, ` +
        `correct ${fmt(correct(sftEval.samples))} → ${fmt(correct(finalEval.samples))} ` +
        `(${byTask(sftEval.samples)} → ${byTask(finalEval.samples)}); ` +
        `a policy always right and bare would win ${(bound / prompts.length).toFixed(3)} against the same SFT samples`,
    );
    console.log(
      `loop: win_rate_vs_sft=${winRate.toFixed(3)} kl=${finalEval.kl.toFixed(3)} length_drift=${(finalEval.meanLength / Math.max(1e-9, sftEval.meanLength)).toFixed(3)}`,
    );
    await app.close();
    await boss.stop({ graceful: false });
    await prisma.$disconnect();
  } finally {
    await database.drop();
  }
}

function fmt(value: number | null | undefined): string {
  return value === null || value === undefined ? '–' : value.toFixed(2);
}

async function waitFor<T>(probe: () => Promise<T | null>, timeoutMs = 3_600_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}
