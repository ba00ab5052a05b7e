// DPO (Rafailov et al. 2023): the policy learns from the preferences directly, no reward model
// and no sampling; the frozen reference's log-probs are computed once up front.
import * as tf from '@tensorflow/tfjs';
import { dpoLoss } from './losses.js';
import { AdamW } from './optimizer.js';
import type { Policy } from './policy.js';
import {
  batchesByPrompt,
  toPreferencePairs,
  type ComparisonExample,
  type PreferencePair,
} from './preferences.js';
import { Rng } from './runtime.js';
import { packBatch, sequenceLogProbs, sum, tokenLogProbRows, type TokenPair } from './sequences.js';
import { runSteps, type Stepper } from './stepper.js';

export interface DPOConfig {
  epochs: number;
  /** Preference pairs per step (a prompt's pairs stay together). */
  batchSize: number;
  /** β: strength of the implicit KL constraint. */
  beta: number;
  learningRate: number;
  seed: number;
}

export const DEFAULT_DPO: DPOConfig = {
  epochs: 1, // DPO overfits quickly beyond one epoch
  batchSize: 16, // pairs per step (32 sequences)
  beta: 0.1, // TRL's default
  learningRate: 1e-4, // below SFT: the policy starts from SFT weights
  seed: 1, // batch order
};

export interface DPOStep {
  step: number;
  loss: number;
  /** Share of the batch whose implicit reward β(log π − log π_ref) prefers the chosen side. */
  rewardAccuracy: number;
}

/**
 * DPO one epoch at a time (its iteration: a shuffled pass over the preference pairs, batched by
 * prompt). TIE and BOTH_BAD judgments carry no direction and are skipped, as in the reward model.
 */
export function dpoStepper(
  policy: Policy,
  reference: Policy,
  comparisons: ComparisonExample[],
  config: Partial<DPOConfig> = {},
  options: { optimizer?: AdamW; onStep?: (s: DPOStep, total: number) => void } = {},
): Stepper<DPOStep[]> & { readonly batchesPerEpoch: number } {
  const cfg = { ...DEFAULT_DPO, ...config };
  const rng = new Rng(cfg.seed);
  const optimizer = options.optimizer ?? new AdamW({ learningRate: cfg.learningRate, weightDecay: 0 });
  const C = policy.model.config.contextLength;
  const { pairs } = toPreferencePairs(comparisons, null);
  const tokens = (p: PreferencePair): [TokenPair, TokenPair] => {
    const prompt = policy.tokenizer.encodePrompt(p.prompt);
    return [
      { prompt, response: policy.tokenizer.encodeResponse(p.chosen) },
      { prompt, response: policy.tokenizer.encodeResponse(p.rejected) },
    ];
  };
  // π_ref never changes: one pass, kept as numbers.
  const refRows = tokenLogProbRows(reference.model, pairs.flatMap(tokens), C);
  const indexed = pairs.map((p, i) => ({
    ...p,
    refChosen: sum(refRows[2 * i] ?? []),
    refRejected: sum(refRows[2 * i + 1] ?? []),
  }));
  const batchesPerEpoch = batchesByPrompt(indexed, cfg.batchSize, new Rng(cfg.seed)).length;
  const total = cfg.epochs * batchesPerEpoch;
  let steps = 0;
  const step = (): DPOStep[] => {
    const epoch: DPOStep[] = [];
    for (const group of batchesByPrompt(indexed, cfg.batchSize, rng)) {
      const batch = packBatch(group.flatMap(tokens), C);
      let accuracy = 0;
      const loss = optimizer.minimize(policy.model.params, () =>
        tf.tidy(() => {
          const logp = sequenceLogProbs(policy.model, batch).reshape([group.length, 2]);
          const [chosen, rejected] = tf.unstack(logp, 1) as [tf.Tensor1D, tf.Tensor1D];
          const refChosen = tf.tensor1d(group.map((g) => g.refChosen));
          const refRejected = tf.tensor1d(group.map((g) => g.refRejected));
          const margin = tf.sub(tf.sub(chosen, refChosen), tf.sub(rejected, refRejected));
          accuracy = tf.mean(tf.cast(tf.greater(margin, 0), 'float32')).dataSync()[0] ?? 0;
          return dpoLoss(chosen, rejected, refChosen, refRejected, cfg.beta);
        }),
      );
      const s = { step: ++steps, loss, rewardAccuracy: accuracy };
      epoch.push(s);
      options.onStep?.(s, total);
    }
    return epoch;
  };
  return { optimizer, batchesPerEpoch, step };
}

export function trainDPO(
  policy: Policy,
  reference: Policy,
  comparisons: ComparisonExample[],
  config: Partial<DPOConfig> = {},
  options: { optimizer?: AdamW; onStep?: (s: DPOStep, total: number) => void } = {},
): { optimizer: AdamW; history: DPOStep[] } {
  const stepper = dpoStepper(policy, reference, comparisons, config, options);
  const epochs = runSteps(stepper, config.epochs ?? DEFAULT_DPO.epochs);
  return { optimizer: stepper.optimizer, history: epochs.flat() };
}
