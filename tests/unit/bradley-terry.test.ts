// The leaderboard's math: Bradley-Terry fits against hand-computed answers and the likelihood
// equations, ties, disconnected comparison graphs, the bootstrap's intervals (shrinking with
// votes, equal to resampling judgment by judgment, covering known strengths) and Kendall's tau.
import { describe, expect, it } from 'vitest';
import {
  binomial,
  bootstrapIntervals,
  fitBradleyTerry,
  kendallTau,
  leaderboard,
  multinomial,
  quantile,
  RATING_ANCHOR,
  seededRandom,
  type Outcome,
  type PairCount,
} from '../../core/ranking/bradley-terry.js';

const cell = (a: number, b: number, outcome: Outcome, count: number): PairCount => ({ a, b, outcome, count });
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** Votes simulated from known log-strengths: `perPair` judgments for every pair, no ties. */
function simulate(theta: readonly number[], perPair: number, random: () => number): PairCount[] {
  const counts: PairCount[] = [];
  for (let i = 0; i < theta.length; i++) {
    for (let j = i + 1; j < theta.length; j++) {
      let wins = 0;
      for (let k = 0; k < perPair; k++) if (random() < sigmoid(theta[i]! - theta[j]!)) wins++;
      counts.push(cell(i, j, 'A', wins), cell(i, j, 'B', perPair - wins));
    }
  }
  return counts;
}

