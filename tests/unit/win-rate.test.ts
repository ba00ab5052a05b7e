// A version's win rate against its parent: Wilson's interval (by hand), ties and both-bad as
// halves, votes on one comparison as correlated, and the decisions of both promotion rules.
import { describe, expect, it } from 'vitest';
import {
  humanVerdict,
  intraclassCorrelation,
  rewardModelVerdict,
  wilsonInterval,
  winRateFromVotes,
  type ComparisonVotes,
} from '../../core/ranking/win-rate.js';

/** One comparison per vote. */
function singles(wins: number, losses: number, ties = 0, bothBad = 0): ComparisonVotes[] {
  const one = (c: Partial<ComparisonVotes>) => ({ wins: 0, losses: 0, ties: 0, bothBad: 0, ...c });
  return [
    ...Array.from({ length: wins }, () => one({ wins: 1 })),
    ...Array.from({ length: losses }, () => one({ losses: 1 })),
    ...Array.from({ length: ties }, () => one({ ties: 1 })),
    ...Array.from({ length: bothBad }, () => one({ bothBad: 1 })),
  ];
}

describe('Wilson score interval', () => {
  it('matches hand-computed values', () => {
    // z = 1.96, n = 10, p = 0.8: centre (0.8 + z²/20) / (1 + z²/10) = 0.99207 / 1.38415 = 0.71674,
    // half-width z / 1.38415 · √(0.8 · 0.2 / 10 + z² / 400) = 1.41601 · 0.16001 = 0.22658.
    const [low, high] = wilsonInterval(0.8, 10);
    expect(low).toBeCloseTo(0.4902, 4);
    expect(high).toBeCloseTo(0.9433, 4);
    // All ten wins: centre 1.19207 / 1.38415 = 0.86124, half-width 1.41601 · z/20 = 0.13877.
    const [allLow, allHigh] = wilsonInterval(1, 10);
    expect(allLow).toBeCloseTo(0.7225, 4);
    expect(allHigh).toBeCloseTo(1, 10);
    // None of ten: the mirror image.
    const [noneLow, noneHigh] = wilsonInterval(0, 10);
    expect(noneLow).toBeCloseTo(0, 10);
    expect(noneHigh).toBeCloseTo(0.2775, 4);
    // p = 0.5 on 4 votes: centre 0.5, half-width z / (1 + z²/4) · √(1/16 + z²/64) = 0.34996.
    const [halfLow, halfHigh] = wilsonInterval(0.5, 4);
    expect(halfLow).toBeCloseTo(0.15, 4);
    expect(halfHigh).toBeCloseTo(0.85, 4);
  });

  it('is narrower when ties carry part of the score (their variance is smaller)', () => {
    // p = 0.5, n = 4, τ = 0.5: a = 1 + z²/4 = 1.96037, b = -1.96037,
    // c = 0.25 + (z²/4) · 0.5 / 4 = 0.37005; roots (1.96037 ∓ √0.94133) / 3.92073.
    const [low, high] = wilsonInterval(0.5, 4, 0.5);
    expect(low).toBeCloseTo(0.2525, 4);
    expect(high).toBeCloseTo(0.7475, 4);
  });

  it('is [0, 1] without votes', () => {
    expect(wilsonInterval(0.5, 0)).toEqual([0, 1]);
  });
});

