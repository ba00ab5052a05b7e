// A version's win rate against its parent from raters' votes on their comparisons, with a 95%
// interval, and the promotion decisions it and the reward model's win rate lead to. Pure functions.
//
// Score: a vote for the new version counts 1, one for the parent 0, a tie ½. BOTH_BAD counts as a
// tie as well: a rater who rejects both responses prefers neither, and counting it as ½ (rather
// than leaving it out) keeps it as evidence of no difference, which pulls the rate toward 0.5.
//
// Interval: Wilson's score interval, not a bootstrap. It is closed-form and deterministic (the
// page, the API and the scheduler that promotes all see the same bounds), keeps to [0, 1], and
// stays honest where promotion decisions are made: with few votes and with all of them one way
// (ten wins of ten: [0.72, 1], where a bootstrap or the normal approximation would give [1, 1]).
// Two refinements over the textbook binomial form, both reducing to it when they do not apply:
// - Ties: a score of ½ varies less than a win or a loss. With tie share τ the variance of one vote
//   is p(1 − p) − τ/4 (instead of p(1 − p)); the interval solves Wilson's score equation with that
//   variance. τ is shrunk toward 0 by z² pseudo-votes, so a few ties do not claim certainty.
// - Votes on the same comparison (several raters, one pair of responses) are not independent: the
//   votes count as n / DEFF, Kish's design effect DEFF = 1 + (m̄ − 1)ρ, with m̄ votes per comparison
//   and ρ their intra-class correlation (one-way ANOVA estimator, clamped to [0, 1]; 1 when it
//   cannot be estimated: a single comparison, or every vote the same). Comparisons judged once
//   count fully; comparisons whose raters always agree count once each.

/** z for a two-sided 95% interval. */
export const Z95 = 1.959963984540054;

/** One comparison's votes, from the new version's side. */
export interface ComparisonVotes {
  wins: number;
  losses: number;
  ties: number;
  bothBad: number;
}

export interface WinRate {
  /** Votes counted (wins + losses + ties + bothBad). */
  votes: number;
  wins: number;
  losses: number;
  ties: number;
  bothBad: number;
  /** Comparisons with at least one counted vote. */
  comparisons: number;
  /** (wins + ½ (ties + bothBad)) / votes; null without votes. */
  winRate: number | null;
  /** The 95% interval; [0, 1] without votes. */
  low: number;
  high: number;
  /** Votes as independent ones: votes / design effect. */
  effectiveVotes: number;
  designEffect: number;
}

const score = { win: 1, loss: 0, tie: 0.5 } as const;

/** The scores of a comparison's votes (1, 0 or ½ each). */
function scores(c: ComparisonVotes): number[] {
  return [
    ...Array<number>(c.wins).fill(score.win),
    ...Array<number>(c.losses).fill(score.loss),
    ...Array<number>(c.ties + c.bothBad).fill(score.tie),
  ];
}

/**
 * Intra-class correlation of scores grouped by comparison (one-way ANOVA estimator), in [0, 1];
 * 0 when every group has one vote (no correlation to estimate, none to correct), 1 when it cannot
 * be estimated otherwise.
 */
export function intraclassCorrelation(groups: readonly (readonly number[])[]): number {
  const nonEmpty = groups.filter((g) => g.length > 0);
  const k = nonEmpty.length;
  const n = nonEmpty.reduce((sum, g) => sum + g.length, 0);
  if (n === k) return 0;
  if (k < 2) return 1;
  const mean = nonEmpty.reduce((sum, g) => sum + g.reduce((a, b) => a + b, 0), 0) / n;
  let between = 0;
  let within = 0;
  for (const g of nonEmpty) {
    const groupMean = g.reduce((a, b) => a + b, 0) / g.length;
    between += g.length * (groupMean - mean) ** 2;
    for (const y of g) within += (y - groupMean) ** 2;
  }
  const msb = between / (k - 1);
  const msw = within / (n - k);
  const m0 = (n - nonEmpty.reduce((sum, g) => sum + g.length ** 2, 0) / n) / (k - 1);
  const denominator = msb + (m0 - 1) * msw;
  if (!(denominator > 0)) return 1;
  return Math.min(1, Math.max(0, (msb - msw) / denominator));
}

/**
 * Wilson's score interval for a mean score p̂ of n votes with tie share τ: the p with
 * (p̂ − p)² = z² (p(1 − p) − τ/4) / n. With τ = 0 it is Wilson's binomial interval.
 */
