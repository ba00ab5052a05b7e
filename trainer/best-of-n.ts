// Best-of-n / rejection-sampling fine-tuning (HH, Llama 2): sample n responses per prompt, keep
// the one the reward model likes best, and fine-tune on those winners with the SFT loss.
import type { DataParallel } from './data-parallel.js';
import { AdamW } from './optimizer.js';
import type { SamplingHelper } from './parallel-sampling.js';
import type { Policy } from './policy.js';
import type { RewardScorer } from './preferences.js';
import {
  collectRollout,
  PromptCycle,
  rolloutStats,
  type IterationStats,
  type RolloutConfig,
} from './rollout.js';
import { Rng } from './runtime.js';
import { DEFAULT_SAMPLING } from './sampling.js';
import { packBatch, type TokenPair } from './sequences.js';
import { sftLoss } from './sft.js';

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

/** Returns the rounds' statistics (mean score over all n samples, and of the winners as `loss`-free fields). */
export function trainBestOfN(
  policy: Policy,
  reference: Policy,
  scorer: RewardScorer,
  prompts: string[],
  config: Partial<BestOfNConfig> = {},
  options: {
    optimizer?: AdamW;
    helper?: SamplingHelper;
    parallel?: DataParallel;
    onIteration?: (stats: IterationStats & { winnerScore: number }) => void;
  } = {},
): { optimizer: AdamW; history: (IterationStats & { winnerScore: number })[] } {
  const cfg = { ...DEFAULT_BEST_OF_N, ...config };
  const rng = new Rng(cfg.seed);
  const cycle = new PromptCycle(prompts, new Rng(cfg.seed + 1));
  const optimizer = options.optimizer ?? new AdamW({ learningRate: cfg.learningRate, weightDecay: 0 });
  const history: (IterationStats & { winnerScore: number })[] = [];
  for (let it = 0; it < cfg.iterations; it++) {
    const r = collectRollout(
      policy,
      reference,
      scorer,
      cycle.next(cfg.promptsPerIteration),
      cfg,
      rng,
      options.helper,
    );
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
      rng.shuffle(winners);
      for (let i = 0; i < winners.length; i += cfg.batchSize) {
        const batch = packBatch(winners.slice(i, i + cfg.batchSize), policy.model.config.contextLength);
        loss = options.parallel
          ? options.parallel.stepSync(optimizer, batch, 'sft')
          : optimizer.minimize(policy.model.params, () => sftLoss(policy, batch));
      }
    }
    const stats = { ...rolloutStats(it, r, loss), winnerScore: winnerScore / Math.max(1, winners.length) };
    history.push(stats);
    options.onIteration?.(stats);
  }
  return { optimizer, history };
}
