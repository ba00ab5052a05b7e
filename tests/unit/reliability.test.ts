// Rater reliability (core/ranking/reliability.ts): fixed points of the EM worked out by hand on
// gold comparisons, the Beta intervals, the judgment weights, and recovery of careful, random and
// inverting raters from overlapping judgments without gold.
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../core/ranking/bradley-terry.js';
import {
  betaCdf,
  betaQuantile,
  fitReliability,
  judgmentWeight,
  judgmentWeights,
  type Label,
  type RatedJudgment,
} from '../../core/ranking/reliability.js';

const j = (comparisonId: string, raterId: string, label: Label): RatedJudgment => ({
  comparisonId,
  raterId,
  label,
});

describe('fitReliability on gold comparisons (worked by hand)', () => {
  const gold = new Map<string, Label>([
    ['g1', 'A'],
    ['g2', 'A'],
    ['g3', 'B'],
    ['g4', 'B'],
  ]);

  it('a rater right on all four gold answers: p = 1 under a flat prior, Beta(5, 1) interval', () => {
    const fit = fitReliability(
      [j('g1', 'r', 'A'), j('g2', 'r', 'A'), j('g3', 'r', 'B'), j('g4', 'r', 'B')],
      gold,
      { alpha: 1, beta: 1, guessPrior: 0 },
    );
    const r = fit.raters[0]!;
    expect(r.reliability).toBeCloseTo(1, 9);
    expect(r.goldJudged).toBe(4);
    // Beta(1 + 4, 1 + 0): F(x) = x⁵, so the quantiles are u^(1/5).
    expect(r.low).toBeCloseTo(0.025 ** 0.2, 6);
    expect(r.high).toBeCloseTo(0.975 ** 0.2, 6);
  });

  it('a rater right on half, one of each side: p = 1/3 under Beta(2, 2), interval from Beta(3, 5)', () => {
    // Guesses split A/B evenly, so g = (½, ½, 0) and a right answer was known with probability
    // P = p / (p + (1 − p)/2) = 2p/(1 + p). The M-step p = (2P + α − 1)/(4 + α + β − 2) =
    // (4p/(1 + p) + 1)/6 has the fixed point 6p² + p − 1 = 0, p = 1/3; then P = ½, the
    // expected knowing count is 1 of 4, and the posterior Beta(2 + 1, 2 + 3).
    const fit = fitReliability(
      [j('g1', 'r', 'A'), j('g2', 'r', 'B'), j('g3', 'r', 'A'), j('g4', 'r', 'B')],
      gold,
      { alpha: 2, beta: 2, guessPrior: 0, tolerance: 1e-12, maxIterations: 10_000 },
    );
    const r = fit.raters[0]!;
    expect(fit.converged).toBe(true);
    expect(r.reliability).toBeCloseTo(1 / 3, 6);
    expect(r.guess.A).toBeCloseTo(0.5, 6);
    expect(r.guess.TIE).toBeCloseTo(0, 9);
    expect(r.low).toBeCloseTo(betaQuantile(0.025, 3, 5), 5);
    expect(r.high).toBeCloseTo(betaQuantile(0.975, 3, 5), 5);
    // Gold outcomes stay as given.
    expect(fit.outcomes.get('g2')).toEqual({ A: 1, B: 0, TIE: 0 });
  });
});

describe('Beta distribution', () => {
  it('matches closed forms', () => {
    expect(betaCdf(0.3, 1, 1)).toBeCloseTo(0.3, 12);
    // Beta(2, 2): F(x) = 3x² − 2x³.
    expect(betaCdf(0.4, 2, 2)).toBeCloseTo(3 * 0.16 - 2 * 0.064, 12);
    expect(betaQuantile(0.5, 3, 3)).toBeCloseTo(0.5, 9);
    expect(betaQuantile(0.1, 1, 4)).toBeCloseTo(1 - 0.9 ** 0.25, 9);
  });
});

describe('judgmentWeight', () => {
  it('is the direction’s excess over a coin flip', () => {
    // P(A | not a tie) = 0.6 / 0.8 = 0.75 → 2·0.75 − 1 = 0.5.
    expect(judgmentWeight({ A: 0.6, B: 0.2, TIE: 0.2 }, 'A')).toBeCloseTo(0.5, 12);
    expect(judgmentWeight({ A: 0.6, B: 0.2, TIE: 0.2 }, 'B')).toBe(0);
    expect(judgmentWeight({ A: 0.6, B: 0.2, TIE: 0.2 }, 'TIE')).toBe(0);
    expect(judgmentWeight({ A: 0.5, B: 0.5, TIE: 0 }, 'A')).toBe(0);
  });
});

describe('fitReliability without gold', () => {
  it('tells careful raters from random and inverting ones by their overlap', () => {
    const random = seededRandom(7);
    const careful = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6'];
    const raters = [...careful, 'random1', 'random2', 'inverter'];
    const judgments: RatedJudgment[] = [];
    for (let i = 0; i < 300; i++) {
      const truth: Label = random() < 0.45 ? 'A' : random() < 0.9 ? 'B' : 'TIE';
      // Three distinct raters per comparison.
      const chosen = new Set<string>();
      while (chosen.size < 3) chosen.add(raters[Math.floor(random() * raters.length)]!);
      for (const rater of chosen) {
        let label: Label;
        if (rater.startsWith('random')) label = random() < 0.5 ? 'A' : 'B';
        else if (rater === 'inverter') label = truth === 'A' ? 'B' : truth === 'B' ? 'A' : 'TIE';
        else label = random() < 0.1 ? (random() < 0.5 ? 'A' : 'B') : truth;
        judgments.push(j(`c${i}`, rater, label));
      }
    }
    const fit = fitReliability(judgments);
    const p = new Map(fit.raters.map((r) => [r.raterId, r]));
    for (const id of careful) {
      expect(p.get(id)!.reliability).toBeGreaterThan(0.8);
      expect(p.get(id)!.low).toBeLessThan(p.get(id)!.reliability);
    }
    expect(p.get('random1')!.reliability).toBeLessThan(0.2);
    expect(p.get('random2')!.reliability).toBeLessThan(0.2);
    expect(p.get('inverter')!.reliability).toBeLessThan(0.1);
    expect(fit.informative).toBe(300);
    const weights = judgmentWeights(fit, judgments);
    const mean = (rater: string) => {
      const own = weights.filter((_, k) => judgments[k]!.raterId === rater && judgments[k]!.label !== 'TIE');
      return own.reduce((a, b) => a + b, 0) / own.length;
    };
    expect(mean('c1')).toBeGreaterThan(0.8);
    expect(mean('inverter')).toBeLessThan(0.1);
  });
});