describe('Bradley-Terry fit', () => {
  it('two versions: the fitted probability is wins / total (hand-computed)', () => {
    // 3 wins, 1 loss: P(0 beats 1) = 3/4, so θ0 − θ1 = ln 3, centred: ±ln(3)/2.
    const fit = fitBradleyTerry(2, [cell(0, 1, 'A', 3), cell(0, 1, 'B', 1)], { l2: 0 });
    expect(fit.converged).toBe(true);
    expect(fit.theta[0]).toBeCloseTo(Math.log(3) / 2, 10);
    expect(fit.theta[1]).toBeCloseTo(-Math.log(3) / 2, 10);
    expect(sigmoid(fit.theta[0]! - fit.theta[1]!)).toBeCloseTo(0.75, 10);
    // The same pair written from the other side gives the same answer.
    const flipped = fitBradleyTerry(2, [cell(1, 0, 'B', 3), cell(1, 0, 'A', 1)], { l2: 0 });
    expect(flipped.theta[0]).toBeCloseTo(Math.log(3) / 2, 10);
  });

  it('three versions on a path: each pair on its own (hand-computed)', () => {
    // 0 beats 1 three times to one (θ0 − θ1 = ln 3); 1 and 2 split 2:2 (θ1 = θ2). Centred:
    // θ = (2 ln3/3, −ln3/3, −ln3/3).
    const fit = fitBradleyTerry(
      3,
      [cell(0, 1, 'A', 3), cell(0, 1, 'B', 1), cell(1, 2, 'A', 2), cell(2, 1, 'A', 2)],
      { l2: 0 },
    );
    expect(fit.theta[0]).toBeCloseTo((2 * Math.log(3)) / 3, 10);
    expect(fit.theta[1]).toBeCloseTo(-Math.log(3) / 3, 10);
    expect(fit.theta[2]).toBeCloseTo(-Math.log(3) / 3, 10);
  });

  it('three versions in a cycle: expected wins equal observed wins (the likelihood equations)', () => {
    const counts = [
      cell(0, 1, 'A', 7),
      cell(0, 1, 'B', 3),
      cell(1, 2, 'A', 6),
      cell(1, 2, 'B', 4),
      cell(2, 0, 'A', 2),
      cell(2, 0, 'B', 5),
      cell(2, 0, 'TIE', 2),
    ];
    const fit = fitBradleyTerry(3, counts, { l2: 0 });
    expect(fit.converged).toBe(true);
    const expected = [0, 0, 0];
    const observed = [0, 0, 0];
    for (const c of counts) {
      const pa = sigmoid(fit.theta[c.a]! - fit.theta[c.b]!);
      expected[c.a]! += c.count * pa;
      expected[c.b]! += c.count * (1 - pa);
      const score = c.outcome === 'A' ? 1 : c.outcome === 'B' ? 0 : 0.5;
      observed[c.a]! += c.count * score;
      observed[c.b]! += c.count * (1 - score);
    }
    for (let i = 0; i < 3; i++) expect(expected[i]).toBeCloseTo(observed[i]!, 8);
    expect(fit.theta[0]! + fit.theta[1]! + fit.theta[2]!).toBeCloseTo(0, 12);
    expect(fit.theta[0]).toBeGreaterThan(fit.theta[1]!);
    expect(fit.theta[1]).toBeGreaterThan(fit.theta[2]!);
  });

  it('a tie is half a win for each side; BOTH_BAD is a tie unless left out', () => {
    const withTies = fitBradleyTerry(2, [cell(0, 1, 'A', 3), cell(0, 1, 'B', 1), cell(0, 1, 'TIE', 2)], {
      l2: 0,
    });
    const asHalves = fitBradleyTerry(2, [cell(0, 1, 'A', 4), cell(0, 1, 'B', 2)], { l2: 0 });
    expect(withTies.theta[0]).toBeCloseTo(asHalves.theta[0]!, 10);
    expect(withTies.theta[0]! - withTies.theta[1]!).toBeCloseTo(Math.log(2), 10); // 4 of 6
    const bothBad = [cell(0, 1, 'A', 3), cell(0, 1, 'B', 1), cell(0, 1, 'BOTH_BAD', 2)];
    expect(fitBradleyTerry(2, bothBad, { l2: 0 }).theta[0]).toBeCloseTo(withTies.theta[0]!, 10);
    expect(fitBradleyTerry(2, bothBad, { l2: 0, bothBad: 'exclude' }).theta[0]).toBeCloseTo(
      Math.log(3) / 2,
      10,
    );
    // Only ties: no difference at all.
    const even = fitBradleyTerry(3, [cell(0, 1, 'TIE', 5), cell(1, 2, 'TIE', 5)]);
    for (const t of even.theta) expect(t).toBeCloseTo(0, 10);
  });

  it('a version that never lost stays finite under the prior, and is flagged unconverged without it', () => {
    const counts = [cell(0, 1, 'A', 10), cell(1, 2, 'A', 5), cell(1, 2, 'B', 5)];
    const withPrior = fitBradleyTerry(3, counts);
    expect(withPrior.converged).toBe(true);
    expect(Number.isFinite(withPrior.theta[0]!)).toBe(true);
    expect(withPrior.theta[0]).toBeGreaterThan(3);
    expect(fitBradleyTerry(3, counts, { l2: 0 }).converged).toBe(false);
  });

  it('ranks only the connected part with the most judgments; the rest get no strength', () => {
    const board = leaderboard(
      5,
      [cell(0, 1, 'A', 30), cell(0, 1, 'B', 20), cell(2, 3, 'A', 2), cell(2, 3, 'B', 1)],
      { resamples: 200 },
    );
    expect(board.items.map((item) => item.connected)).toEqual([true, true, false, false, false]);
    expect(board.items[2]!.rating).toBeNull();
    expect(board.items[2]!.votes).toBe(3);
    expect(board.items[4]).toMatchObject({ rating: null, rank: null, votes: 0, connected: false });
    expect(board.items[0]!.rating! + board.items[1]!.rating!).toBeCloseTo(2 * RATING_ANCHOR, 8);
    expect(board.judgments).toBe(50);
    // The matrix still shows the other pair's record.
    expect(board.matrix[2]![3]).toMatchObject({ wins: 2, losses: 1, total: 3 });
    expect(board.matrix[0]![4]).toBeNull();
  });
});

