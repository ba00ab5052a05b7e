// Matrix products and transposes that stay on the fast paths of the wasm backend.
//
// Measured on wasm (tfjs 4.22): a 2-D product [1, M, K]·[1, K, P] runs in XNNPACK, but any product
// with a batch (Q·Kᵀ and P·V of attention) or a transpose flag runs a scalar triple loop, 6-7×
// slower; and a plain 2-D transpose of a tall matrix writes with a large power-of-two stride, up to
// 10× slower than transposing it in blocks. bmm() runs a batch as one XNNPACK product per matrix
// (the LoomBatchMatMul kernel of wasm-kernels.ts); swapLast() transposes big matrices in blocks.
import * as tf from '@tensorflow/tfjs';
import { BATCH_MATMUL } from './wasm-kernels.js';

/**
 * Matrix product whose gradient never asks the wasm kernel to transpose an operand: wasm's
 * BatchMatMul with transposeA/transposeB runs 5-10× slower than on a transposed copy, and
 * tf.matMul's own gradient uses exactly those flags (dW = xᵀ·dy).
 */
// @ts-expect-error tfjs types customGrad's function as variadic Tensor[], not (a, b, save).
const mmOp = tf.customGrad((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor, tf.Tensor];
      return [tf.matMul(dy, swapLast(sb)), tf.matMul(swapLast(sa), dy)];
    },
  };
});

export function mm<T extends tf.Tensor>(a: T, b: tf.Tensor): T {
  return mmOp(a, b) as T;
}

/** Swaps the last two axes (a matrix transpose, batched). */
export function swapLast(x: tf.Tensor): tf.Tensor {
  const n = x.rank;
  if (n === 2) return transpose2d(x as tf.Tensor2D);
  const perm = x.shape.map((_, i) => i);
  [perm[n - 2], perm[n - 1]] = [n - 1, n - 2];
  return tf.transpose(x, perm);
}

const BLOCK = 16;

/**
 * xᵀ for x [R, C]. Big ones go in two cheap steps: [R/16, 16, C] → [R/16, C, 16] (small transposes
 * whose writes stay close together), then the 16-wide strips move whole to their place.
 */
function transpose2d(x: tf.Tensor2D): tf.Tensor2D {
  const [R, C] = x.shape;
  if (R % BLOCK !== 0 || R <= BLOCK || R * C < 16384) return tf.transpose(x);
  return tf.tidy(() =>
    tf.transpose(tf.transpose(tf.reshape(x, [R / BLOCK, BLOCK, C]), [0, 2, 1]), [1, 0, 2]).reshape([C, R]),
  );
}

/**
 * a·b for a [..., M, K] and b [..., K, P] with the same leading axes (e.g. attention's
 * [B, H, T, hd]). On wasm, when each matrix product is big enough to repay a call into XNNPACK,
 * it runs as one such call per matrix; otherwise (and on other backends) as mm().
 */
export function bmm<T extends tf.Tensor>(a: T, b: tf.Tensor): T {
  const [M, K] = a.shape.slice(-2) as [number, number];
  const P = b.shape[b.rank - 1] ?? 0;
  const sameBatch =
    a.rank >= 3 && a.rank === b.rank && a.shape.slice(0, -2).every((d, i) => d === b.shape[i]);
  if (sameBatch && M * K * P >= MIN_MACS && tf.getBackend() === 'wasm' && tf.getKernel(BATCH_MATMUL, 'wasm'))
    return tf.engine().runKernel(BATCH_MATMUL, { a, b }, {}) as T;
  return mm(a, b);
}

/**
 * Multiply-adds per matrix from which one XNNPACK call per matrix beats the scalar batched loop
 * (a call costs a few microseconds; decoding one token, M = 1, stays on the loop).
 */
const MIN_MACS = 8192;

tf.registerGradient({
  kernelName: BATCH_MATMUL,
  inputsToSave: ['a', 'b'],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
    const [a, b] = saved as [tf.Tensor, tf.Tensor];
    const d = dy as tf.Tensor;
    return { a: () => bmm(d, swapLast(b)), b: () => bmm(swapLast(a), d) };
  },
});
