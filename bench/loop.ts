// The closed loop on the demo project: simulated raters (with noise) judge through the HTTP API,
// a round trains from the queue, raters judge its new version against its parent, and the version
// is promoted by the human-judged rule (the lower end of the 95% interval of its win rate against
// the parent above 0.5, on at least 20 votes; the round scheduler's own promotion); and so on for
// 5 rounds. Each round reports whether it promoted and on how many votes, next to what the
// reward-model rule would have done. The peer is the SFT policy the loop started from, judged on
// held-out prompts by the raters' hidden utility (correct first, then concise).
// Ends with `loop: win_rate_vs_sft=<0..1> kl=<nats> length_drift=<ratio> promoted=<k>/<rounds>`.
// `--seeds N` runs the loop N times with seeds 1..N (round settings, raters) and ends with
// `loop: win_rate_min=<a> win_rate_mean=<b> rounds_worse=<n of N·rounds> kl_max=<c>`, where a round
// is worse when the version it promoted is worse than its parent by the hidden utility.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { benchDatabase } from './database.js';
import { buildApp } from '../server/app.js';
import { loadConfig } from '../core/config.js';
import { createPrisma } from '../core/db/client.js';
import { demoUtility, ensureDemoProject, isCorrect } from '../core/demo.js';
import { startBoss, type JobPayloads } from '../core/jobs.js';
import { defaultSchedule } from '../core/schemas/projects.js';
import { answerKey, ensureSimulatedRaters, runSimulatedRaters } from '../server/simulated-raters.js';
import { evaluatePolicy } from '../trainer/evaluate.js';
import { freezeCopy } from '../trainer/policy.js';
import { loadPolicyVersion, promptText } from '../trainer/jobs/policy-store.js';
import { runInThread } from '../trainer/jobs/thread.js';
import type { RewardScorer } from '../trainer/preferences.js';
import { initBackend } from '../trainer/runtime.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const NOISE = Number(process.env.BENCH_NOISE ?? 0.1);
/**
 * Round settings over the defaults, as JSON (e.g. `{"beta":0.05}`), for trying settings. By
 * default each round pairs its new version with its parent on 600 prompts (the round default is
 * 60): the demo asks one vote per comparison, and a win rate a few points over 0.5 needs hundreds
 * of votes before its 95% interval clears 0.5.
 */
const ROUND_CONFIG: Record<string, unknown> = {
  comparisonPrompts: 600,
  ...(JSON.parse(process.env.BENCH_ROUND ?? '{}') as Record<string, unknown>),
};
const SAMPLES_PER_PROMPT = 4;

export async function main(args: string[] = []): Promise<void> {
  const at = args.indexOf('--seeds');
  const seeds = at >= 0 ? Number(args[at + 1]) : 0;
  if (at >= 0 && !(Number.isInteger(seeds) && seeds >= 1))
    throw new Error('--seeds needs a whole number ≥ 1');
  if (!seeds) {
    await loop(1);
    return;
  }
  const results: LoopResult[] = [];
  for (let seed = 1; seed <= seeds; seed++) {
    results.push(await loop(seed));
    const r = results.at(-1)!;
    console.log(
      `loop: seed ${seed}: win_rate_vs_sft=${r.winRate.toFixed(3)} rounds_worse=${r.roundsWorse} kl=${r.kl.toFixed(3)}`,
    );
  }
  const rates = results.map((r) => r.winRate);
  console.log(
    `loop: win_rate_min=${Math.min(...rates).toFixed(3)} win_rate_mean=${(rates.reduce((a, b) => a + b, 0) / rates.length).toFixed(3)} ` +
      `rounds_worse=${results.reduce((a, r) => a + r.roundsWorse, 0)} of ${seeds * ROUNDS} kl_max=${Math.max(...results.map((r) => r.kl)).toFixed(3)}`,
  );
}

interface LoopResult {
  winRate: number;
  kl: number;
  /** Rounds whose promoted version is worse than its parent by the hidden utility. */
  roundsWorse: number;
}

