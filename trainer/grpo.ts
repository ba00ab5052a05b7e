// GRPO (DeepSeekMath): a group of k samples per prompt, advantages standardized within the
// group, a PPO-style clipped per-token ratio and the KL₃ penalty to the reference in the loss.
import { gradientStep } from './gradient-losses.js';
import { grpoAdvantages } from './losses.js';
import { AdamW } from './optimizer.js';
import type { Policy } from './policy.js';
import type { RewardScorer } from './preferences.js';
import { Rollouts, type IterationStats, type RolloutConfig } from './rollout.js';
import { DEFAULT_SAMPLING } from './sampling.js';
import { packBatch, rowsToGridData } from './sequences.js';
import { runSteps, type Stepper, type StepperOptions } from './stepper.js';

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

/** GRPO one rollout at a time: each step samples a group per prompt and takes `epochs` optimizer steps. */
export function grpoStepper(
  policy: Policy,
  reference: Policy,
  scorer: RewardScorer,
  prompts: string[],
  config: Partial<GRPOConfig> = {},
  options: StepperOptions = {},
): Stepper<IterationStats> {
  const cfg = { ...DEFAULT_GRPO, ...config };
  const rollouts = new Rollouts(policy, reference, scorer, prompts, cfg, options.helper);
  const optimizer = options.optimizer ?? new AdamW({ learningRate: cfg.learningRate, weightDecay: 0 });
  const step = (): IterationStats => {
    const r = rollouts.next();
    const batch = packBatch(r.pairs, policy.model.config.contextLength);
    const inputs = {
      advantages: grpoAdvantages(r.scores, cfg.k),
      logpOld: rowsToGridData(r.logpOld, batch),
      logpRef: rowsToGridData(r.logpRef, batch),
      epsilon: cfg.clipEpsilon,
      beta: cfg.beta,
    };
    let loss = 0;
    for (let epoch = 0; epoch < cfg.epochs; epoch++)
      loss = gradientStep(policy.model, optimizer, batch, { name: 'grpo', inputs }, options.parallel);
    return rollouts.stats(r, loss);
  };
  return {
    optimizer,
    step,
    setBeta: (beta) => {
      cfg.beta = beta;
    },
  };
}

export function trainGRPO(
  policy: Policy,
  reference: Policy,
  scorer: RewardScorer,
  prompts: string[],
  config: Partial<GRPOConfig> = {},
  options: StepperOptions & { onIteration?: (stats: IterationStats) => void } = {},
): { optimizer: AdamW; history: IterationStats[] } {
  const stepper = grpoStepper(policy, reference, scorer, prompts, config, options);
  const iterations = config.iterations ?? DEFAULT_GRPO.iterations;
  return { optimizer: stepper.optimizer, history: runSteps(stepper, iterations, options.onIteration) };
}
