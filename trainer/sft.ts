// Supervised fine-tuning on demonstrations (prompt → response): next-token cross-entropy on the
// response tokens, with a validation loss so the caller can watch for overfitting.
import * as tf from '@tensorflow/tfjs';
import type { DataParallel } from './data-parallel.js';
import { gradientLoss, SFT_LOSS } from './gradient-losses.js';
import { AdamW } from './optimizer.js';
import type { Policy } from './policy.js';
import { Rng } from './runtime.js';
import { packBatch, type PackedBatch, type TokenPair } from './sequences.js';

export interface Demonstration {
  prompt: string;
  response: string;
}

export interface SFTConfig {
  steps: number;
  batchSize: number;
  learningRate: number;
  /** Steps of linear warm-up before the cosine decay. */
  warmupSteps: number;
  /** Validation loss every this many steps (and at the end). */
  evalEvery: number;
  seed: number;
}

export const DEFAULT_SFT: SFTConfig = {
  steps: 500, // a few minutes on two cores at the default model size
  batchSize: 32, // nanoGPT's baby batch
  learningRate: 1e-3, // nanoGPT's rate for baby models
  warmupSteps: 20, // avoids the early Adam blow-up of a fresh model
  evalEvery: 50, // cheap: validation sets are small
  seed: 1, // data order
};

/** Mean negative log-likelihood of the response tokens of a batch. */
function sftLoss(policy: Policy, batch: PackedBatch): tf.Scalar {
  return gradientLoss(policy.model, batch, SFT_LOSS);
}

export function toTokenPairs(policy: Policy, demos: Demonstration[]): TokenPair[] {
  return demos.map((d) => ({
    prompt: policy.tokenizer.encodePrompt(d.prompt),
    response: policy.tokenizer.encodeResponse(d.response),
  }));
}

/** Token-weighted validation loss over all pairs. */
export function validationLoss(policy: Policy, pairs: TokenPair[], chunk = 64): number {
  let total = 0;
  let tokens = 0;
  for (let i = 0; i < pairs.length; i += chunk) {
    const batch = packBatch(pairs.slice(i, i + chunk), policy.model.config.contextLength);
    const n = batch.mask.reduce((a, b) => a + b, 0);
    const loss = sftLoss(policy, batch);
    total += (loss.dataSync()[0] ?? 0) * n;
    tokens += n;
    loss.dispose();
  }
  return tokens > 0 ? total / tokens : NaN;
}

/** Linear warm-up then cosine decay to a tenth of the peak (nanoGPT's schedule). */
export function learningRateAt(step: number, peak: number, warmup: number, total: number): number {
  if (step < warmup) return (peak * (step + 1)) / warmup;
  const progress = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return peak * (0.1 + 0.45 * (1 + Math.cos(Math.PI * progress)));
}

export interface SFTResult {
  optimizer: AdamW;
  trainLosses: number[];
  validation: { step: number; loss: number }[];
}

/**
 * Trains on the demonstrations. With `parallel` (a DataParallel over this policy's model) each
 * batch is split between this thread and worker threads, using both cores.
 */
export async function trainSFT(
  policy: Policy,
  train: Demonstration[],
  validation: Demonstration[],
  config: Partial<SFTConfig> = {},
  options: {
    optimizer?: AdamW;
    parallel?: DataParallel;
    /** After each step; awaited, so a caller can write progress somewhere between steps. */
    onStep?: (step: number, loss: number) => Promise<void> | void;
  } = {},
): Promise<SFTResult> {
  const cfg = { ...DEFAULT_SFT, ...config };
  const rng = new Rng(cfg.seed);
  const optimizer = options.optimizer ?? new AdamW({ learningRate: cfg.learningRate });
  const trainPairs = toTokenPairs(policy, train);
  const valPairs = toTokenPairs(policy, validation);
  const C = policy.model.config.contextLength;
  const result: SFTResult = { optimizer, trainLosses: [], validation: [] };
  let order: number[] = [];
  for (let step = 0; step < cfg.steps; step++) {
    if (order.length < cfg.batchSize) order = order.concat(rng.shuffle(trainPairs.map((_, i) => i)));
    const batch = packBatch(
      order.splice(0, cfg.batchSize).map((i) => trainPairs[i] as TokenPair),
      C,
    );
    optimizer.config.learningRate = learningRateAt(step, cfg.learningRate, cfg.warmupSteps, cfg.steps);
    const loss = options.parallel
      ? await options.parallel.step(optimizer, batch)
      : optimizer.minimize(policy.model.params, () => sftLoss(policy, batch));
    result.trainLosses.push(loss);
    await options.onStep?.(step, loss);
    if (valPairs.length > 0 && ((step + 1) % cfg.evalEvery === 0 || step === cfg.steps - 1)) {
      result.validation.push({ step: step + 1, loss: validationLoss(policy, valPairs) });
    }
  }
  return result;
}
