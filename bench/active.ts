// Active choice of what to judge next, on the demo with simulated raters: judgments needed until
// the reward model reaches a held-out accuracy, with the queue in the uncertainty order (the
// reward model's least certain comparisons first, refreshed after each round) against the fixed
// order (the stored order: priority 0 for all, then id, which is random).
//
// Per seed: the demo's 1,600 practice prompts, two responses each sampled from the shipped first
// policy at temperature 1 as the demo's first comparisons are (repeats drawn again, equal texts
// never paired); one simulated judgment per comparison (the demo's overlap 1; the hidden utility,
// 10% noise), drawn once, so both orders see the same rater answers. Judgments arrive in rounds of
// `BENCH_BATCH` (50, the schedule's default minimum of new judgments per round). After each round
// a reward model is fitted afresh on everything judged, as a round fits it (from the SFT policy's
// backbone and likelihood term, the round's epochs, a fifth of the prompts choosing the best
// epoch). The uncertainty order then serves the remaining comparisons by `uncertaintyPriority` of
// that reward model (the function the product's queue refresh writes, core/ranking/uncertainty.ts),
// ties in the stored order, as the queue's `priority DESC, id` does; the fixed order keeps the
// stored order. The first round is the stored order for both (no reward model yet).
//
// Accuracy: on held-out pairs (the 60 held-out prompts, 8 samples each, every two the hidden
// utility tells apart), the mean over `BENCH_EVAL_FITS` (3) fits on the same judgments (the
// round's, seed s, which orders the queue, and seeds s + 100, s + 200): one fit's luck moves the
// accuracy by ±0.02 from round to round, as much as the effect measured. An order's count is the
// judgments of the first round whose accuracy reaches `BENCH_TARGET` (0.855, just under the
// 0.86-0.87 that the fixed order's reward models reach from about 300 judgments on); same seeds,
// batches, raters and model for both; an order that has not reached it by `BENCH_MAX` (800)
// judgments counts as that many and the line says so.
//
// Ends with `active: judgments_ratio=<uncertainty / fixed>` (the counts summed over the seeds;
// target ≤ 0.7). `BENCH_SEEDS` (3); `BENCH_CURVE=1` runs every round to `BENCH_MAX` and prints the
// whole curves.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { demoTasks, demoUtility, DEMO_PROMPTS, type DemoTask } from '../core/demo.js';
import { seededRandom } from '../core/ranking/bradley-terry.js';
import { uncertaintyPriority } from '../core/ranking/uncertainty.js';
import { ROUND_DEFAULTS } from '../core/schemas/round-defaults.js';
import { simulatedJudgment } from '../server/simulated-raters.js';
import { distinctPairs, redrawRepeats } from '../trainer/jobs/pairing.js';
import { DEMO_CHECKPOINT } from '../trainer/jobs/seed-demo.js';
import { decodePolicy, type Policy } from '../trainer/policy.js';
import type { ComparisonExample } from '../trainer/preferences.js';
import { evaluateRewardModel, fitRewardModel, RewardModel } from '../trainer/reward-model.js';
import { initBackend, Rng } from '../trainer/runtime.js';
import { generate } from '../trainer/sampling.js';

const SEEDS = Number(process.env.BENCH_SEEDS ?? 3);
const BATCH = Number(process.env.BENCH_BATCH ?? 50);
const TARGET = Number(process.env.BENCH_TARGET ?? 0.855);
const MAX = Number(process.env.BENCH_MAX ?? 800);
const EVAL_FITS = Number(process.env.BENCH_EVAL_FITS ?? 3);
const CURVE = process.env.BENCH_CURVE === '1';
const NOISE = 0.1;
const SAMPLING = { temperature: 1, topK: 0, maxNewTokens: 24, batchSize: 64 };

interface Comparison {
  prompt: string;
  responseA: string;
  responseB: string;
  /** The simulated rater's judgment, drawn once. */
  judgment: ComparisonExample;
}

