// The uncertainty queue order's score, checked by hand: with rewards r_A and r_B a Bradley-Terry
// reward model says A wins with σ(r_A − r_B); the uncertainty is 1 − |2σ − 1| and the priority
// round(999 · uncertainty).
import { describe, expect, it } from 'vitest';
import {
  preferenceProbability,
  PROMOTION_PRIORITY,
  rankingUncertaintyPriority,
  uncertainty,
  uncertaintyPriority,
  UNCERTAINTY_PRIORITY_MAX,
} from '../../core/ranking/uncertainty.js';

describe('uncertainty of a comparison', () => {
  it('is a coin flip when both rewards are equal', () => {
    expect(preferenceProbability(2.5, 2.5)).toBe(0.5);
    expect(uncertainty(2.5, 2.5)).toBe(1);
    expect(uncertaintyPriority(2.5, 2.5)).toBe(999);
  });

  it('follows σ(r_A − r_B) by hand', () => {
    // r_A − r_B = ln 4: σ = 4/5 = 0.8, |2·0.8 − 1| = 0.6, uncertainty 0.4, priority round(399.6) = 400.
    expect(preferenceProbability(Math.log(4), 0)).toBeCloseTo(0.8, 12);
    expect(uncertainty(Math.log(4), 0)).toBeCloseTo(0.4, 12);
    expect(uncertaintyPriority(1 + Math.log(4), 1)).toBe(400);
    // r_A − r_B = ln 9: σ = 0.9, uncertainty 0.2, priority round(199.8) = 200.
    expect(uncertainty(Math.log(9), 0)).toBeCloseTo(0.2, 12);
    expect(uncertaintyPriority(Math.log(9), 0)).toBe(200);
    // Which side is ahead does not matter, only by how much.
    expect(uncertaintyPriority(0, Math.log(9))).toBe(200);
    expect(preferenceProbability(0, Math.log(9))).toBeCloseTo(0.1, 12);
  });

  it('orders comparisons by the margin: near zero first', () => {
    const margins = [3, 0.1, -0.5, 1.2, -4, 0];
    const order = margins
      .map((d, i) => ({ i, p: uncertaintyPriority(d, 0) }))
      .sort((a, b) => b.p - a.p || a.i - b.i)
      .map(({ i }) => margins[i]);
    expect(order).toEqual([0, 0.1, -0.5, 1.2, 3, -4]);
  });

  it('gives a ranking the priority of its least certain pair', () => {
    // Rewards 0, ln 9 and 5: pairs at 200 (ln 9 apart), round(999·(1 − tanh(2.5))) = 13 and
    // round(999·(1 − tanh((5 − ln 9)/2))) = 114.
    expect(uncertaintyPriority(0, 5)).toBe(13);
    expect(uncertaintyPriority(Math.log(9), 5)).toBe(114);
    expect(rankingUncertaintyPriority([0, Math.log(9), 5])).toBe(200);
    expect(rankingUncertaintyPriority([5, 0, Math.log(9)])).toBe(200);
    expect(rankingUncertaintyPriority([1.5, -0.25])).toBe(uncertaintyPriority(1.5, -0.25));
  });

  it('stays in 0..999, below the promotion comparisons, for any rewards', () => {
    expect(uncertaintyPriority(40, -40)).toBe(0);
    expect(preferenceProbability(800, 0)).toBe(1);
    expect(preferenceProbability(-800, 0)).toBe(0);
    expect(uncertaintyPriority(Number.NaN, 0)).toBe(0);
    expect(uncertaintyPriority(Number.POSITIVE_INFINITY, 0)).toBe(0);
    for (let d = -10; d <= 10; d += 0.37) {
      const p = uncertaintyPriority(d, 0);
      expect(Number.isInteger(p)).toBe(true);
      expect(p).toBeGreaterThanOrEqual(0);
      expect(p).toBeLessThanOrEqual(UNCERTAINTY_PRIORITY_MAX);
    }
    expect(PROMOTION_PRIORITY).toBeGreaterThan(UNCERTAINTY_PRIORITY_MAX);
  });
});
