// Best-of-n / rejection-sampling fine-tuning (HH, Llama 2): sample n responses per prompt, keep
// the one the reward model likes best, and fine-tune on those winners with the SFT loss.
import { gradientStep, SFT_LOSS } from './gradient-losses.js';
import { AdamW } from './optimizer.js';
import type { Policy } from './policy.js';
import type { RewardScorer } from './preferences.js';
import { Rollouts, type IterationStats, type RolloutConfig } from './rollout.js';
import { DEFAULT_SAMPLING } from './sampling.js';
import { packBatch, type TokenPair } from './sequences.js';
import { runSteps, type Stepper, type StepperOptions } from './stepper.js';

export interface BestOfNConfig extends RolloutConfig {
  iterations: number;
  /** SFT passes over each round's winners. */
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
}

export const DEFAULT_BEST_OF_N: BestOfNConfig = {
  iterations: 20, // rounds of sample → select → fine-tune
  promptsPerIteration: 32, // winners per round
  k: 8, // n: samples per prompt
  epochs: 1, // one pass over the winners per round, like Llama 2's rejection-sampling rounds
  batchSize: 16, // winners per SFT step
  learningRate: 1e-4, // fine-tuning an SFT model: ten times below SFT
  sampling: DEFAULT_SAMPLING, // temperature 1: selection needs diversity
  missingEndPenalty: 0, // off
  seed: 1, // prompts and samples
};

/** A round's statistics, with the mean score of its winners. */
export type BestOfNStats = IterationStats & { winnerScore: number };

/** Best-of-n one round at a time: each step samples n per prompt and fine-tunes on the winners. */
export function bestOfNStepper(
  policy: Policy,
  reference: Policy,
  scorer: RewardScorer,
  prompts: string[],
  config: Partial<BestOfNConfig> = {},
  options: StepperOptions = {},
): Stepper<BestOfNStats> {
  const cfg = { ...DEFAULT_BEST_OF_N, ...config };
  const rollouts = new Rollouts(policy, reference, scorer, prompts, cfg, options.helper);
  const optimizer = options.optimizer ?? new AdamW({ learningRate: cfg.learningRate, weightDecay: 0 });
  const step = (): BestOfNStats => {
    const r = rollouts.next();
    const winners: TokenPair[] = [];
    let winnerScore = 0;
    for (let g = 0; g < r.scores.length; g += cfg.k) {
      let best = g;
      for (let i = g + 1; i < g + cfg.k; i++)
        if ((r.scores[i] ?? -Infinity) > (r.scores[best] ?? -Infinity)) best = i;
      winners.push(r.pairs[best] as TokenPair);
      winnerScore += r.scores[best] ?? 0;
    }
    let loss = 0;
    for (let epoch = 0; epoch < cfg.epochs; epoch++) {
      rollouts.rng.shuffle(winners);
      for (let i = 0; i < winners.length; i += cfg.batchSize) {
        const batch = packBatch(winners.slice(i, i + cfg.batchSize), policy.model.config.contextLength);
        loss = gradientStep(policy.model, optimizer, batch, SFT_LOSS, options.parallel);
      }
    }
    return { ...rollouts.stats(r, loss), winnerScore: winnerScore / Math.max(1, winners.length) };
  };
  return { optimizer, step };
}

export function trainBestOfN(
  policy: Policy,
  reference: Policy,
  scorer: RewardScorer,
  prompts: string[],
  config: Partial<BestOfNConfig> = {},
  options: StepperOptions & { onIteration?: (stats: BestOfNStats) => void } = {},
): { optimizer: AdamW; history: BestOfNStats[] } {
  const stepper = bestOfNStepper(policy, reference, scorer, prompts, config, options);
  const iterations = config.iterations ?? DEFAULT_BEST_OF_N.iterations;
  return { optimizer: stepper.optimizer, history: runSteps(stepper, iterations, options.onIteration) };
}