function sample(policy: Policy, prompts: string[], rng: Rng): string[] {
  const ids = prompts.map((p) => policy.tokenizer.encodePrompt(p));
  return generate(policy.model, ids, SAMPLING, rng).map(
    (r) => policy.tokenizer.decode(r).trim() || '(empty)',
  );
}

/** The demo's first comparisons as seed-demo makes them (own sampling seed), judged once each, in a random stored order. */
function pool(policy: Policy, tasks: DemoTask[], seed: number): Comparison[] {
  const rng = new Rng(1000 + seed);
  const prompts = tasks.map((t) => t.prompt);
  const samples = [sample(policy, prompts, rng), sample(policy, prompts, rng)];
  redrawRepeats(samples, (indexes) =>
    sample(
      policy,
      indexes.map((i) => prompts[i]!),
      rng,
    ),
  );
  const random = seededRandom(2000 + seed);
  const comparisons = tasks.flatMap((task, i) =>
    distinctPairs(samples.map((s) => ({ text: s[i]! }))).map(([a, b]): Comparison => {
      const shown = simulatedJudgment(a.text, b.text, task.answer, NOISE, random);
      const choice = shown.choice === 'LEFT' ? 'A' : shown.choice === 'RIGHT' ? 'B' : shown.choice;
      return {
        prompt: task.prompt,
        responseA: a.text,
        responseB: b.text,
        judgment: {
          prompt: task.prompt,
          promptId: task.prompt,
          responseA: a.text,
          responseB: b.text,
          choice,
          strength: shown.strength ?? null,
        },
      };
    }),
  );
  // Stored order: ids are random, so the fixed order (priority 0 for all) is a random one.
  return new Rng(3000 + seed).shuffle(comparisons);
}

/** Held-out pairs: 8 samples of each held-out prompt, every two whose hidden utility differs. */
function heldOutPairs(policy: Policy, tasks: DemoTask[]): ComparisonExample[] {
  const per = 8;
  const texts = sample(
    policy,
    tasks.flatMap((t) => Array<string>(per).fill(t.prompt)),
    new Rng(77),
  );
  return tasks.flatMap((task, k) => {
    const responses = [...new Set(texts.slice(k * per, (k + 1) * per))];
    const pairs: ComparisonExample[] = [];
    for (let a = 0; a < responses.length; a++)
      for (let b = a + 1; b < responses.length; b++) {
        const ua = demoUtility(responses[a]!, task.answer);
        const ub = demoUtility(responses[b]!, task.answer);
        if (ua !== ub)
          pairs.push({
            prompt: task.prompt,
            responseA: responses[a]!,
            responseB: responses[b]!,
            choice: ua > ub ? 'A' : 'B',
          });
      }
    return pairs;
  });
}

/** As a round splits: a fifth of the prompts (by their text's hash) pick the best epoch. */
function validationPrompt(prompt: string): boolean {
  return parseInt(createHash('sha256').update(prompt).digest('hex').slice(0, 8), 16) % 5 === 0;
}

/** A round's reward model: from the SFT policy, on everything judged so far. */
async function fitRound(sft: Policy, judged: ComparisonExample[], seed: number): Promise<RewardModel> {
  const rm = RewardModel.fromPolicy(sft);
  await fitRewardModel(
    rm,
    judged.filter((j) => !validationPrompt(j.prompt)),
    judged.filter((j) => validationPrompt(j.prompt)),
    { maxEpochs: ROUND_DEFAULTS.rewardModelEpochs, patience: 2, config: { seed } },
  );
  return rm;
}

type Order = 'fixed' | 'uncertainty';

