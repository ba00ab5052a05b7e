// RLOO (Ahmadian et al. 2024): k samples per prompt, each one's baseline is the mean reward of
// the other k−1, the KL to the reference is folded into the reward; the default RL algorithm.
import * as tf from '@tensorflow/tfjs';
import type { DataParallel } from './data-parallel.js';
import { klShapedRewards, ppoPolicyLoss, rlooAdvantages, rlooLoss } from './losses.js';
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
import {
  maskTensor,
  packBatch,
  responseTokenLogProbs,
  rowsToGrid,
  rowsToGridData,
  sum,
  type PackedBatch,
} from './sequences.js';

export interface RLOOConfig extends RolloutConfig {
  iterations: number;
  /** β of the KL penalty folded into the reward. */
  beta: number;
  learningRate: number;
  /** Optimization passes over each rollout; above 1 the ratio is clipped to 1±clipEpsilon. */
  epochs: number;
  clipEpsilon: number;
  seed: number;
}

export const DEFAULT_RLOO: RLOOConfig = {
  iterations: 100, // rollouts; each is one optimizer step per epoch
  promptsPerIteration: 16, // prompts per rollout
  k: 4, // samples per prompt (TRL's default is 2; 4 gives a lower-variance baseline)
  beta: 0.05, // TRL's KL coefficient
  learningRate: 1e-4, // RL steps are noisy: ten times below SFT
  epochs: 1, // plain RLOO: one REINFORCE step per rollout, no ratio needed
  clipEpsilon: 0.2, // TRL's clip when samples are reused (epochs > 1)
  sampling: DEFAULT_SAMPLING, // temperature 1, no top-k: the policy's own distribution
  missingEndPenalty: 0, // TRL's default (off)
  seed: 1, // prompts and samples
};

export function trainRLOO(
  policy: Policy,
  reference: Policy,
  scorer: RewardScorer,
  prompts: string[],
  config: Partial<RLOOConfig> = {},
  options: {
    optimizer?: AdamW;
    helper?: SamplingHelper;
    parallel?: DataParallel;
    onIteration?: (stats: IterationStats) => void;
  } = {},
): { optimizer: AdamW; history: IterationStats[] } {
  const cfg = { ...DEFAULT_RLOO, ...config };
  const rng = new Rng(cfg.seed);
  const cycle = new PromptCycle(prompts, new Rng(cfg.seed + 1));
  const optimizer = options.optimizer ?? new AdamW({ learningRate: cfg.learningRate, weightDecay: 0 });
  const history: IterationStats[] = [];
  const C = policy.model.config.contextLength;
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
    const rewards = klShapedRewards(r.scores, r.logpOld.map(sum), r.logpRef.map(sum), cfg.beta);
    const advantages = rlooAdvantages(rewards, cfg.k);
    const batch = packBatch(r.pairs, C);
    let loss = 0;
    for (let epoch = 0; epoch < cfg.epochs; epoch++) {
      const parallel = options.parallel;
      if (parallel && cfg.epochs === 1)
        loss = parallel.stepSync(optimizer, batch, 'reinforce', { rows: advantages });
      else if (parallel) {
        const perToken = r.logpOld.map((row, b) => row.map(() => advantages[b] ?? 0));
        loss = parallel.stepSync(optimizer, batch, 'clipped', {
          grids: { logpOld: rowsToGridData(r.logpOld, batch), advantages: rowsToGridData(perToken, batch) },
          params: { epsilon: cfg.clipEpsilon },
        });
      } else {
        loss = optimizer.minimize(policy.model.params, () =>
          cfg.epochs === 1
            ? reinforceLoss(policy, batch, advantages)
            : clippedLoss(policy, batch, advantages, r.logpOld, cfg),
        );
      }
    }
    const stats = rolloutStats(it, r, loss);
    history.push(stats);
    options.onIteration?.(stats);
  }
  return { optimizer, history };
}

/** L = −(1/k)·Σ_i A_i·log π(y_i|x), averaged over prompts. */
function reinforceLoss(policy: Policy, batch: PackedBatch, advantages: number[]): tf.Scalar {
  return tf.tidy(() =>
    rlooLoss(tf.tensor1d(advantages), tf.sum(responseTokenLogProbs(policy.model, batch).logp, 1)),
  );
}

/** Reusing a rollout: per-token ratio to π_old clipped as in PPO, with the sequence's advantage. */
function clippedLoss(
  policy: Policy,
  batch: PackedBatch,
  advantages: number[],
  logpOld: number[][],
  cfg: RLOOConfig,
): tf.Scalar {
  return tf.tidy(() => {
    const perToken = logpOld.map((row, i) => row.map(() => advantages[i] ?? 0));
    const { logp } = responseTokenLogProbs(policy.model, batch);
    return ppoPolicyLoss(
      logp,
      rowsToGrid(logpOld, batch),
      rowsToGrid(perToken, batch),
      maskTensor(batch),
      cfg.clipEpsilon,
    );
  });
}