describe('leaderboard table', () => {
  it('counts votes per version and fills the win-rate matrix from both sides', () => {
    const board = leaderboard(
      3,
      [
        cell(0, 1, 'A', 6),
        cell(1, 0, 'A', 2),
        cell(0, 1, 'TIE', 2),
        cell(0, 2, 'BOTH_BAD', 1),
        cell(2, 0, 'B', 3),
      ],
      { resamples: 100 },
    );
    expect(board.items[0]).toMatchObject({ votes: 14, wins: 9, losses: 2, ties: 2, bothBad: 1 });
    expect(board.items[1]).toMatchObject({ votes: 10, wins: 2, losses: 6, ties: 2 });
    expect(board.items[2]).toMatchObject({ votes: 4, wins: 0, losses: 3, bothBad: 1 });
    expect(board.matrix[0]![1]).toEqual({ wins: 6, losses: 2, ties: 2, bothBad: 0, total: 10, winRate: 0.7 });
    expect(board.matrix[1]![0]!.winRate).toBeCloseTo(0.3, 12);
    expect(board.matrix[0]![2]!.winRate).toBeCloseTo(3.5 / 4, 12);
    expect(board.matrix[1]![2]).toBeNull();
    expect(board.items[0]!.ratingLow!).toBeLessThan(board.items[0]!.rating!);
    expect(board.items[0]!.ratingHigh!).toBeGreaterThan(board.items[0]!.rating!);
  });

  it('gives the same intervals for the same seed', () => {
    const counts = simulate([0.5, 0, -0.5], 40, seededRandom(3));
    const a = leaderboard(3, counts, { seed: 9 });
    const b = leaderboard(3, counts, { seed: 9 });
    expect(a.items).toEqual(b.items);
  });
});

describe('bootstrap intervals', () => {
  it('shrink as votes grow (about halving for four times the votes)', () => {
    const base = [
      cell(0, 1, 'A', 12),
      cell(0, 1, 'B', 8),
      cell(1, 2, 'A', 11),
      cell(1, 2, 'B', 9),
      cell(0, 2, 'A', 14),
      cell(0, 2, 'B', 6),
    ];
    const widths = [1, 4, 16].map((factor) => {
      const board = leaderboard(
        3,
        base.map((c) => ({ ...c, count: c.count * factor })),
        { resamples: 1000 },
      );
      return board.items.map((item) => item.logHigh! - item.logLow!);
    });
    for (let i = 0; i < 3; i++) {
      expect(widths[1]![i]).toBeLessThan(widths[0]![i]!);
      expect(widths[2]![i]).toBeLessThan(widths[1]![i]!);
      expect(widths[1]![i]! / widths[0]![i]!).toBeGreaterThan(0.35);
      expect(widths[1]![i]! / widths[0]![i]!).toBeLessThan(0.65);
    }
  });

  it('equal resampling judgment by judgment (multinomial counts are the same distribution)', () => {
    const counts = simulate([0.6, 0.1, -0.2, -0.5], 30, seededRandom(11));
    const fit = fitBradleyTerry(4, counts);
    const viaCells = bootstrapIntervals(4, counts, fit.members, fit.theta, { resamples: 2000, seed: 5 });
    // The same thing the long way: a list of judgments, drawn with replacement.
    const judgments = counts.flatMap((c) => Array<PairCount>(c.count).fill({ ...c, count: 1 }));
    const random = seededRandom(77);
    const draws: number[][] = [[], [], [], []];
    for (let r = 0; r < 2000; r++) {
      const resample = Array.from({ length: judgments.length }, () => ({
        ...judgments[Math.floor(random() * judgments.length)]!,
      }));
      const theta = fitBradleyTerry(4, resample).theta;
      for (let i = 0; i < 4; i++) draws[i]!.push(theta[i]!);
    }
    for (let i = 0; i < 4; i++) {
      const sorted = draws[i]!.sort((x, y) => x - y);
      expect(Math.abs(quantile(sorted, 0.025) - viaCells.low[i]!)).toBeLessThan(0.06);
      expect(Math.abs(quantile(sorted, 0.975) - viaCells.high[i]!)).toBeLessThan(0.06);
    }
  });

  it('cover known strengths in ≥ 90% of (version, seed) cases over 60 seeds, and keep their order', () => {
    const truth = [-0.8, -0.3, 0, 0.4, 0.7]; // centred: mean 0
    let covered = 0;
    let cases = 0;
    const taus: number[] = [];
    for (let seed = 1; seed <= 60; seed++) {
      const counts = simulate(truth, 60, seededRandom(1000 + seed));
      const board = leaderboard(truth.length, counts, { resamples: 1000, seed });
      board.items.forEach((item, i) => {
        cases++;
        if (item.logLow! <= truth[i]! && truth[i]! <= item.logHigh!) covered++;
      });
      taus.push(
        kendallTau(
          truth,
          board.items.map((item) => item.logStrength!),
        )!,
      );
    }
    const coverage = covered / cases;
    const meanTau = taus.reduce((sum, t) => sum + t, 0) / taus.length;
    const exactOrder = taus.filter((t) => t === 1).length / taus.length;
    console.log(
      `Bradley-Terry on simulated votes: coverage ${(coverage * 100).toFixed(1)}% of ${cases} ` +
        `(version, seed) cases; Kendall's tau mean ${meanTau.toFixed(3)}, exact order in ` +
        `${(exactOrder * 100).toFixed(0)}% of seeds`,
    );
    expect(coverage).toBeGreaterThanOrEqual(0.9);
    expect(meanTau).toBeGreaterThanOrEqual(0.85);
  });
});

