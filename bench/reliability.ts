// Reward-model accuracy when some raters are unreliable: the demo's practice prompts, each with a
// comparison of two responses drawn as the demo's demonstrations are (a quarter wrong, half padded
// into a sentence), judged by three of 20 simulated raters: 13 careful (the hidden utility, 10%
// noise, as `simulatedJudgment` judges), 5 who answer at random (25%) and 2 who invert their
// answers (10%). A reward model is fitted three times: on all judgments weighted by the raters'
// estimated reliability (the weights a round uses, core/ranking/reliability.ts, fitted without
// gold from the overlap alone), on all judgments unweighted, and on the careful raters' judgments
// only; each is scored on held-out pairs of the demo's held-out prompts ranked by the hidden
// utility, averaged over seeds (raters' draws and the model's initialization).
//
// By default the text reward model, without strength margins: it learns only from the labels, so
// the comparison isolates them. `BENCH_RM=backbone` fits the reward model rounds train on the
// built-in policy instead (the shipped SFT policy's backbone and likelihood term, one epoch): it
// starts at 0.87 on these pairs from the SFT likelihood alone, and its seed-to-seed spread (±0.02)
// is as large as the labels' effect. `BENCH_MARGINS=on` trains with Llama 2's margins from the
// raters' strengths. `BENCH_PROMPTS`, `BENCH_OVERLAP`, `BENCH_SEEDS` (default 1600, 3, 5).
// Ends with `reliability: weighted_acc=<a> unweighted_acc=<b> clean_acc=<c>`.
import { readFileSync } from 'node:fs';
import { demoDemonstrations, demoTasks, demoUtility, DEMO_PROMPTS } from '../core/demo.js';
import { seededRandom } from '../core/ranking/bradley-terry.js';
import { reliabilityWeights } from '../core/ranking/reliability.js';
import { simulatedJudgment } from '../server/simulated-raters.js';
import { decodePolicy } from '../trainer/policy.js';
import type { ComparisonExample } from '../trainer/preferences.js';
import { evaluateRewardModel, RewardModel, trainRewardModel } from '../trainer/reward-model.js';
import { TextRewardModel } from '../trainer/text-reward-model.js';
import { DEMO_CHECKPOINT } from '../trainer/jobs/seed-demo.js';
import { initBackend } from '../trainer/runtime.js';

const PROMPTS = Number(process.env.BENCH_PROMPTS ?? DEMO_PROMPTS.train);
const OVERLAP = Number(process.env.BENCH_OVERLAP ?? 3);
const SEEDS = Number(process.env.BENCH_SEEDS ?? 5);
const NOISE = 0.1;
/** `text`: the text-only reward model; `backbone`: the one rounds train on the built-in model. */
const REWARD_MODEL = process.env.BENCH_RM ?? 'text';
/** Llama 2's margins from the raters' strengths, or none (the default here). */
const MARGINS = process.env.BENCH_MARGINS === 'on' ? {} : { margins: null };
const RATERS = [
  ...Array.from({ length: 13 }, (_, i) => ({ id: `careful-${i + 1}`, kind: 'careful' as const })),
  ...Array.from({ length: 5 }, (_, i) => ({ id: `random-${i + 1}`, kind: 'random' as const })),
  ...Array.from({ length: 2 }, (_, i) => ({ id: `inverting-${i + 1}`, kind: 'inverting' as const })),
];

type Judged = ComparisonExample & { comparisonId: string; raterId: string; careful: boolean };

/** Two different responses per prompt, drawn as the demo's demonstrations are. */
function responsePairs(tasks: { prompt: string; answer: string }[], perPrompt: number, seed: number) {
  const drawn = demoDemonstrations(tasks, perPrompt * 4, seed);
  return tasks.map((task, t) => {
    const own = [...new Set(drawn.slice(t * perPrompt * 4, (t + 1) * perPrompt * 4).map((d) => d.response))];
    return { ...task, responses: own.slice(0, perPrompt) };
  });
}

