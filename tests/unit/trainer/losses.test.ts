// The trainer's math on tiny tensors against values computed by hand (docs/ALGORITHMS.md formulas).
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  bradleyTerryLoss,
  dpoLoss,
  gae,
  grpoAdvantages,
  grpoLoss,
  klK3,
  klShapedRewards,
  maskedSum,
  meanSequenceKl,
  ppoPolicyLoss,
  ppoTokenRewards,
  ppoValueLoss,
  rlooAdvantages,
  rlooLoss,
  tokenLogProbs,
  whiten,
} from '../../../trainer/losses.js';
import { initBackend } from '../../../trainer/runtime.js';

const value = (t: tf.Tensor): number => {
  const v = t.dataSync()[0] ?? NaN;
  t.dispose();
  return v;
};
const t1 = (xs: number[]): tf.Tensor1D => tf.tensor1d(xs);
const t2 = (xs: number[][]): tf.Tensor2D => tf.tensor2d(xs);

beforeAll(async () => {
  await initBackend();
});

describe('Bradley-Terry reward loss', () => {
  it('matches −mean log σ(r⁺ − r⁻ − m)', () => {
    // d = [2−1−0.5, 0−1−0] = [0.5, −1]; softplus(−d) = [0.474077, 1.313262]
    expect(value(bradleyTerryLoss(t1([2, 0]), t1([1, 1]), t1([0.5, 0])))).toBeCloseTo(0.8936693, 5);
  });
  it('adds c·mean((r⁺ + r⁻)²) when centering', () => {
    // sums [3, 1] → mean of squares 5 → 0.01·5 = 0.05
    expect(value(bradleyTerryLoss(t1([2, 0]), t1([1, 1]), t1([0.5, 0]), 0.01))).toBeCloseTo(0.9436693, 5);
  });
  it('weights judgments', () => {
    // weights [3, 1]: (3·0.474077 + 1.313262) / 4
    expect(value(bradleyTerryLoss(t1([2, 0]), t1([1, 1]), t1([0.5, 0]), 0, t1([3, 1])))).toBeCloseTo(
      0.6838735,
      5,
    );
  });
});

describe('DPO loss', () => {
  it('matches −log σ(β[(π⁺ − ref⁺) − (π⁻ − ref⁻)])', () => {
    // (−1 + 2) − (−3 + 2) = 2; β·2 = 0.2; log(1 + e^−0.2) = 0.598139
    expect(value(dpoLoss(t1([-1]), t1([-3]), t1([-2]), t1([-2]), 0.1))).toBeCloseTo(0.598139, 5);
  });
  it('is log 2 when the policy equals the reference', () => {
    expect(value(dpoLoss(t1([-1, -5]), t1([-3, -2]), t1([-1, -5]), t1([-3, -2]), 0.1))).toBeCloseTo(
      Math.LN2,
      6,
    );
  });
});

describe('RLOO', () => {
  it('advantage is the reward minus the mean of the other k−1', () => {
    expect(rlooAdvantages([1, 2, 3, 6], 2)).toEqual([-1, 1, -3, 3]);
    expect(rlooAdvantages([1, 2, 6], 3)).toEqual([-3, -1.5, 4.5]);
  });
  it('folds β·Σ log(π_old/π_ref) into the reward', () => {
    expect(klShapedRewards([1, 0], [-2, -1], [-3, -1], 0.5)).toEqual([0.5, 0]);
  });
  it('loss is −mean(A·log π)', () => {
    expect(value(rlooLoss(t1([1, -1]), t1([-2, -4])))).toBeCloseTo(-1, 6);
  });
  it('rejects k < 2', () => {
    expect(() => rlooAdvantages([1, 2], 1)).toThrow();
  });
});

