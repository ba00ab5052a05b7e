// Lays prompt/response token lists out as training tensors and computes log π(y|x) summed over
// response tokens only; every algorithm goes through these so the masking is written once.
import * as tf from '@tensorflow/tfjs';
import type { GPT } from './model.js';
import { tokenLogProbs } from './losses.js';
import { PAD } from './tokenizer.js';

export interface TokenPair {
  prompt: number[];
  response: number[];
}

/** Plain arrays (not tensors), so a batch can cross a worker boundary and never leaks. */
export interface PackedBatch {
  batch: number;
  length: number;
  /** [B, T] token ids fed to the model: the sequence without its last token. */
  input: Int32Array;
  /** [B, T] the next token at each position. */
  target: Int32Array;
  /** [B, T] 1 where the target is a response token (prompt and padding masked out). */
  mask: Float32Array;
  /** Index into [0, T) of the last real target, where a reward model or value head reads. */
  last: Int32Array;
  /** Response tokens kept per row, after truncation to the context. */
  responseLengths: number[];
}

/**
 * Right-pads [prompt; response] pairs to the longest one. Too long for the context: the prompt
 * loses its oldest tokens first, then the response its tail.
 */
export function packBatch(pairs: TokenPair[], contextLength: number): PackedBatch {
  const seqs = pairs.map(({ prompt, response }) => {
    const resp = response.slice(0, contextLength);
    const keep = Math.max(1, contextLength + 1 - resp.length);
    const p = prompt.slice(-keep);
    return { seq: [...p, ...resp].slice(0, contextLength + 1), promptLength: p.length };
  });
  const B = pairs.length;
  const T = Math.max(1, ...seqs.map((s) => s.seq.length - 1));
  const input = new Int32Array(B * T).fill(PAD);
  const target = new Int32Array(B * T).fill(PAD);
  const mask = new Float32Array(B * T);
  const last = new Int32Array(B);
  const responseLengths: number[] = [];
  seqs.forEach(({ seq, promptLength }, b) => {
    for (let t = 0; t < seq.length - 1; t++) {
      input[b * T + t] = seq[t] ?? PAD;
      target[b * T + t] = seq[t + 1] ?? PAD;
      if (t >= promptLength - 1) mask[b * T + t] = 1;
    }
    last[b] = Math.max(0, seq.length - 2);
    responseLengths.push(seq.length - promptLength);
  });
  return { batch: B, length: T, input, target, mask, last, responseLengths };
}

/**
 * Packs [prompt; response] so that the model's input ends on the response's own last token
 * (`<end>`): a reward model or value head reads its hidden state there (index `last`).
 */
export function packForScoring(pairs: TokenPair[], contextLength: number): PackedBatch {
  return packBatch(
    pairs.map(({ prompt, response }) => ({
      prompt,
      response: [...response.slice(0, contextLength - 1), PAD],
    })),
    contextLength,
  );
}

export function inputTensor(b: PackedBatch): tf.Tensor2D {
  return tf.tensor2d(b.input, [b.batch, b.length], 'int32');
}
export function maskTensor(b: PackedBatch): tf.Tensor2D {
  return tf.tensor2d(b.mask, [b.batch, b.length]);
}
/** One-hot of the last real position, [B, T]: picks a per-position value without gather. */
export function lastTensor(b: PackedBatch): tf.Tensor2D {
  return tf.oneHot(tf.tensor1d(b.last, 'int32'), b.length).toFloat() as tf.Tensor2D;
}

/** Per-token log π(target) with prompt and padding set to 0, [B, T]; plus the hidden states. */
export function responseTokenLogProbs(
  model: GPT,
  b: PackedBatch,
): { logp: tf.Tensor2D; hidden: tf.Tensor2D } {
  return tf.tidy(() => {
    const hidden = model.hidden(inputTensor(b));
    const lp = tokenLogProbs(model.logits(hidden), tf.tensor1d(b.target, 'int32')).reshape([
      b.batch,
      b.length,
    ]);
    return { logp: tf.mul(lp, maskTensor(b)) as tf.Tensor2D, hidden };
  });
}

/** log π(y|x) summed over the response tokens, [B]. */
export function sequenceLogProbs(model: GPT, b: PackedBatch): tf.Tensor1D {
  return tf.tidy(() => tf.sum(responseTokenLogProbs(model, b).logp, 1) as tf.Tensor1D);
}

/** Per-token response log-probs as nested arrays (no gradient), in chunks to bound memory. */
export function tokenLogProbRows(
  model: GPT,
  pairs: TokenPair[],
  contextLength: number,
  chunk = 32,
): number[][] {
  const rows: number[][] = [];
  for (let i = 0; i < pairs.length; i += chunk) {
    const b = packBatch(pairs.slice(i, i + chunk), contextLength);
    const logp = tf.tidy(() => responseTokenLogProbs(model, b).logp);
    const data = logp.dataSync() as Float32Array;
    logp.dispose();
    for (let r = 0; r < b.batch; r++) rows.push(maskedRow(data, b, r));
  }
  return rows;
}

/** The response positions of row r of a [B, T] array. */
export function maskedRow(data: Float32Array, b: PackedBatch, r: number): number[] {
  const out: number[] = [];
  for (let t = 0; t < b.length; t++)
    if (b.mask[r * b.length + t] === 1) out.push(data[r * b.length + t] ?? 0);
  return out;
}

/** Inverse of maskedRow: per-row response values laid back onto the [B, T] grid of a batch. */
export function rowsToGridData(rows: number[][], b: PackedBatch): Float32Array {
  const grid = new Float32Array(b.batch * b.length);
  for (let r = 0; r < b.batch; r++) {
    let j = 0;
    for (let t = 0; t < b.length; t++)
      if (b.mask[r * b.length + t] === 1) grid[r * b.length + t] = rows[r]?.[j++] ?? 0;
  }
  return grid;
}

export function rowsToGrid(rows: number[][], b: PackedBatch): tf.Tensor2D {
  return tf.tensor2d(rowsToGridData(rows, b), [b.batch, b.length]);
}

export function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
