// Rater reliability, estimated together with the comparisons' true outcomes: a Dawid–Skene model
// (1979) with one reliability per rater, fitted by EM from all judgments and the gold answers.
// Pure functions; the judgments come in as (comparison, rater, label) triples.
//
// Model. Each comparison i has a true outcome z_i ∈ {A, B, TIE} (BOTH_BAD counts as TIE here: it
// says neither side is better, which is what the reward model reads from it), drawn from a class
// prior π. Rater r knows the outcome with probability p_r and answers it; otherwise the rater
// guesses, from a guessing distribution g_r of their own over the labels:
//   P(label l | z) = p_r·[l = z] + (1 − p_r)·g_r(l).
// A rater who clicks at random is p_r = 0 with g_r = (½, ½, 0); a careful one p_r near 1. A rater
// who inverts the sides agrees with the truth less often than guessing would: p_r is bounded at
// 0, and their judgments carry no weight. (A full confusion matrix could read an inverter's
// answers backwards; a rater who does that is better excluded than decoded.)
//
// EM. E-step: each comparison's posterior q_i(z) ∝ π(z)·Π_j P(l_j | z) over its judgments; gold
// comparisons keep their known answer (q one-hot), which anchors the raters' estimates. M-step,
// with a latent "knew or guessed" for each judgment, P(knew) = p·q(l) / (p·q(l) + (1 − p)·g(l)):
// p_r = (expected knowing + α − 1) / (n_r + α + β − 2) (MAP under a Beta(α, β) prior), g_r the
// expected guesses' label shares (plus a small Dirichlet count), π the mean posterior of the
// non-gold comparisons. Started from the majority vote (and gold), so the solution found is the
// one where raters mostly know, not its mirror image.
//
// Uncertainty. Each rater's p_r gets the Beta(α + k_r, β + n_r − k_r) posterior with k_r their
// expected knowing count: an interval from soft counts, which ignores the uncertainty of the
// comparisons' outcomes themselves (it is narrower than a full Bayesian fit would give).
//
// Weights. A judgment's weight for training is how much more often its direction is right than a
// coin flip: w = max(0, 2·P(z = l | data, z ≠ TIE) − 1) for A and B, 0 for ties (the reward
// model leaves those out anyway). A random rater's judgments then weigh ~0, an inverter's 0, a
// careful rater's ~1, and a judgment that its comparison's other raters contradict is weighed down.

export type Label = 'A' | 'B' | 'TIE';
const LABELS: readonly Label[] = ['A', 'B', 'TIE'];
const index = (label: Label): number => (label === 'A' ? 0 : label === 'B' ? 1 : 2);

/** A judgment's label for this model: BOTH_BAD as TIE (neither side is better). */
export function labelOf(choice: 'A' | 'B' | 'TIE' | 'BOTH_BAD'): Label {
  return choice === 'BOTH_BAD' ? 'TIE' : choice;
}

export interface RatedJudgment {
  comparisonId: string;
  raterId: string;
  label: Label;
}

export interface ReliabilityOptions {
  /** Beta(α, β) prior on each rater's p; default (2, 2): centred on ½, worth two judgments each way. */
  alpha?: number;
  beta?: number;
  /** Dirichlet count added to each label of a rater's guessing distribution. Default 0.5. */
  guessPrior?: number;
  /** EM stops when no p moves by more than this. Default 1e-6. */
  tolerance?: number;
  maxIterations?: number;
  /** Interval coverage, default 0.95. */
  confidence?: number;
}

export interface RaterReliability {
  raterId: string;
  judgments: number;
  /** Gold comparisons this rater judged. */
  goldJudged: number;
  /** Judgments on comparisons someone else also judged. */
  overlapping: number;
  /** p_r: the probability that the rater knew the outcome rather than guessed (MAP). */
  reliability: number;
  /** The Beta posterior's central interval for p_r. */
  low: number;
  high: number;
  /** The rater's guessing distribution over A, B, TIE. */
  guess: Record<Label, number>;
}

export interface ReliabilityFit {
  raters: RaterReliability[];
  /** Posterior over each comparison's outcome, A, B, TIE. */
  outcomes: Map<string, Record<Label, number>>;
  /** Class prior over outcomes. */
  prior: Record<Label, number>;
  iterations: number;
  converged: boolean;
  /**
   * Comparisons that tell raters apart: gold ones judged, and ones with two or more judgments.
   * Fewer than a few dozen and the estimates are mostly the prior.
   */
  informative: number;
}

const record = (v: readonly number[]): Record<Label, number> => ({ A: v[0]!, B: v[1]!, TIE: v[2]! });

