// PPO as InstructGPT and TRL run it on language models: per-token KL rewards plus the reward
// model's score on the last token, a value head, GAE, clipped policy and value losses.
import * as tf from '@tensorflow/tfjs';
import { gae, ppoPolicyLoss, ppoTokenRewards, ppoValueLoss, whiten } from './losses.js';
import { ScalarHead } from './model.js';
import { AdamW } from './optimizer.js';
import type { Policy } from './policy.js';
import type { RewardScorer } from './preferences.js';
import { Rollouts, type IterationStats, type RolloutConfig } from './rollout.js';
import { DEFAULT_SAMPLING } from './sampling.js';
import {
  maskedRow,
  maskTensor,
  packBatch,
  responseTokenLogProbs,
  rowsToGrid,
  type PackedBatch,
} from './sequences.js';
import { runSteps, type Stepper, type StepperOptions } from './stepper.js';

export interface PPOConfig extends RolloutConfig {
  iterations: number;
  /** β of the per-token KL reward. */
  klCoef: number;
  /** ε of the ratio clip and of the value clip. */
  clipRange: number;
  /** Weight of the value loss in the summed loss. */
  vfCoef: number;
  gamma: number;
  lambda: number;
  /** Optimization passes over each rollout. */
  epochs: number;
  learningRate: number;
  seed: number;
}

export const DEFAULT_PPO: PPOConfig = {
  iterations: 100, // rollouts
  promptsPerIteration: 32, // prompts per rollout
  k: 1, // PPO needs no group: the value head is the baseline
  klCoef: 0.05, // TRL's kl_coef
  clipRange: 0.2, // TRL's cliprange (and cliprange_value)
  vfCoef: 0.1, // TRL's vf_coef
  gamma: 1, // no discount within a response
  lambda: 0.95, // TRL's lam
  epochs: 4, // TRL's num_ppo_epochs
  learningRate: 1e-4, // RL steps are noisy: ten times below SFT
  sampling: DEFAULT_SAMPLING, // temperature 1, no top-k
  missingEndPenalty: 0, // off
  seed: 1, // prompts and samples
};

/** PPO's stepper also carries its value head from one step to the next (and between rounds' calls). */
export type PPOStepper = Stepper<IterationStats> & { readonly valueHead: ScalarHead };

/**
 * PPO one rollout at a time. The value head sits on the policy's own trunk (one network, as in
 * the original lm-human-preferences code at this scale) rather than on a second copy of the
 * model: half the memory and compute; vfCoef keeps the value loss from dominating the shared
 * weights. Its steps run on this thread (the workers compute the policy-only losses).
 */
export function ppoStepper(
  policy: Policy,
  reference: Policy,
  scorer: RewardScorer,
  prompts: string[],
  config: Partial<PPOConfig> = {},
  options: Omit<StepperOptions, 'parallel'> & { valueHead?: ScalarHead } = {},
): PPOStepper {
  const cfg = { ...DEFAULT_PPO, ...config };
  const rollouts = new Rollouts(policy, reference, scorer, prompts, cfg, options.helper);
  const optimizer = options.optimizer ?? new AdamW({ learningRate: cfg.learningRate, weightDecay: 0 });
  const valueHead =
    options.valueHead ?? new ScalarHead(policy.model.config.nEmbd, cfg.seed + 7, 'value-head');
  const params = new Map<string, tf.Variable>(policy.model.params);
  for (const [n, v] of valueHead.params) params.set(`value/${n}`, v);
  const step = (): IterationStats => {
    const r = rollouts.next();
    const batch = packBatch(r.pairs, policy.model.config.contextLength);
    const valuesOld = valueRows(policy, valueHead, batch);
    const advantages: number[][] = [];
    const returns: number[][] = [];
    r.scores.forEach((score, i) => {
      const rewards = ppoTokenRewards(score, r.logpOld[i] ?? [], r.logpRef[i] ?? [], cfg.klCoef);
      const g = gae(rewards, valuesOld[i] ?? [], cfg.gamma, cfg.lambda);
      advantages.push(g.advantages);
      returns.push(g.returns);
    });
    // Whitening over all tokens of the batch, as TRL does, keeps the step size independent of R's scale.
    const flat = whiten(advantages.flat());
    let offset = 0;
    const whitened = advantages.map((row) => row.map(() => flat[offset++] ?? 0));
    let loss = 0;
    for (let epoch = 0; epoch < cfg.epochs; epoch++) {
      loss = optimizer.minimize(params, () =>
        tf.tidy(() => {
          const { logp, hidden } = responseTokenLogProbs(policy.model, batch);
          const mask = maskTensor(batch);
          const values = valueHead.apply(hidden, batch.batch, batch.length);
          const policyLoss = ppoPolicyLoss(
            logp,
            rowsToGrid(r.logpOld, batch),
            rowsToGrid(whitened, batch),
            mask,
            cfg.clipRange,
          );
          const valueLoss = ppoValueLoss(
            values,
            rowsToGrid(valuesOld, batch),
            rowsToGrid(returns, batch),
            mask,
            cfg.clipRange,
          );
          return tf.add(policyLoss, tf.mul(cfg.vfCoef, valueLoss)) as tf.Scalar;
        }),
      );
    }
    return rollouts.stats(r, loss);
  };
  return {
    optimizer,
    valueHead,
    step,
    setBeta: (beta) => {
      cfg.klCoef = beta;
    },
  };
}

export function trainPPO(
  policy: Policy,
  reference: Policy,
  scorer: RewardScorer,
  prompts: string[],
  config: Partial<PPOConfig> = {},
  options: Omit<StepperOptions, 'parallel'> & {
    valueHead?: ScalarHead;
    onIteration?: (stats: IterationStats) => void;
  } = {},
): { optimizer: AdamW; valueHead: ScalarHead; history: IterationStats[] } {
  const stepper = ppoStepper(policy, reference, scorer, prompts, config, options);
  const iterations = config.iterations ?? DEFAULT_PPO.iterations;
  const history = runSteps(stepper, iterations, options.onIteration);
  return { optimizer: stepper.optimizer, valueHead: stepper.valueHead, history };
}

/** V at each response token's position (the state before the token is emitted), no gradient. */
function valueRows(policy: Policy, head: ScalarHead, batch: PackedBatch): number[][] {
  const values = tf.tidy(() => {
    const { hidden } = responseTokenLogProbs(policy.model, batch);
    return head.apply(hidden, batch.batch, batch.length);
  });
  const data = values.dataSync() as Float32Array;
  values.dispose();
  return Array.from({ length: batch.batch }, (_, b) => maskedRow(data, batch, b));
}