describe('win rate against the parent', () => {
  it('has no rate and the whole interval without votes', () => {
    const rate = winRateFromVotes([]);
    expect(rate).toMatchObject({ votes: 0, winRate: null, low: 0, high: 1, comparisons: 0 });
    expect(winRateFromVotes(singles(0, 0)).votes).toBe(0);
  });

  it('counts wins as 1, ties and both-bad as ½, and agrees with Wilson when each comparison has one vote', () => {
    const rate = winRateFromVotes(singles(8, 2));
    expect(rate).toMatchObject({ votes: 10, wins: 8, losses: 2, winRate: 0.8, designEffect: 1 });
    expect(rate.low).toBeCloseTo(0.4902, 4);
    expect(rate.high).toBeCloseTo(0.9433, 4);
    const mixed = winRateFromVotes(singles(3, 1, 2, 2));
    expect(mixed.winRate).toBeCloseTo((3 + 4 / 2) / 8, 12);
    // BOTH_BAD is a tie: the same interval as two ties.
    const asTies = winRateFromVotes(singles(3, 1, 4, 0));
    expect([mixed.low, mixed.high]).toEqual([asTies.low, asTies.high]);
  });

  it('all wins: the interval keeps room below 1 on few votes', () => {
    const rate = winRateFromVotes(singles(10, 0));
    expect(rate.winRate).toBe(1);
    expect(rate.low).toBeCloseTo(0.7225, 4);
    expect(rate.high).toBeCloseTo(1, 10);
  });

  it('intervals shrink as votes grow', () => {
    const widths = [10, 100, 1000].map((n) => {
      const rate = winRateFromVotes(singles(0.6 * n, 0.4 * n));
      expect(rate.low).toBeLessThan(0.6);
      expect(rate.high).toBeGreaterThan(0.6);
      return rate.high - rate.low;
    });
    expect(widths[1]).toBeLessThan(widths[0]!);
    expect(widths[2]).toBeLessThan(widths[1]!);
    expect(widths[2]).toBeLessThan(0.07);
  });

  it('counts raters who always agree on a comparison as one vote', () => {
    const tripled = singles(8, 2).map((c) => ({ ...c, wins: c.wins * 3, losses: c.losses * 3 }));
    const rate = winRateFromVotes(tripled);
    expect(rate.votes).toBe(30);
    expect(rate.designEffect).toBeCloseTo(3, 12);
    expect(rate.effectiveVotes).toBeCloseTo(10, 12);
    const single = winRateFromVotes(singles(8, 2));
    expect(rate.low).toBeCloseTo(single.low, 12);
    expect(rate.high).toBeCloseTo(single.high, 12);
  });

  it('estimates the votes’ correlation within comparisons (one-way ANOVA)', () => {
    // Raters split on every comparison alike: no correlation.
    expect(
      intraclassCorrelation([
        [1, 0],
        [1, 0],
        [1, 0],
      ]),
    ).toBe(0);
    // Agreement within, differences between: full correlation.
    expect(
      intraclassCorrelation([
        [1, 1],
        [0, 0],
        [1, 1],
      ]),
    ).toBe(1);
    // One vote per comparison: nothing to correct.
    expect(intraclassCorrelation([[1], [0], [1]])).toBe(0);
    // Cannot be estimated (one comparison; every vote alike): assumed full, the cautious side.
    expect(intraclassCorrelation([[1, 0, 1]])).toBe(1);
    expect(
      intraclassCorrelation([
        [1, 1],
        [1, 1],
      ]),
    ).toBe(1);
    // By hand: groups [1,1,0], [0,0,0]; mean 1/3; SSB = 3(2/3 - 1/3)² + 3(1/3)² = 2/3 over k - 1 = 1,
    // SSW = 2(1/3)² + (2/3)² = 2/3 over n - k = 4: MSW = 1/6; m0 = 3;
    // ρ = (2/3 - 1/6) / (2/3 + 2 · 1/6) = 0.5.
    expect(
      intraclassCorrelation([
        [1, 1, 0],
        [0, 0, 0],
      ]),
    ).toBeCloseTo(0.5, 10);
  });
});

describe('promotion decisions', () => {
  const rule = { margin: 0.5, minVotes: 20 };

  it('the human rule waits for the minimum number of votes', () => {
    expect(humanVerdict(winRateFromVotes(singles(19, 0)), rule)).toMatchObject({
      decision: 'not-yet',
      reason: '19 of the 20 votes needed.',
    });
  });

  it('promotes once the lower end of the interval is above the margin, and only then', () => {
    // 20 of 20: Wilson's lower end (1 + z²/40) / (1 + z²/20) - (z / (1 + z²/20)) · z / 40 = 0.8389.
    const all = winRateFromVotes(singles(20, 0));
    expect(all.low).toBeCloseTo(0.8389, 4);
    expect(humanVerdict(all, rule).decision).toBe('promote');
    expect(humanVerdict(all, { margin: 0.85, minVotes: 20 }).decision).toBe('not-yet');
    // 13 of 20 (0.65): the interval reaches below 0.5.
    const some = winRateFromVotes(singles(13, 7));
    expect(some.low).toBeLessThan(0.5);
    expect(humanVerdict(some, rule).decision).toBe('not-yet');
    // The same rate on 400 votes clears it.
    expect(humanVerdict(winRateFromVotes(singles(260, 140)), rule).decision).toBe('promote');
  });

  it('calls a version worse when the whole interval is below 0.5', () => {
    expect(humanVerdict(winRateFromVotes(singles(2, 28)), rule).decision).toBe('worse');
    expect(humanVerdict(winRateFromVotes(singles(12, 18)), rule).decision).toBe('not-yet');
  });

  it('the reward-model rule: at least 0.5 + margin', () => {
    expect(rewardModelVerdict(0.56, 0.05).decision).toBe('promote');
    expect(rewardModelVerdict(0.55, 0.05).decision).toBe('promote');
    expect(rewardModelVerdict(0.52, 0.05).decision).toBe('below-margin');
    expect(rewardModelVerdict(0.4, 0.05).decision).toBe('worse');
    expect(rewardModelVerdict(null, 0.05).decision).toBe('unavailable');
  });
});