async function loop(seed: number): Promise<LoopResult> {
  const database = await benchDatabase('loop');
  const databaseUrl = database.url;
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)} s`;
  const roundConfig = { ...ROUND_CONFIG, seed: Number(ROUND_CONFIG.seed ?? 1) + (seed - 1) * 7919 };
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
    // Promotion by raters' judgments, automatic, as a schedule does it; the raters here are
    // simulated, so their votes count.
    await prisma.project.update({
      where: { id: projectId },
      data: {
        schedule: {
          ...defaultSchedule(),
          autoPromote: true,
          promotionRule: 'human',
          promotionMargin: 0.5,
          minVotes: 20,
          countSimulated: true,
        },
      },
    });
    const judge = (judgeSeed: number) =>
      runSimulatedRaters({
        origin,
        projectId,
        accounts,
        answers,
        noise: NOISE,
        judgments: Number.POSITIVE_INFINITY,
        seed: judgeSeed + (roundConfig.seed - 1) * 100_003,
      });
    const promotions: {
      round: number;
      promoted: boolean;
      votes: number;
      versionId: string;
      parentId: string;
    }[] = [];

    for (let round = 1; round <= ROUNDS; round++) {
      const judged = await judge(round);
      log(`round ${round}: ${judged.judged} new judgments (noise ${NOISE})`);
      project = await prisma.project.findUniqueOrThrow({ where: { id: projectId } });
      const launched = await app.services.rounds.launch(
        project,
        { algorithm: 'RLOO', config: roundConfig },
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
      const verdict = finished.metrics as {
        notBetter?: boolean;
        notBetterReasons?: string[];
        stopReason?: string | null;
        stoppedAt?: number | null;
        finalBeta?: number;
      };
      log(
        `round ${round}: ${verdict.notBetter ? `not better (${(verdict.notBetterReasons ?? []).join('; ')})` : 'better'}, ` +
          `${verdict.stopReason ? `stopped at ${verdict.stoppedAt} (${verdict.stopReason})` : 'ran to the end'}, final β ${fmt(verdict.finalBeta)}`,
      );
      log(
        `round ${round}: RM val acc ${fmt(m.rmValidationAccuracy)}, utility ${fmt(m.parentUtility)} → ${fmt(m.utility)}, ` +
          `correct ${fmt(m.parentCorrectShare)} → ${fmt(m.correctShare)}, KL ${fmt(m.kl)}, win vs parent ${fmt(m.winRateVsParent)}`,
      );
      // Raters judge the new version against its parent; the scheduler's promotion step decides.
      const judgedNew = await judge(1000 + round);
      const promoted = await app.services.rounds.autoPromote();
      project = await prisma.project.findUniqueOrThrow({ where: { id: projectId } });
      const evidence = (await app.services.rounds.promotion(project)).versions.find(
        (v) => v.versionId === finished.outputPolicyVersion!.id,
      )!;
      const h = evidence.human;
      const done = promoted.some((p) => p.versionId === evidence.versionId);
      promotions.push({
        round,
        promoted: done,
        votes: h.votes,
        versionId: evidence.versionId,
        parentId: evidence.parentId,
      });
      log(
        `round ${round}: ${done ? 'promoted' : 'not promoted'} on ${h.votes} votes (${judgedNew.judged} new-vs-parent judgments): ` +
          `raters' win rate vs parent ${fmt(h.winRate)} [${fmt(h.low)}, ${fmt(h.high)}] ` +
          `(${h.wins} wins, ${h.losses} losses, ${h.ties + h.bothBad} ties), ${h.decision}; ` +
          `reward-model rule: ${fmt(evidence.rewardModel.winRate)} vs ${fmt(evidence.rewardModel.threshold)}, ${evidence.rewardModel.decision}`,
      );
    }
    console.log(
      `loop: promotions ${promotions
        .map((p) => `round ${p.round} ${p.promoted ? 'promoted' : 'not promoted'} on ${p.votes} votes`)
        .join(', ')}`,
    );

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
      `loop: win_rate_vs_sft=${winRate.toFixed(3)} kl=${finalEval.kl.toFixed(3)} length_drift=${(finalEval.meanLength / Math.max(1e-9, sftEval.meanLength)).toFixed(3)} ` +
        `promoted=${promotions.filter((p) => p.promoted).length}/${ROUNDS}`,
    );
    // Each promoted version against its parent by the hidden utility, on the same samples' seed.
    let roundsWorse = 0;
    for (const p of promotions.filter((q) => q.promoted)) {
      const child = freezeCopy(await loadPolicyVersion(prisma, p.versionId));
      const parent = freezeCopy(await loadPolicyVersion(prisma, p.parentId));
      const mine = evaluatePolicy(child, sft, utility, prompts, sampling, 303).meanReward;
      const theirs = evaluatePolicy(parent, sft, utility, prompts, sampling, 303).meanReward;
      if (mine < theirs) roundsWorse++;
      log(
        `round ${p.round}: promoted version's utility ${fmt(theirs)} → ${fmt(mine)}${mine < theirs ? ' (worse)' : ''}`,
      );
      child.model.dispose();
      parent.model.dispose();
    }
    await app.close();
    await boss.stop({ graceful: false });
    await prisma.$disconnect();
    return { winRate, kl: finalEval.kl, roundsWorse };
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