function judge(seed: number): Judged[] {
  const random = seededRandom(seed);
  const tasks = demoTasks(DEMO_PROMPTS, 1).train.slice(0, PROMPTS);
  const judged: Judged[] = [];
  responsePairs(tasks, 2, 1000 + seed).forEach((task, i) => {
    if (task.responses.length < 2) return;
    const [responseA, responseB] = task.responses as [string, string];
    const raters = new Set<(typeof RATERS)[number]>();
    while (raters.size < OVERLAP) raters.add(RATERS[Math.floor(random() * RATERS.length)]!);
    for (const rater of raters) {
      const noise = rater.kind === 'random' ? 1 : NOISE;
      const shown = simulatedJudgment(responseA, responseB, task.answer, noise, random);
      const inverted = rater.kind === 'inverting';
      const choice =
        shown.choice === 'LEFT'
          ? inverted
            ? 'B'
            : 'A'
          : shown.choice === 'RIGHT'
            ? inverted
              ? 'A'
              : 'B'
            : shown.choice;
      judged.push({
        comparisonId: `c${i}`,
        raterId: rater.id,
        careful: rater.kind === 'careful',
        prompt: task.prompt,
        promptId: task.prompt,
        responseA,
        responseB,
        choice,
        strength: shown.strength ?? null,
      });
    }
  });
  return judged;
}

/** Held-out pairs: every two responses of a held-out prompt the hidden utility tells apart. */
function heldOutPairs(): ComparisonExample[] {
  const tasks = demoTasks(DEMO_PROMPTS, 1).heldOut;
  return responsePairs(tasks, 6, 77).flatMap((task) => {
    const pairs: ComparisonExample[] = [];
    for (let a = 0; a < task.responses.length; a++)
      for (let b = a + 1; b < task.responses.length; b++) {
        const ua = demoUtility(task.responses[a]!, task.answer);
        const ub = demoUtility(task.responses[b]!, task.answer);
        if (ua === ub) continue;
        pairs.push({
          prompt: task.prompt,
          responseA: task.responses[a]!,
          responseB: task.responses[b]!,
          choice: ua > ub ? 'A' : 'B',
        });
      }
    return pairs;
  });
}

function accuracy(train: ComparisonExample[], heldOut: ComparisonExample[], seed: number): number {
  if (REWARD_MODEL === 'text') {
    const text = new TextRewardModel({ seed, ...MARGINS });
    text.train(train);
    return evaluateRewardModel(text, heldOut).accuracy;
  }
  const { policy } = decodePolicy(readFileSync(DEMO_CHECKPOINT));
  const rm = RewardModel.fromPolicy(policy);
  trainRewardModel(rm, train, { seed, ...MARGINS });
  return evaluateRewardModel(rm, heldOut).accuracy;
}

export async function main(): Promise<void> {
  await initBackend();
  const heldOut = heldOutPairs();
  const sums = { weighted: 0, unweighted: 0, clean: 0 };
  for (let seed = 1; seed <= SEEDS; seed++) {
    const started = performance.now();
    const judged = judge(seed);
    const { weights, fit } = reliabilityWeights(judged);
    if (!weights) throw new Error(`only ${fit.informative} comparisons tell raters apart`);
    const byKind = (kind: string) =>
      fit.raters
        .filter((r) => r.raterId.startsWith(kind))
        .map((r) => r.reliability.toFixed(2))
        .join(' ');
    console.log(
      `seed ${seed}: ${judged.length} judgments on ${fit.outcomes.size} comparisons; reliability careful ${byKind('careful')}; ` +
        `random ${byKind('random')}; inverting ${byKind('inverting')} (${fit.iterations} EM iterations)`,
    );
    const weighted = accuracy(
      judged.map((j, k) => ({ ...j, weight: weights[k]! })),
      heldOut,
      seed,
    );
    const unweighted = accuracy(judged, heldOut, seed);
    const clean = accuracy(
      judged.filter((j) => j.careful),
      heldOut,
      seed,
    );
    console.log(
      `seed ${seed}: held-out accuracy on ${heldOut.length} pairs: weighted ${weighted.toFixed(4)}, unweighted ${unweighted.toFixed(4)}, ` +
        `careful raters only ${clean.toFixed(4)} (${((performance.now() - started) / 1000).toFixed(0)} s)`,
    );
    sums.weighted += weighted;
    sums.unweighted += unweighted;
    sums.clean += clean;
  }
  console.log(
    `reliability: weighted_acc=${(sums.weighted / SEEDS).toFixed(4)} unweighted_acc=${(sums.unweighted / SEEDS).toFixed(4)} ` +
      `clean_acc=${(sums.clean / SEEDS).toFixed(4)}`,
  );
}
