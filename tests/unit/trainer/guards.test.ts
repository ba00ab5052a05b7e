// The round's guards on constructed cases: the adaptive KL controller's update worked by hand,
// early stopping on constructed sequences of held-out checks, and the verdict's reasons.
import { describe, expect, it } from 'vitest';
import {
  AdaptiveKLController,
  EarlyStopping,
  EnsembleScorer,
  notBetterReasons,
} from '../../../trainer/guards.js';
import { wilsonInterval } from '../../../core/ranking/win-rate.js';

describe('adaptive KL controller', () => {
  it('raises β in proportion to the KL over target, clipped to +0.2', () => {
    // KL 1.1 on target 1: e = 0.1, β = 0.05·(1 + 0.1·64/1000) = 0.05032
    const c = new AdaptiveKLController(0.05, 1, 1000);
    expect(c.update(1.1, 64)).toBeCloseTo(0.05032, 8);
    // KL 3 on target 1: e clipped to 0.2, β = 0.05032·(1 + 0.2·64/1000)
    expect(c.update(3, 64)).toBeCloseTo(0.05032 * 1.0128, 8);
  });

  it('lowers β when KL is under target, clipped to −0.2, and holds it at target', () => {
    const c = new AdaptiveKLController(0.1, 2, 100);
    // KL 0 on target 2: e = −1 clipped to −0.2; β = 0.1·(1 − 0.2·10/100) = 0.098
    expect(c.update(0, 10)).toBeCloseTo(0.098, 10);
    expect(c.update(2, 10)).toBeCloseTo(0.098, 10);
  });

  it('settles a KL that answers β toward the target', () => {
    // A toy policy whose KL is inversely proportional to β: KL = 0.1/β.
    const c = new AdaptiveKLController(0.01, 2, 100);
    for (let i = 0; i < 2000; i++) c.update(0.1 / c.beta, 10);
    expect(0.1 / c.beta).toBeCloseTo(2, 1);
  });
});

describe('early stopping', () => {
  const config = { klLimit: 2, patience: 2, tolerance: 0.05 };
  const run = (checks: [number, number][]) => {
    const stopping = new EarlyStopping(config);
    const decisions = checks.map(([kl, reward], i) => stopping.check({ iteration: i * 10, kl, reward }));
    return { stopping, decisions };
  };

  it('goes on while the held-out reward rises and KL stays under the limit', () => {
    const { stopping, decisions } = run([
      [0, 0.1],
      [0.5, 0.2],
      [1, 0.3],
    ]);
    expect(decisions.map((d) => d.stop)).toEqual([false, false, false]);
    expect(decisions.map((d) => d.best)).toEqual([true, true, true]);
    expect(stopping.bestIteration).toBe(20);
  });

  it('stops at once when the held-out KL exceeds the limit', () => {
    const { stopping, decisions } = run([
      [0, 0.1],
      [1, 0.5],
      [2.5, 0.9],
    ]);
    expect(decisions[2]).toEqual({ stop: true, reason: 'kl-limit', best: false });
    expect(stopping.bestIteration).toBe(10);
  });

  it('stops after `patience` checks in a row with the held-out reward fallen beyond tolerance', () => {
    const { stopping, decisions } = run([
      [0, 0.1],
      [0.2, 0.4],
      [0.4, 0.3], // fallen by 0.1: one
      [0.5, 0.38], // within tolerance: the count starts again
      [0.6, 0.3], // one
      [0.7, 0.2], // two: stop
    ]);
    expect(decisions.map((d) => d.stop)).toEqual([false, false, false, false, false, true]);
    expect(decisions[5]!.reason).toBe('held-out-reward');
    expect(stopping.bestIteration).toBe(10);
  });
});