describe('random draws and Kendall tau', () => {
  it('binomial draws have the right mean and variance, small and large n·p', () => {
    const random = seededRandom(42);
    for (const [n, p] of [
      [20, 0.1],
      [1000, 0.3],
      [50_000, 0.77],
    ] as const) {
      let sum = 0;
      let squares = 0;
      const draws = 20_000;
      for (let k = 0; k < draws; k++) {
        const x = binomial(n, p, random);
        expect(x).toBeGreaterThanOrEqual(0);
        expect(x).toBeLessThanOrEqual(n);
        sum += x;
        squares += x * x;
      }
      const mean = sum / draws;
      const variance = squares / draws - mean * mean;
      const sd = Math.sqrt(n * p * (1 - p));
      expect(Math.abs(mean - n * p)).toBeLessThan((5 * sd) / Math.sqrt(draws));
      expect(variance / (n * p * (1 - p))).toBeGreaterThan(0.95);
      expect(variance / (n * p * (1 - p))).toBeLessThan(1.05);
    }
  });

  it('multinomial counts add up to the total', () => {
    const random = seededRandom(1);
    for (let k = 0; k < 100; k++) {
      const counts = multinomial(1234, [5, 0, 100, 3, 7], random);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(1234);
      expect(counts[1]).toBe(0);
    }
  });

  it('Kendall tau-b: agreement, reversal, and ties', () => {
    expect(kendallTau([1, 2, 3, 4], [10, 20, 30, 40])).toBe(1);
    expect(kendallTau([1, 2, 3, 4], [4, 3, 2, 1])).toBe(-1);
    // One swapped pair of six: (5 − 1) / 6.
    expect(kendallTau([1, 2, 3, 4], [1, 3, 2, 4])).toBeCloseTo(4 / 6, 12);
    // Tie-corrected (tau-b): x has a tie; 5 concordant, 0 discordant, 1 tied in x only.
    expect(kendallTau([1, 1, 2, 3], [1, 2, 3, 4])).toBeCloseTo(5 / Math.sqrt(5 * 6), 12);
    expect(kendallTau([1, 1], [1, 2])).toBeNull();
  });
});