export function fitReliability(
  judgments: RatedJudgment[],
  gold: Map<string, Label> = new Map(),
  options: ReliabilityOptions = {},
): ReliabilityFit {
  const alpha = options.alpha ?? 2;
  const beta = options.beta ?? 2;
  const guessPrior = options.guessPrior ?? 0.5;
  const tolerance = options.tolerance ?? 1e-6;
  const maxIterations = options.maxIterations ?? 500;
  const confidence = options.confidence ?? 0.95;

  // Dense indices: comparisons, raters, and each judgment as (item, rater, label).
  const items = new Map<string, number>();
  const raters = new Map<string, number>();
  const jItem: number[] = [];
  const jRater: number[] = [];
  const jLabel: number[] = [];
  for (const j of judgments) {
    if (!items.has(j.comparisonId)) items.set(j.comparisonId, items.size);
    if (!raters.has(j.raterId)) raters.set(j.raterId, raters.size);
    jItem.push(items.get(j.comparisonId)!);
    jRater.push(raters.get(j.raterId)!);
    jLabel.push(index(j.label));
  }
  const nItems = items.size;
  const nRaters = raters.size;
  const itemIds = [...items.keys()];
  const goldOf: (number | null)[] = itemIds.map((id) => {
    const g = gold.get(id);
    return g === undefined ? null : index(g);
  });
  const byItem: number[][] = Array.from({ length: nItems }, () => []);
  jItem.forEach((i, j) => byItem[i]!.push(j));

  // Start: each comparison's posterior from its gold answer or its vote shares (the majority).
  const q = new Float64Array(nItems * 3);
  for (let i = 0; i < nItems; i++) {
    const g = goldOf[i];
    if (g !== null && g !== undefined) {
      q[i * 3 + g] = 1;
      continue;
    }
    for (const j of byItem[i]!) q[i * 3 + jLabel[j]!]! += 1;
    const total = byItem[i]!.length;
    for (let k = 0; k < 3; k++) q[i * 3 + k] = q[i * 3 + k]! / total;
  }

  const p = new Float64Array(nRaters);
  const g = new Float64Array(nRaters * 3);
  const knowing = new Float64Array(nRaters);
  const count = new Float64Array(nRaters);
  const prior = new Float64Array(3);
  let iterations = 0;
  let converged = false;
  let first = true;

  const mStep = () => {
    // Expected knowing count and guessed labels per rater, from the current posteriors.
    knowing.fill(0);
    count.fill(0);
    const guessed = new Float64Array(nRaters * 3).fill(guessPrior);
    for (let j = 0; j < jItem.length; j++) {
      const r = jRater[j]!;
      const l = jLabel[j]!;
      const ql = q[jItem[j]! * 3 + l]!;
      // On the first pass there is no p or g yet: a judgment matching the start's posterior
      // counts as known to that extent.
      const known = first ? ql : (p[r]! * ql) / Math.max(1e-300, p[r]! * ql + (1 - p[r]!) * g[r * 3 + l]!);
      knowing[r] = knowing[r]! + known;
      count[r] = count[r]! + 1;
      guessed[r * 3 + l] = guessed[r * 3 + l]! + (1 - known);
    }
    let moved = 0;
    for (let r = 0; r < nRaters; r++) {
      const next = Math.min(1, Math.max(0, (knowing[r]! + alpha - 1) / (count[r]! + alpha + beta - 2)));
      moved = Math.max(moved, Math.abs(next - p[r]!));
      p[r] = next;
      // A rater who never guessed (and no Dirichlet count) guesses uniformly.
      const total = guessed[r * 3]! + guessed[r * 3 + 1]! + guessed[r * 3 + 2]!;
      for (let k = 0; k < 3; k++) g[r * 3 + k] = total > 0 ? guessed[r * 3 + k]! / total : 1 / 3;
    }
    // Class prior from the comparisons without a known answer (gold is chosen, not drawn).
    prior.fill(1);
    for (let i = 0; i < nItems; i++)
      if (goldOf[i] === null) for (let k = 0; k < 3; k++) prior[k] = prior[k]! + q[i * 3 + k]!;
    const total = prior[0]! + prior[1]! + prior[2]!;
    for (let k = 0; k < 3; k++) prior[k] = prior[k]! / total;
    first = false;
    return moved;
  };

  const eStep = () => {
    for (let i = 0; i < nItems; i++) {
      if (goldOf[i] !== null) continue;
      // In logs: a comparison with many judgments would underflow a product.
      const log = [Math.log(prior[0]!), Math.log(prior[1]!), Math.log(prior[2]!)];
      for (const j of byItem[i]!) {
        const r = jRater[j]!;
        const l = jLabel[j]!;
        for (let z = 0; z < 3; z++) {
          const likelihood = p[r]! * (l === z ? 1 : 0) + (1 - p[r]!) * g[r * 3 + l]!;
          log[z] = log[z]! + Math.log(Math.max(1e-300, likelihood));
        }
      }
      const top = Math.max(...log);
      const e = log.map((v) => Math.exp(v - top));
      const total = e[0]! + e[1]! + e[2]!;
      for (let z = 0; z < 3; z++) q[i * 3 + z] = e[z]! / total;
    }
  };

  while (iterations < maxIterations) {
    const moved = mStep();
    iterations++;
    eStep();
    if (iterations > 1 && moved < tolerance) {
      converged = true;
      break;
    }
  }
  // The reported p, g and k_r match the final posteriors.
  mStep();

  const goldJudged = new Float64Array(nRaters);
  const overlapping = new Float64Array(nRaters);
  for (let j = 0; j < jItem.length; j++) {
    const i = jItem[j]!;
    if (goldOf[i] !== null) goldJudged[jRater[j]!] = goldJudged[jRater[j]!]! + 1;
    if (byItem[i]!.length > 1) overlapping[jRater[j]!] = overlapping[jRater[j]!]! + 1;
  }
  const tail = (1 - confidence) / 2;
  const raterIds = [...raters.keys()];
  const outcomes = new Map<string, Record<Label, number>>();
  itemIds.forEach((id, i) => outcomes.set(id, record([q[i * 3]!, q[i * 3 + 1]!, q[i * 3 + 2]!])));
  return {
    raters: raterIds.map((raterId, r) => {
      const a = alpha + knowing[r]!;
      const b = beta + count[r]! - knowing[r]!;
      return {
        raterId,
        judgments: count[r]!,
        goldJudged: goldJudged[r]!,
        overlapping: overlapping[r]!,
        reliability: p[r]!,
        low: betaQuantile(tail, a, b),
        high: betaQuantile(1 - tail, a, b),
        guess: record([g[r * 3]!, g[r * 3 + 1]!, g[r * 3 + 2]!]),
      };
    }),
    outcomes,
    prior: record([...prior]),
    iterations,
    converged,
    informative: byItem.filter((js, i) => js.length > 1 || goldOf[i] !== null).length,
  };
}

