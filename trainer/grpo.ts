// GRPO (DeepSeekMath): a group of k samples per prompt, advantages standardized within the
// group, a PPO-style clipped per-token ratio and the KL₃ penalty to the reference in the loss.
import * as tf from '@tensorflow/tfjs';
import type { DataParallel } from './data-parallel.js';
import { grpoAdvantages, grpoLoss } from './losses.js';
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
import { maskTensor, packBatch, responseTokenLogProbs, rowsToGrid, rowsToGridData } from './sequences.js';

export interface GRPOConfig extends RolloutConfig {
  iterations: number;
  /** β of the KL₃ term in the loss. */
  beta: number;
  /** ε of the ratio clip. */
  clipEpsilon: number;
  /** Optimizer steps per rollout (TRL's num_iterations). */
  epochs: number;
  learningRate: number;
  seed: number;
}

export const DEFAULT_GRPO: GRPOConfig = {
  iterations: 100, // rollouts
  promptsPerIteration: 8, // prompts per rollout; 8 × 8 = 64 samples
  k: 8, // TRL's num_generations
  beta: 0.001, // DeepSeek-R1's value; TRL's default 0 would leave no tie to the reference
  clipEpsilon: 0.2, // TRL's default
  epochs: 1, // TRL's default: π_old = π, the ratio is 1 but its gradient is not
  learningRate: 1e-4, // RL steps are noisy: ten times below SFT
  sampling: DEFAULT_SAMPLING, // temperature 1, no top-k
  missingEndPenalty: 0, // off
  seed: 1, // prompts and samples
};

export function trainGRPO(
  policy: Policy,
  reference: Policy,
  scorer: RewardScorer,
  prompts: string[],
  config: Partial<GRPOConfig> = {},
  options: {
    optimizer?: AdamW;
    helper?: SamplingHelper;
    parallel?: DataParallel;
    onIteration?: (stats: IterationStats) => void;
  } = {},
): { optimizer: AdamW; history: IterationStats[] } {
  const cfg = { ...DEFAULT_GRPO, ...config };
  const rng = new Rng(cfg.seed);
  const cycle = new PromptCycle(prompts, new Rng(cfg.seed + 1));
  const optimizer = options.optimizer ?? new AdamW({ learningRate: cfg.learningRate, weightDecay: 0 });
  const history: IterationStats[] = [];
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
    const advantages = grpoAdvantages(r.scores, cfg.k);
    const batch = packBatch(r.pairs, policy.model.config.contextLength);
    let loss = 0;
    for (let epoch = 0; epoch < cfg.epochs; epoch++) {
      loss = options.parallel
        ? options.parallel.stepSync(optimizer, batch, 'grpo', {
            rows: advantages,
            grids: { logpOld: rowsToGridData(r.logpOld, batch), logpRef: rowsToGridData(r.logpRef, batch) },
            params: { epsilon: cfg.clipEpsilon, beta: cfg.beta },
          })
        : optimizer.minimize(policy.model.params, () =>
            tf.tidy(() =>
              grpoLoss(
                responseTokenLogProbs(policy.model, batch).logp,
                rowsToGrid(r.logpOld, batch),
                rowsToGrid(r.logpRef, batch),
                tf.tensor1d(advantages),
                maskTensor(batch),
                cfg.clipEpsilon,
                cfg.beta,
              ),
            ),
          );
    }
    const stats = rolloutStats(it, r, loss);
    history.push(stats);
    options.onIteration?.(stats);
  }
  return { optimizer, history };
}