/** Rounds of one order until the target is reached (or BENCH_MAX); the judgments it took. */
async function simulate(
  sft: Policy,
  comparisons: Comparison[],
  heldOut: ComparisonExample[],
  order: Order,
  seed: number,
): Promise<{ judgments: number | null; curve: string[] }> {
  let remaining = comparisons.map((c, stored) => ({ ...c, stored }));
  const judged: ComparisonExample[] = [];
  const curve: string[] = [];
  let reached: number | null = null;
  while (remaining.length > 0 && judged.length < MAX) {
    const batch = remaining.slice(0, BATCH);
    remaining = remaining.slice(BATCH);
    judged.push(...batch.map((c) => c.judgment));
    const rm = await fitRound(sft, judged, seed);
    // The accuracy a round's reward model has on this data: the mean over EVAL_FITS fits (the
    // round's, which orders the queue, and more with other seeds), so one fit's luck counts less.
    let total = evaluateRewardModel(rm, heldOut).accuracy;
    for (let k = 1; k < EVAL_FITS; k++) {
      const other = await fitRound(sft, judged, seed + 100 * k);
      total += evaluateRewardModel(other, heldOut).accuracy;
      other.dispose();
    }
    const accuracy = total / EVAL_FITS;
    curve.push(`${judged.length}:${accuracy.toFixed(3)}`);
    if (reached === null && accuracy >= TARGET) reached = judged.length;
    if (reached !== null && !CURVE) {
      rm.dispose();
      break;
    }
    if (order === 'uncertainty' && remaining.length > 0) {
      const rewards = rm.score(
        remaining.flatMap((c) => [
          { prompt: c.prompt, response: c.responseA },
          { prompt: c.prompt, response: c.responseB },
        ]),
      );
      const priority = remaining.map((_, i) => uncertaintyPriority(rewards[2 * i]!, rewards[2 * i + 1]!));
      // The queue's order: priority DESC, then the stored order.
      remaining = remaining
        .map((c, i) => ({ c, p: priority[i]! }))
        .sort((x, y) => y.p - x.p || x.c.stored - y.c.stored)
        .map(({ c }) => c);
    }
    rm.dispose();
  }
  return { judgments: reached, curve };
}

export async function main(): Promise<void> {
  await initBackend();
  const sft = decodePolicy(readFileSync(DEMO_CHECKPOINT)).policy;
  const tasks = demoTasks(DEMO_PROMPTS, 1);
  const heldOut = heldOutPairs(sft, tasks.heldOut);
  const start = RewardModel.fromPolicy(sft);
  console.log(
    `held-out: ${heldOut.length} pairs of ${tasks.heldOut.length} prompts; the SFT-initialized reward model ranks ` +
      `${evaluateRewardModel(start, heldOut).accuracy.toFixed(3)} right before any judgment; target ${TARGET}, rounds of ${BATCH}`,
  );
  start.dispose();
  const totals = { fixed: 0, uncertainty: 0 };
  let missed = false;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const started = performance.now();
    const comparisons = pool(sft, tasks.train, seed);
    const counts: Record<Order, number | null> = { fixed: null, uncertainty: null };
    for (const order of ['fixed', 'uncertainty'] as const) {
      const result = await simulate(sft, comparisons, heldOut, order, seed);
      counts[order] = result.judgments;
      console.log(`seed ${seed} ${order}: accuracy after n judgments ${result.curve.join(' ')}`);
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(0);
    const said = (n: number | null) => (n === null ? `not reached by ${MAX}` : String(n));
    console.log(
      `seed ${seed}: ${comparisons.length} comparisons; judgments to ${TARGET}: fixed ${said(counts.fixed)}, ` +
        `uncertainty ${said(counts.uncertainty)}` +
        (counts.fixed && counts.uncertainty
          ? ` (ratio ${(counts.uncertainty / counts.fixed).toFixed(3)})`
          : '') +
        ` (${seconds} s)`,
    );
    if (counts.fixed === null || counts.uncertainty === null) missed = true;
    totals.fixed += counts.fixed ?? MAX;
    totals.uncertainty += counts.uncertainty ?? MAX;
  }
  console.log(
    `active: judgments_ratio=${(totals.uncertainty / totals.fixed).toFixed(3)} ` +
      `uncertainty=${totals.uncertainty} fixed=${totals.fixed} target_accuracy=${TARGET}` +
      (missed ? ` (an order did not reach the target: counted as ${MAX})` : ''),
  );
}