describe('GRPO', () => {
  it('advantages are standardized within each group', () => {
    // std 1 → ±1/(1 + ε) with the default ε = 1e-4
    const a = grpoAdvantages([1, 3, 5, 5], 2);
    expect(a[0]).toBeCloseTo(-1 / 1.0001, 6);
    expect(a[1]).toBeCloseTo(1 / 1.0001, 6);
    expect(a.slice(2)).toEqual([0, 0]); // equal rewards: no signal
  });
  it('loss clips the ratio and subtracts β·KL₃, averaged over response tokens', () => {
    const ln = Math.log;
    // ratios [2, 1] → min(2A, 1.2A) = 1.2 and 1; KL₃ = [0, 0.5 − ln 0.5 − 1 = 0.193147]; β = 0.1
    // third column is padding (mask 0) with junk that must not count.
    const loss = grpoLoss(
      t2([[ln(0.5), ln(0.5), 5]]),
      t2([[ln(0.25), ln(0.5), -5]]),
      t2([[ln(0.5), ln(0.25), 3]]),
      t1([1]),
      t2([[1, 1, 0]]),
      0.2,
      0.1,
    );
    expect(value(loss)).toBeCloseTo(-(1.2 + 1 - 0.0193147) / 2, 5);
  });
  it('KL₃ is zero at equality and positive elsewhere', () => {
    const k = klK3(t1([Math.log(0.5), Math.log(0.5)]), t1([Math.log(0.5), Math.log(0.25)]));
    const [a, b] = Array.from(k.dataSync());
    k.dispose();
    expect(a).toBeCloseTo(0, 6);
    expect(b).toBeCloseTo(0.5 - Math.log(0.5) - 1, 5);
  });
});

describe('PPO', () => {
  it('clipped policy loss', () => {
    // ratio 2, A 1 → min(2, 1.2) = 1.2; ratio 0.5, A −1 → min(−0.5, −0.8) = −0.8; mean 0.2
    const ln = Math.log;
    const loss = ppoPolicyLoss(
      t2([[ln(0.5), ln(0.25)]]),
      t2([[ln(0.25), ln(0.5)]]),
      t2([[1, -1]]),
      t2([[1, 1]]),
      0.2,
    );
    expect(value(loss)).toBeCloseTo(-0.2, 5);
  });
  it('clipped value loss takes the larger of the two errors', () => {
    // clipped values [0.2, 0.2]; errors max(1, 3.24) each → ½·3.24
    expect(value(ppoValueLoss(t2([[1, 3]]), t2([[0, 0]]), t2([[2, 2]]), t2([[1, 1]]), 0.2))).toBeCloseTo(
      1.62,
      5,
    );
  });
  it('per-token rewards: −β·log(π/π_ref), plus the score on the last token', () => {
    const r = ppoTokenRewards(2, [-1, -2], [-1.5, -1], 0.1);
    expect(r[0]).toBeCloseTo(-0.05, 6);
    expect(r[1]).toBeCloseTo(2.1, 6);
  });
  it('GAE with γ = 1, λ = 0.95', () => {
    // δ₁ = 1 − 0.5 = 0.5; δ₀ = 0 + 0.5 − 0.5 = 0 → A₀ = 0.95·0.5
    const { advantages, returns } = gae([0, 1], [0.5, 0.5], 1, 0.95);
    expect(advantages[0]).toBeCloseTo(0.475, 6);
    expect(advantages[1]).toBeCloseTo(0.5, 6);
    expect(returns[0]).toBeCloseTo(0.975, 6);
    expect(returns[1]).toBeCloseTo(1, 6);
  });
  it('whitening gives mean 0 and std 1', () => {
    const w = whiten([1, 2, 3, 4]);
    expect(w.reduce((a, b) => a + b, 0)).toBeCloseTo(0, 6);
    expect(Math.sqrt(w.reduce((a, b) => a + b * b, 0) / 4)).toBeCloseTo(1, 5);
  });
});

describe('log-probs and KL', () => {
  it('token log-prob is log softmax at the target', () => {
    const lp = tokenLogProbs(t2([[0, Math.log(3)]]), tf.tensor1d([1], 'int32'));
    expect(value(lp)).toBeCloseTo(Math.log(0.75), 6);
  });
  it('masked sum ignores prompt and padding', () => {
    expect(Array.from(maskedSum(t2([[5, -1, -2, 9]]), t2([[0, 1, 1, 0]])).dataSync())).toEqual([-3]);
  });
  it('sequence KL estimate is mean Σ(log π − log π_ref)', () => {
    expect(meanSequenceKl([-1, -2], [-2, -2])).toBeCloseTo(0.5, 6);
  });
});
