// The GPT's elementwise steps with hand-written gradients (LayerNorm, position embeddings, GELU):
// the same functions as the textbook ones, with fewer and faster kernels on the wasm backend, where
// autodiff's own gradients build large temporaries or call slow kernels. Products are in matmul.ts.
import * as tf from '@tensorflow/tfjs';

/**
 * Σ over rows of t [N, D] as ones[1, N]·t: wasm reduces over the first axis by transposing first,
 * several times slower than this matrix product (the affine gradients of LayerNorm below).
 */
function colSum(t: tf.Tensor, D: number): tf.Tensor {
  return tf.matMul(tf.ones([1, t.size / D]), t.reshape([-1, D])).reshape([D]);
}

/**
 * LayerNorm over the last axis with its affine map, (x − μ)/√(σ² + 1e-5)·g + b, computed as
 * tf.moments would, with the closed-form gradient: autodiff through moments builds a ones tensor
 * the size of x for each mean and many more small ops.
 */
export const layerNorm = tf.customGrad(
  // @ts-expect-error tfjs types customGrad's function as variadic Tensor[], not (x, g, b, save).
  (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const centered = tf.sub(x, tf.mean(x, -1, true));
    const r = tf.rsqrt(tf.add(tf.mean(tf.square(centered), -1, true), 1e-5));
    const normed = tf.mul(centered, r);
    save([normed, r, g]);
    return {
      value: tf.add(tf.mul(normed, g), b),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sn, sr, sg] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        const D = sg.shape[0] ?? 1;
        const dn = tf.mul(dy, sg);
        // dx = r·(dn − mean(dn) − n·mean(dn·n)), the gradient through the normalization.
        const dx = tf.mul(
          tf.sub(tf.sub(dn, tf.mean(dn, -1, true)), tf.mul(sn, tf.mean(tf.mul(dn, sn), -1, true))),
          sr,
        );
        return [dx, colSum(tf.mul(dy, sn), D), colSum(dy, D)];
      },
    };
  },
) as (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor;

/**
 * tok [B·T, D] plus the position embeddings pos [T, D] of every row; the gradient for pos sums
 * over rows as ones[1, B]·dy (wasm's tile gradient slices dy once per row, copying all of it).
 */
// @ts-expect-error tfjs types customGrad's function as variadic Tensor[], not (tok, pos).
export const addPositions = tf.customGrad((tok: tf.Tensor, pos: tf.Tensor) => {
  const [T, D] = pos.shape as [number, number];
  const B = (tok.shape[0] ?? 0) / T;
  return {
    value: tf.add(tok.reshape([B, T, D]), pos).reshape([B * T, D]),
    gradFunc: (dy: tf.Tensor) => [
      tf.clone(dy),
      tf.matMul(tf.ones([1, B]), dy.reshape([B, T * D])).reshape([T, D]),
    ],
  };
}) as (tok: tf.Tensor, pos: tf.Tensor) => tf.Tensor2D;

/**
 * tanh approximation of GELU, as GPT-2 uses: 0.5·x·(1 + tanh(u)) with u = √(2/π)·(x + 0.044715·x³),
 * written as x·σ(2u) (the same function, since 1 + tanh(u) = 2σ(2u)): wasm's tanh is scalar libm,
 * about 13× slower than its vectorized sigmoid. The gradient is written out,
 * σ(2u) + x·σ(2u)·(1 − σ(2u))·2u′: half the elementwise passes of autodiff.
 */
// @ts-expect-error tfjs types customGrad's function as variadic Tensor[], not (x, save).
export const gelu = tf.customGrad((x: tf.Tensor, save: tf.GradSaveFunc) => {
  const x2 = tf.mul(x, x);
  const s = tf.sigmoid(tf.mul(tf.add(x, tf.mul(tf.mul(x2, x), 0.044715)), GELU_C));
  save([x, x2, s]);
  return {
    value: tf.mul(x, s),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sx, sx2, ss] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      const du = tf.add(tf.mul(sx2, 3 * 0.044715 * GELU_C), GELU_C); // (2u)′
      const slope = tf.add(ss, tf.mul(tf.mul(sx, tf.mul(ss, tf.sub(1, ss))), du));
      return [tf.mul(dy, slope)];
    },
  };
}) as (x: tf.Tensor) => tf.Tensor;

/** 2·√(2/π): σ(2u) with the argument scaled once. */
const GELU_C = 2 * Math.sqrt(2 / Math.PI);
