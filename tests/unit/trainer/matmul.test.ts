// The products and transposes behind the GPT: bmm (one XNNPACK product per matrix on wasm) and the
// blocked transpose give what tf.matMul and tf.transpose give, values and gradients alike.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { bmm, swapLast } from '../../../trainer/matmul.js';
import { initBackend, Rng } from '../../../trainer/runtime.js';

// Known before the tests are collected, so the wasm-only test can report itself as skipped.
const backend = await initBackend();

function random(shape: number[], seed: number): tf.Tensor {
  const rng = new Rng(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: size }, () => rng.normal()),
    shape,
  );
}

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] ?? NaN);
}

describe('bmm', () => {
  it('equals tf.matMul on batches, in value and gradient', () => {
    // [B, H, T, hd]-shaped operands as in attention, big enough for the per-matrix path.
    for (const [lead, M, K, P] of [
      [[3, 2], 40, 32, 24],
      [[5], 64, 64, 32],
      [[2, 2], 1, 8, 16], // one row (decoding): the batched loop
    ] as const) {
      const a = random([...lead, M, K], 1);
      const b = random([...lead, K, P], 2);
      const w = random([...lead, M, P], 3); // a weighting, so the gradient is not all ones
      const ours = bmm(a, b);
      const theirs = tf.matMul(a, b);
      expect(ours.shape).toEqual(theirs.shape);
      expect(maxDiff(ours, theirs)).toBeLessThan(1e-4);
      const f = (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(bmm(x, y), w));
      const g = (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y), w));
      const [da, db] = tf.grads(f)([a, b]);
      const [ea, eb] = tf.grads(g)([a, b]);
      expect(maxDiff(da as tf.Tensor, ea as tf.Tensor)).toBeLessThan(1e-4);
      expect(maxDiff(db as tf.Tensor, eb as tf.Tensor)).toBeLessThan(1e-4);
      tf.dispose([a, b, w, ours, theirs, da as tf.Tensor, db as tf.Tensor, ea as tf.Tensor, eb as tf.Tensor]);
    }
  });

  it.skipIf(backend !== 'wasm')(
    'runs as one XNNPACK product per matrix on wasm, without leaking tensors',
    async () => {
      const a = random([4, 4, 64, 32], 4);
      const b = random([4, 4, 32, 64], 5);
      const before = tf.memory().numTensors;
      const info = await tf.profile(() => {
        tf.dispose(bmm(a, b));
      });
      expect(info.kernels.map((k) => k.name)).toContain('LoomBatchMatMul');
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([a, b]);
    },
  );
});

describe('wasm kernels', () => {
  it('multiply one buffer correctly under two shapes (XNNPACK caches its packing per buffer)', () => {
    const b = random([4, 6], 7);
    const a1 = random([3, 4], 8);
    const a2 = random([5, 2], 9);
    const b2 = tf.reshape(b, [2, 12]);
    const first = tf.matMul(a1, b);
    const second = tf.matMul(a2, b2);
    // By hand, in float64.
    const product = (x: tf.Tensor, y: tf.Tensor): number[][] => {
      const [xs, ys] = [x.arraySync() as number[][], y.arraySync() as number[][]];
      return xs.map((row) =>
        (ys[0] ?? []).map((_, j) => row.reduce((s, v, k) => s + v * (ys[k]?.[j] ?? 0), 0)),
      );
    };
    expect(maxDiff(first, tf.tensor(product(a1, b)))).toBeLessThan(1e-4);
    expect(maxDiff(second, tf.tensor(product(a2, b2)))).toBeLessThan(1e-4);
    tf.dispose([b, a1, a2, b2, first, second]);
  });

  it('share data between clones, and free it only with the last of them', () => {
    const x = random([64, 32], 10);
    const expected = Array.from(x.dataSync());
    const before = tf.memory().numTensors;
    const copy = tf.clone(x);
    const same = tf.cast(x, 'float32');
    x.dispose();
    expect(Array.from(copy.dataSync())).toEqual(expected);
    same.dispose();
    expect(tf.tidy(() => Array.from(tf.add(copy, 0).dataSync()))).toEqual(expected);
    copy.dispose();
    expect(tf.memory().numTensors).toBe(before - 1);
  });
});

describe('swapLast', () => {
  it('transposes big and small matrices and batches exactly', () => {
    for (const shape of [
      [1024, 96],
      [512, 128],
      [100, 300],
      [16, 8],
      [3, 64, 32],
    ]) {
      const x = random(shape, 6);
      const perm = shape.map((_, i) => i);
      [perm[perm.length - 2], perm[perm.length - 1]] = [perm.length - 1, perm.length - 2];
      const y = swapLast(x);
      expect(y.shape).toEqual(perm.map((p) => shape[p]));
      expect(maxDiff(y, tf.transpose(x, perm))).toBe(0);
      tf.dispose([x, y]);
    }
  });
});
