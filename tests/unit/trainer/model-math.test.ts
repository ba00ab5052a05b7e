// The GPT's fast formulation (per-matrix attention products, closed-form LayerNorm and GELU
// gradients, broadcast position embeddings) computes the textbook GPT written with plain tfjs ops
// and autodiff: same log-probabilities, same gradients, at a size where every fast path runs.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { GPT } from '../../../trainer/model.js';
import { initBackend, Rng } from '../../../trainer/runtime.js';

beforeAll(async () => {
  await initBackend();
});

/** GPT-2 written plainly: moments, tanh GELU, batched tf.matMul, tiled positions. */
function reference(model: GPT, ids: tf.Tensor2D): tf.Tensor2D {
  const { nLayer: L, nHead: H, nEmbd: D, vocabSize: V } = model.config;
  const [B, T] = ids.shape;
  const p = (n: string): tf.Tensor => model.p(n);
  const norm = (x: tf.Tensor, n: string): tf.Tensor => {
    const { mean, variance } = tf.moments(x, -1, true);
    const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5)));
    return tf.add(tf.mul(normed, p(`${n}.g`)), p(`${n}.b`));
  };
  const heads = (x: tf.Tensor): tf.Tensor => tf.transpose(tf.reshape(x, [B, T, H, D / H]), [0, 2, 1, 3]);
  const mask = tf.tensor2d(
    Array.from({ length: T * T }, (_, i) => (i % T > Math.floor(i / T) ? -1e9 : 0)),
    [T, T],
  );
  let x = tf.add(
    tf.matMul(tf.oneHot(ids.reshape([B * T]), V).toFloat(), p('wte')),
    tf.tile(tf.slice(p('wpe'), [0, 0], [T, -1]), [B, 1]),
  );
  for (let l = 0; l < L; l++) {
    const h = norm(x, `h${l}.ln1`);
    const [q, k, v] = ['wq', 'wk', 'wv'].map((w) => heads(tf.matMul(h, p(`h${l}.attn.${w}`))));
    const scores = tf.add(
      tf.mul(tf.matMul(q as tf.Tensor, k as tf.Tensor, false, true), 1 / Math.sqrt(D / H)),
      mask,
    );
    const out = tf.reshape(tf.transpose(tf.matMul(tf.softmax(scores), v as tf.Tensor), [0, 2, 1, 3]), [
      B * T,
      D,
    ]);
    x = tf.add(x, tf.matMul(out, p(`h${l}.attn.wo`)));
    const m = tf.matMul(norm(x, `h${l}.ln2`), p(`h${l}.mlp.w1`));
    const inner = tf.mul(tf.add(m, tf.mul(tf.mul(tf.mul(m, m), m), 0.044715)), Math.sqrt(2 / Math.PI));
    const gelu = tf.mul(tf.mul(m, 0.5), tf.add(tf.tanh(inner), 1));
    x = tf.add(x, tf.matMul(gelu, p(`h${l}.mlp.w2`)));
  }
  return tf.logSoftmax(tf.matMul(norm(x, 'lnf'), p('wte'), false, true)) as tf.Tensor2D;
}

describe('the fast GPT', () => {
  it('gives the textbook log-probabilities and gradients', () => {
    // T·(D/H)·T ≥ 8192 multiply-adds per attention matrix: the per-matrix XNNPACK path on wasm.
    const model = new GPT({ vocabSize: 20, contextLength: 48, nLayer: 2, nHead: 2, nEmbd: 32, seed: 5 });
    const rng = new Rng(2);
    const B = 3;
    const T = 48;
    const ids = tf.tensor2d(
      Int32Array.from({ length: B * T }, () => rng.int(20)),
      [B, T],
      'int32',
    );
    const weights = tf.tensor2d(
      Float32Array.from({ length: B * T * 20 }, () => rng.normal()),
      [B * T, 20],
    );
    const vars = [...model.params.values()];
    const loss = (f: () => tf.Tensor2D) => (): tf.Scalar => tf.sum(tf.mul(f(), weights));
    const fast = tf.variableGrads(
      loss(() => tf.logSoftmax(model.logits(model.hidden(ids)))),
      vars,
    );
    const slow = tf.variableGrads(
      loss(() => reference(model, ids)),
      vars,
    );
    const [a, b] = [fast.value.dataSync()[0] ?? NaN, slow.value.dataSync()[0] ?? NaN];
    expect(Math.abs(a - b)).toBeLessThan(1e-5 * Math.abs(b));
    for (const v of vars) {
      const [g, h] = [fast.grads[v.name], slow.grads[v.name]] as [tf.Tensor, tf.Tensor];
      const scale = tf.max(tf.abs(h)).dataSync()[0] ?? 0;
      const diff = tf.max(tf.abs(tf.sub(g, h))).dataSync()[0] ?? NaN;
      expect(diff, v.name).toBeLessThan(1e-4 * scale + 1e-7);
    }
    tf.dispose([
      ids,
      weights,
      fast.value,
      slow.value,
      ...Object.values(fast.grads),
      ...Object.values(slow.grads),
    ]);
    model.dispose();
  });
});