describe('verdict', () => {
  const base = { kl: 1, klLimit: 2, winRateVsParent: 0.6 };
  it('is better when every check holds', () => {
    expect(notBetterReasons({ ...base, utility: 0.5, parentUtility: 0.4, ensembleWinRates: [0.6] })).toEqual(
      [],
    );
  });
  it('names each failed check', () => {
    const reasons = notBetterReasons({
      stoppedWithoutGain: 'held-out KL beyond the limit',
      kl: 2.3,
      klLimit: 2,
      winRateVsParent: 0.45,
      ensembleWinRates: [0.4, 0.6],
      utility: 0.3,
      parentUtility: 0.5,
    });
    expect(reasons).toEqual([
      "the policy phase stopped (held-out KL beyond the limit) before any held-out check improved on the parent, so the new version keeps the parent's weights",
      'KL to the reference 2.30 is beyond the limit 2.00',
      'the reward model prefers the parent (win rate 0.45)',
      '1 of the reward-model ensemble prefer the parent',
      "the demo's hidden utility fell from 0.50 to 0.30",
    ]);
  });
  it('counts a reward-model win rate against the new version only when its whole interval is below 0.5', () => {
    // 60 held-out prompts: 0.47 is within noise of 0.5 (Wilson [0.35, 0.59]); 0.30 is not.
    const noisy = wilsonInterval(0.47, 60);
    expect(noisy[0]).toBeLessThan(0.5);
    expect(noisy[1]).toBeGreaterThan(0.5);
    expect(notBetterReasons({ ...base, winRateVsParent: 0.47, winRateInterval: noisy })).toEqual([]);
    const clear = wilsonInterval(0.3, 60);
    expect(clear[1]).toBeLessThan(0.5);
    expect(notBetterReasons({ ...base, winRateVsParent: 0.3, winRateInterval: clear })).toEqual([
      `the reward model prefers the parent (win rate 0.30, 95% interval [${clear[0].toFixed(2)}, ${clear[1].toFixed(2)}])`,
    ]);
    // The same rule for each member of an ensemble.
    expect(
      notBetterReasons({
        ...base,
        winRateInterval: wilsonInterval(0.6, 60),
        ensembleWinRates: [0.6, 0.47, 0.3],
        ensembleIntervals: [wilsonInterval(0.6, 60), noisy, clear],
      }),
    ).toEqual(['1 of the reward-model ensemble prefer the parent']);
  });
});

describe('reward-model ensemble (uncertainty-weighted)', () => {
  /** A member that scores responses from a table. */
  const member = (table: Record<string, number>) => ({
    score: (items: { prompt: string; response: string }[]) => items.map((item) => table[item.response]!),
  });

  it('scores the mean minus λ times the members’ variance, worked by hand', () => {
    const ensemble = new EnsembleScorer(
      [
        member({ agreed: 1, disputed: 3 }),
        member({ agreed: 1, disputed: -1 }),
        member({ agreed: 1, disputed: 1 }),
      ],
      0.5,
    );
    // agreed: mean 1, variance 0 → 1. disputed: mean 1, variance (4 + 4 + 0)/3 = 8/3 → 1 − 4/3.
    const [agreed, disputed] = ensemble.score([
      { prompt: 'p', response: 'agreed' },
      { prompt: 'p', response: 'disputed' },
    ]);
    expect(agreed).toBeCloseTo(1, 12);
    expect(disputed).toBeCloseTo(1 - 4 / 3, 12);
    // With λ = 0 it is the plain mean: both 1.
    expect(
      new EnsembleScorer(ensemble.members, 0).score([{ prompt: 'p', response: 'disputed' }])[0],
    ).toBeCloseTo(1, 12);
  });

  it('stops a policy that over-optimizes one member: the exploit one member loves scores below an agreed answer', () => {
    // Member 1 was fooled into paying for length; members 2 and 3 were not.
    const members = [
      member({ right: 1, 'right but padded': 4 }),
      member({ right: 1, 'right but padded': 0.5 }),
      member({ right: 1, 'right but padded': 0.4 }),
    ];
    const single = members[0]!.score([{ prompt: 'p', response: 'right but padded' }])[0]!;
    expect(single).toBeGreaterThan(1);
    const [right, padded] = new EnsembleScorer(members, 1).score([
      { prompt: 'p', response: 'right' },
      { prompt: 'p', response: 'right but padded' },
    ]);
    expect(padded).toBeLessThan(right!);
    expect(() => new EnsembleScorer([], 1)).toThrow(/at least one/);
  });
});
