// The losses a gradient step can run on one thread or split over worker threads (data-parallel.ts):
// a typed map from loss name to what it needs besides the batch and how it is computed, so this
// thread and a worker build the very same loss from the same plain data.
import * as tf from '@tensorflow/tfjs';
import type { DataParallel } from './data-parallel.js';
import { grpoLoss, ppoPolicyLoss, rlooLoss } from './losses.js';
import type { GPT } from './model.js';
import type { AdamW } from './optimizer.js';
import { maskTensor, responseTokenLogProbs, type PackedBatch } from './sequences.js';

/**
 * What each loss needs besides the batch, as plain data a worker can receive: number[] holds one
 * number per row of the batch, Float32Array a [B, T] grid (row-major, as the batch), number a scalar.
 */
export interface GradientLossInputs {
  /** Mean negative log-likelihood of the response tokens (SFT, best-of-n's winners). */
  sft: Record<string, never>;
  /** RLOO's −mean_i A_i·log π(y_i|x). */
  reinforce: { advantages: number[] };
  /** PPO's clipped per-token ratio to π_old (RLOO reusing a rollout). */
  clipped: { logpOld: Float32Array; advantages: Float32Array; epsilon: number };
  /** GRPO's clipped ratio with the group's advantages and the KL₃ penalty. */
  grpo: { advantages: number[]; logpOld: Float32Array; logpRef: Float32Array; epsilon: number; beta: number };
}
export type GradientLossName = keyof GradientLossInputs;

interface GradientLoss<I> {
  /** How the losses of a batch's shards combine into the batch's: averaged over tokens or rows. */
  weighting: 'tokens' | 'rows';
  /** From log π per response token [B, T], its mask [B, T] and the inputs (grid() makes a [B, T] tensor). */
  loss(logp: tf.Tensor2D, mask: tf.Tensor2D, inputs: I, grid: (data: Float32Array) => tf.Tensor2D): tf.Scalar;
}

export const GRADIENT_LOSSES: { [N in GradientLossName]: GradientLoss<GradientLossInputs[N]> } = {
  sft: {
    weighting: 'tokens',
    loss: (logp, mask) => tf.div(tf.neg(tf.sum(logp)), tf.maximum(tf.sum(mask), 1)) as tf.Scalar,
  },
  reinforce: {
    weighting: 'rows',
    loss: (logp, _mask, { advantages }) => rlooLoss(tf.tensor1d(advantages), tf.sum(logp, 1) as tf.Tensor1D),
  },
  clipped: {
    weighting: 'tokens',
    loss: (logp, mask, { logpOld, advantages, epsilon }, grid) =>
      ppoPolicyLoss(logp, grid(logpOld), grid(advantages), mask, epsilon),
  },
  grpo: {
    weighting: 'tokens',
    loss: (logp, mask, { advantages, logpOld, logpRef, epsilon, beta }, grid) =>
      grpoLoss(logp, grid(logpOld), grid(logpRef), tf.tensor1d(advantages), mask, epsilon, beta),
  },
};

/** A loss and its inputs: what a gradient step (or a worker's share of one) computes. */
export type GradientLossRequest = {
  [N in GradientLossName]: { name: N; inputs: GradientLossInputs[N] };
}[GradientLossName];

export const SFT_LOSS: GradientLossRequest = { name: 'sft', inputs: {} };

function lossOf(request: GradientLossRequest): GradientLoss<GradientLossRequest['inputs']> {
  // Indexing the map by a union of names loses the link between a name and its inputs.
  return GRADIENT_LOSSES[request.name] as GradientLoss<GradientLossRequest['inputs']>;
}

export function lossWeighting(request: GradientLossRequest): 'tokens' | 'rows' {
  return lossOf(request).weighting;
}

/** The requested loss of a batch under the model's current weights. */
export function gradientLoss(model: GPT, batch: PackedBatch, request: GradientLossRequest): tf.Scalar {
  return tf.tidy(() => {
    const { logp } = responseTokenLogProbs(model, batch);
    const grid = (data: Float32Array): tf.Tensor2D => tf.tensor2d(data, [batch.batch, batch.length]);
    return lossOf(request).loss(logp, maskTensor(batch), request.inputs, grid);
  });
}

/** The request for rows [start, start + rows) of a batch whose rows are `length` long. */
export function sliceRequest<R extends GradientLossRequest>(
  request: R,
  start: number,
  rows: number,
  length: number,
): R {
  const sliced = Object.entries(request.inputs).map(([key, value]: [string, unknown]) => [
    key,
    value instanceof Float32Array
      ? value.slice(start * length, (start + rows) * length)
      : Array.isArray(value)
        ? value.slice(start, start + rows)
        : value,
  ]);
  return { name: request.name, inputs: Object.fromEntries(sliced) } as R;
}

/**
 * One optimizer step on the requested loss: on this thread, or split between it and the worker
 * threads of `parallel` (the same loss; the token- or row-weighted mean of the shards' gradients).
 * Returns the loss.
 */
export function gradientStep(
  model: GPT,
  optimizer: AdamW,
  batch: PackedBatch,
  request: GradientLossRequest,
  parallel?: DataParallel,
): number {
  return parallel
    ? parallel.stepSync(optimizer, batch, request)
    : optimizer.minimize(model.params, () => gradientLoss(model, batch, request));
}