/**
 * A judgment's training weight: how much more often its direction is right than a coin flip,
 * max(0, 2·P(z = l | z ≠ TIE) − 1) under the fit's posterior for its comparison; 0 for TIE.
 */
export function judgmentWeight(outcome: Record<Label, number> | undefined, label: Label): number {
  if (label === 'TIE' || !outcome) return label === 'TIE' ? 0 : 1;
  const directional = outcome.A + outcome.B;
  if (directional <= 0) return 0;
  return Math.max(0, (2 * outcome[label]) / directional - 1);
}

/** Weights for judgments in order, from a fit over (at least) them. */
export function judgmentWeights(fit: ReliabilityFit, judgments: RatedJudgment[]): number[] {
  return judgments.map((j) => judgmentWeight(fit.outcomes.get(j.comparisonId), j.label));
}

export { LABELS as RELIABILITY_LABELS };

// ---------------------------------------------------------------------------------------------
// The Beta distribution's quantiles: the regularized incomplete beta by its continued fraction
// (Numerical Recipes' betacf, Lentz's method), inverted by bisection.

function logBeta(a: number, b: number): number {
  return logGamma(a) + logGamma(b) - logGamma(a + b);
}

/** ln Γ(x) for x > 0, Lanczos (g = 7, n = 9), accurate to ~1e-15. */
function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const y = x - 1;
  let s = c[0]!;
  for (let i = 1; i < 9; i++) s += c[i]! / (y + i);
  const t = y + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (y + 0.5) * Math.log(t) - t + Math.log(s);
}

function betaContinuedFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return h;
}

/** I_x(a, b), the Beta(a, b) distribution function at x. */
export function betaCdf(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(a * Math.log(x) + b * Math.log(1 - x) - logBeta(a, b));
  return x < (a + 1) / (a + b + 2)
    ? (front * betaContinuedFraction(x, a, b)) / a
    : 1 - (front * betaContinuedFraction(1 - x, b, a)) / b;
}

/** The Beta(a, b) quantile at probability u, by bisection (to 1e-10). */
export function betaQuantile(u: number, a: number, b: number): number {
  let lo = 0;
  let hi = 1;
  for (let k = 0; k < 60; k++) {
    const mid = (lo + hi) / 2;
    if (betaCdf(mid, a, b) < u) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/**
 * Below this many informative comparisons (judged by two raters or more, or gold) the raters'
 * reliabilities are mostly their prior, so rounds do not weight by them.
 */
export const MIN_INFORMATIVE_COMPARISONS = 30;

/**
 * Training weights for judgments (A, B, TIE or BOTH_BAD by rater, in order), or null when too few
 * comparisons tell raters apart; judgments without a rater (imported) keep weight 1.
 */
export function reliabilityWeights(
  judgments: { comparisonId: string; raterId: string | null; choice: 'A' | 'B' | 'TIE' | 'BOTH_BAD' }[],
  gold: Map<string, Label> = new Map(),
): { weights: number[] | null; fit: ReliabilityFit } {
  const rated = judgments.flatMap((j) =>
    j.raterId === null
      ? []
      : [{ comparisonId: j.comparisonId, raterId: j.raterId, label: labelOf(j.choice) }],
  );
  const fit = fitReliability(rated, gold);
  if (fit.informative < MIN_INFORMATIVE_COMPARISONS) return { weights: null, fit };
  const weights = judgments.map((j) =>
    j.raterId === null ? 1 : judgmentWeight(fit.outcomes.get(j.comparisonId), labelOf(j.choice)),
  );
  return { weights, fit };
}