export function wilsonInterval(p: number, n: number, tieShare = 0, z = Z95): [number, number] {
  if (!(n > 0)) return [0, 1];
  const z2n = (z * z) / n;
  const a = 1 + z2n;
  const b = -(2 * p + z2n);
  const c = p * p + (z2n * tieShare) / 4;
  const root = Math.sqrt(Math.max(0, b * b - 4 * a * c));
  const clamp = (x: number) => Math.min(1, Math.max(0, x));
  return [clamp((-b - root) / (2 * a)), clamp((-b + root) / (2 * a))];
}

/** The win rate of a new version against its parent from the votes on their comparisons. */
export function winRateFromVotes(comparisons: readonly ComparisonVotes[], z = Z95): WinRate {
  const judged = comparisons.filter((c) => c.wins + c.losses + c.ties + c.bothBad > 0);
  const sum = (key: keyof ComparisonVotes) => judged.reduce((total, c) => total + c[key], 0);
  const [wins, losses, ties, bothBad] = [sum('wins'), sum('losses'), sum('ties'), sum('bothBad')];
  const votes = wins + losses + ties + bothBad;
  if (votes === 0) {
    return {
      votes,
      wins,
      losses,
      ties,
      bothBad,
      comparisons: 0,
      winRate: null,
      low: 0,
      high: 1,
      effectiveVotes: 0,
      designEffect: 1,
    };
  }
  const winRate = (wins + (ties + bothBad) / 2) / votes;
  const rho = intraclassCorrelation(judged.map(scores));
  const designEffect = 1 + (votes / judged.length - 1) * rho;
  const effectiveVotes = votes / designEffect;
  const tieShare = ((ties + bothBad) / votes) * (effectiveVotes / (effectiveVotes + z * z));
  const [low, high] = wilsonInterval(winRate, effectiveVotes, tieShare, z);
  return {
    votes,
    wins,
    losses,
    ties,
    bothBad,
    comparisons: judged.length,
    winRate,
    low,
    high,
    effectiveVotes,
    designEffect,
  };
}

/**
 * What a rule says about promoting a version: `promote`; `not-yet` (more votes may settle it);
 * `below-margin` (the reward model's fixed win rate is over 0.5 but short of the margin); `worse`
 * (its parent is preferred); `unavailable` (nothing to judge by).
 */
export type PromotionDecision = 'promote' | 'not-yet' | 'below-margin' | 'worse' | 'unavailable';

export interface Verdict {
  decision: PromotionDecision;
  /** The decision in words, with the numbers it rests on. */
  reason: string;
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/**
 * The human rule: promote once at least `minVotes` votes are counted and the lower end of the
 * 95% interval is above `margin`; worse once the upper end is below 0.5.
 */
export function humanVerdict(rate: WinRate, rule: { margin: number; minVotes: number }): Verdict {
  if (rate.votes < rule.minVotes) {
    return {
      decision: 'not-yet',
      reason: `${rate.votes} of the ${rule.minVotes} votes needed.`,
    };
  }
  const interval = `95% interval ${pct(rate.low)}–${pct(rate.high)} on ${rate.votes} votes`;
  if (rate.low > rule.margin) {
    return { decision: 'promote', reason: `Raters prefer it: ${interval}, above ${pct(rule.margin)}.` };
  }
  if (rate.high < 0.5) {
    return { decision: 'worse', reason: `Raters prefer its parent: ${interval}, below 50%.` };
  }
  return {
    decision: 'not-yet',
    reason: `Not clear yet: ${interval} reaches down to ${pct(rule.margin)} or below.`,
  };
}

/** The reward-model rule: promote when its win rate against the parent is at least 0.5 + margin. */
export function rewardModelVerdict(winRate: number | null, margin: number): Verdict {
  if (winRate === null || !Number.isFinite(winRate)) {
    return { decision: 'unavailable', reason: 'No reward-model win rate against a parent.' };
  }
  const threshold = 0.5 + margin;
  if (winRate >= threshold) {
    return {
      decision: 'promote',
      reason: `The reward model prefers it ${pct(winRate)} of the time, at least ${pct(threshold)}.`,
    };
  }
  if (winRate < 0.5) {
    return { decision: 'worse', reason: `The reward model prefers its parent (${pct(winRate)}).` };
  }
  return {
    decision: 'below-margin',
    reason: `The reward model prefers it ${pct(winRate)} of the time, short of ${pct(threshold)}.`,
  };
}
