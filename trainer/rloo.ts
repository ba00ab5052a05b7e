// RLOO (Ahmadian et al. 2024): k samples per prompt, each one's baseline is the mean reward of
// the other k−1, the KL to the reference is folded into the reward; the default RL algorithm.
import { gradientStep, type GradientLossRequest } from './gradient-losses.js';
import { klShapedRewards, rlooAdvantages } from './losses.js';
import { AdamW } from './optimizer.js';
import type { Policy } from './policy.js';
import type { RewardScorer } from './preferences.js';
import { Rollouts, type IterationStats, type RolloutConfig } from './rollout.js';
import { DEFAULT_SAMPLING } from './sampling.js';
import { packBatch, rowsToGridData, sum } from './sequences.js';
import { runSteps, type Stepper, type StepperOptions } from './stepper.js';

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

/** RLOO one rollout at a time: each step samples, scores and takes `epochs` optimizer steps. */
export function rlooStepper(
  policy: Policy,
  reference: Policy,
  scorer: RewardScorer,
  prompts: string[],
  config: Partial<RLOOConfig> = {},
  options: StepperOptions = {},
): Stepper<IterationStats> {
  const cfg = { ...DEFAULT_RLOO, ...config };
  const rollouts = new Rollouts(policy, reference, scorer, prompts, cfg, options.helper);
  const optimizer = options.optimizer ?? new AdamW({ learningRate: cfg.learningRate, weightDecay: 0 });
  const step = (): IterationStats => {
    const r = rollouts.next();
    const rewards = klShapedRewards(r.scores, r.logpOld.map(sum), r.logpRef.map(sum), cfg.beta);
    const advantages = rlooAdvantages(rewards, cfg.k);
    const batch = packBatch(r.pairs, policy.model.config.contextLength);
    // One pass: plain REINFORCE. Reusing the rollout: the ratio to π_old clipped as in PPO, with
    // each token carrying its sequence's advantage.
    const loss: GradientLossRequest =
      cfg.epochs === 1
        ? { name: 'reinforce', inputs: { advantages } }
        : {
            name: 'clipped',
            inputs: {
              logpOld: rowsToGridData(r.logpOld, batch),
              advantages: rowsToGridData(
                r.logpOld.map((row, b) => row.map(() => advantages[b] ?? 0)),
                batch,
              ),
              epsilon: cfg.clipEpsilon,
            },
          };
    let value = 0;
    for (let epoch = 0; epoch < cfg.epochs; epoch++)
      value = gradientStep(policy.model, optimizer, batch, loss, options.parallel);
    return rollouts.stats(r, value);
  };
  return {
    optimizer,
    step,
    setBeta: (beta) => {
      cfg.beta = beta;
    },
  };
}

export function trainRLOO(
  policy: Policy,
  reference: Policy,
  scorer: RewardScorer,
  prompts: string[],
  config: Partial<RLOOConfig> = {},
  options: StepperOptions & { onIteration?: (stats: IterationStats) => void } = {},
): { optimizer: AdamW; history: IterationStats[] } {
  const stepper = rlooStepper(policy, reference, scorer, prompts, config, options);
  const iterations = config.iterations ?? DEFAULT_RLOO.iterations;
  return { optimizer: stepper.optimizer, history: runSteps(stepper, iterations, options.onIteration) };
}
