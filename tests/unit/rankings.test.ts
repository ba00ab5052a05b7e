// Rankings: ranks, the shown order, rank-to-pairs expansion, Kendall's W and tau, on hand-checked
// examples.
import { describe, expect, it } from 'vitest';
import {
  choiceBetween,
  competitionRanks,
  hasTies,
  kendallTau,
  kendallW,
  rankingPairs,
  shownOrder,
  shownRanks,
  storedRanks,
} from '../../core/ranking/rankings.js';
import { rankingExamples, toPreferencePairs } from '../../trainer/preferences.js';

describe('ranks', () => {
  it('are read for their order only and stored as standard competition ranks', () => {
    expect(competitionRanks([1, 2, 3, 4])).toEqual([1, 2, 3, 4]);
    expect(competitionRanks([2, 4, 1, 2])).toEqual([2, 4, 1, 2]);
    expect(competitionRanks([1, 1, 2, 3])).toEqual([1, 1, 3, 4]); // dense ranks become 1224
    expect(competitionRanks([5, 5, 5])).toEqual([1, 1, 1]);
    expect(hasTies([1, 1, 3])).toBe(true);
    expect(hasTies([3, 1, 2])).toBe(false);
  });

  it('go from shown order to stored order and back through the lease’s permutation', () => {
    for (const k of [3, 4, 9]) {
      const shown = shownOrder('7f1c1a9e-2a43-4ad0-8a0f-3d5a3b8e9c01', k);
      expect([...shown].sort()).toEqual(Array.from({ length: k }, (_, i) => i));
      expect(shownOrder('7f1c1a9e-2a43-4ad0-8a0f-3d5a3b8e9c01', k)).toEqual(shown); // stable
      const ranksAsShown = competitionRanks(Array.from({ length: k }, (_, i) => (i * 7) % k));
      expect(shownRanks(storedRanks(ranksAsShown, shown), shown)).toEqual(ranksAsShown);
    }
    // Different leases show different orders (not always the identity).
    const orders = new Set(Array.from({ length: 20 }, (_, i) => shownOrder(`lease-${i}`, 4).join()));
    expect(orders.size).toBeGreaterThan(5);
  });
});

describe('rank-to-pairs expansion', () => {
  it('gives K(K-1)/2 pairs with the better response chosen and ties kept as ties', () => {
    // Stored ranks: response 0 second, 1 first, 2 and 3 tied third.
    const pairs = rankingPairs([2, 1, 3, 3]);
    expect(pairs).toEqual([
      { a: 0, b: 1, choice: 'B' },
      { a: 0, b: 2, choice: 'A' },
      { a: 0, b: 3, choice: 'A' },
      { a: 1, b: 2, choice: 'A' },
      { a: 1, b: 3, choice: 'A' },
      { a: 2, b: 3, choice: 'TIE' },
    ]);
    for (const k of [3, 4, 5, 9])
      expect(rankingPairs(Array.from({ length: k }, (_, i) => i + 1))).toHaveLength((k * (k - 1)) / 2);
    expect(choiceBetween(1, 2)).toBe('A');
    expect(choiceBetween(3, 2)).toBe('B');
    expect(choiceBetween(2, 2)).toBe('TIE');
  });
});

describe("Kendall's W and tau", () => {
  it('W is 1 for identical rankings, 0 for orders that cancel, and matches a hand computation', () => {
    expect(
      kendallW([
        [1, 2, 3, 4],
        [1, 2, 3, 4],
        [1, 2, 3, 4],
      ]),
    ).toBeCloseTo(1, 12);
    expect(
      kendallW([
        [1, 2, 3],
        [3, 2, 1],
      ]),
    ).toBeCloseTo(0, 12);
    // m = 3, K = 3: rank sums 4, 6, 8 (mean 6): S = 8; W = 12·8 / (9·24) = 0.4444…
    expect(
      kendallW([
        [1, 2, 3],
        [2, 1, 3],
        [1, 3, 2],
      ]),
    ).toBeCloseTo(96 / 216, 12);
    // With a tie: rater 2 ties items 1 and 2 (mid-ranks 1.5, 1.5, 3). Sums 2.5, 3.5, 6 (mean 4):
    // S = 2.25 + 0.25 + 4 = 6.5; T = 2³ − 2 = 6; W = 12·6.5 / (4·24 − 2·6) = 78 / 84.
    expect(
      kendallW([
        [1, 2, 3],
        [1, 1, 3],
      ]),
    ).toBeCloseTo(78 / 84, 12);
    expect(kendallW([[1, 2, 3]])).toBeNull();
  });

  it('tau-b is +1, −1 and a hand-checked value with ties', () => {
    expect(kendallTau([1, 2, 3, 4], [1, 2, 3, 4])).toBe(1);
    expect(kendallTau([1, 2, 3, 4], [4, 3, 2, 1])).toBe(-1);
    // x = 1 2 3 4, y = 1 1 3 4: pairs (0,1) tied in y; 5 concordant, 0 discordant.
    // tau-b = 5 / sqrt(6 · 5).
    expect(kendallTau([1, 2, 3, 4], [1, 1, 3, 4])).toBeCloseTo(5 / Math.sqrt(30), 12);
    // One swap of four: 5 concordant, 1 discordant: (5 − 1) / 6.
    expect(kendallTau([1, 2, 3, 4], [2, 1, 3, 4])).toBeCloseTo(4 / 6, 12);
    expect(kendallTau([1, 1, 1], [1, 2, 3])).toBeNull();
  });
});

describe('rankings as the reward model learns from them', () => {
  it('are one element of the loss: K(K-1)/2 pairs sharing the ranking’s weight and prompt', () => {
    const examples = rankingExamples({
      prompt: 'p',
      promptId: 'prompt-1',
      texts: ['w', 'x', 'y', 'z'],
      ranks: [2, 1, 3, 3],
      weight: 0.9,
    });
    expect(examples).toHaveLength(6);
    expect(examples.map((e) => [e.responseA, e.responseB, e.choice])).toEqual([
      ['w', 'x', 'B'],
      ['w', 'y', 'A'],
      ['w', 'z', 'A'],
      ['x', 'y', 'A'],
      ['x', 'z', 'A'],
      ['y', 'z', 'TIE'],
    ]);
    expect(examples.reduce((total, e) => total + e.weight!, 0)).toBeCloseTo(0.9, 12);
    expect(new Set(examples.map((e) => e.promptId))).toEqual(new Set(['prompt-1']));
    // The Bradley-Terry pairs: the tie says nothing about direction.
    const { pairs, ties } = toPreferencePairs(examples, null);
    expect(pairs.map((pair) => `${pair.chosen}>${pair.rejected}`)).toEqual([
      'x>w',
      'w>y',
      'w>z',
      'x>y',
      'x>z',
    ]);
    expect(ties).toBe(1);
  });
});
