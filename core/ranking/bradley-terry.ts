// A leaderboard from pairwise votes, Chatbot Arena's method: Bradley-Terry strengths fitted by
// maximum likelihood, 95% intervals by bootstrap over the judgments, votes per item and the
// pairwise win-rate matrix. Pure functions; the data comes in as counts per (pair, outcome).
//
// Model: P(i beats j) = σ(θ_i − θ_j), θ the natural-log strengths. Choices made here:
// - Ties count as half a win for each side, as Arena does: the likelihood has s_ij = wins_ij + ½
//   ties_ij successes of n_ij trials for each pair. BOTH_BAD counts as a tie by default (Arena's
//   "tie (bothbad)"); `bothBad: 'exclude'` leaves those judgments out instead.
// - Fit: Newton's method on the log-likelihood, with a backtracking line search, per connected
//   part of the comparison graph. A Gaussian prior of standard deviation 10 on each θ (L2 penalty
//   λ = 0.01, `l2`) keeps finite the strength of an item that won every vote it got, which has no
//   finite maximum-likelihood estimate; with a few votes or more its pull is negligible. `l2: 0`
//   gives the plain maximum-likelihood fit.
// - Identifiability: the likelihood depends only on differences, so strengths are reported
//   centred (mean θ = 0 over the items ranked) and on Arena's Elo-like scale:
//   rating = 1000 + 400·log10(e)·θ, so a 400-point gap means 10:1 odds.
// - Disconnected graphs: items in different parts of the comparison graph cannot be put on one
//   scale. Only the part with the most judgments is ranked; items elsewhere, and items without
//   votes, get no strength and `connected: false`.
// - Intervals: percentile intervals of `resamples` bootstrap fits (default 1000), each a
//   resample of the judgments with replacement, drawn as multinomial counts over the
//   (pair, outcome) cells, which is the same distribution as resampling judgment by judgment.
//   Seeded, so the same data and seed give the same intervals.

export type Outcome = 'A' | 'B' | 'TIE' | 'BOTH_BAD';

/** Judgments between items `a` and `b` (indices) with one outcome; A = `a` won. */
export interface PairCount {
  a: number;
  b: number;
  outcome: Outcome;
  count: number;
}

export interface FitOptions {
  /** L2 penalty on the log-strengths (a Gaussian prior of variance 1/l2). Default 0.01. */
  l2?: number;
  /** BOTH_BAD as a tie (default) or left out. */
  bothBad?: 'tie' | 'exclude';
}

export interface LeaderboardOptions extends FitOptions {
  /** Bootstrap resamples for the intervals; 0 gives no intervals. Default 1000. */
  resamples?: number;
  seed?: number;
  /** Interval coverage, default 0.95. */
  confidence?: number;
}

export const DEFAULT_L2 = 0.01;
export const DEFAULT_RESAMPLES = 1000;
/** Rating points per unit of natural-log strength: 400 points = a factor of 10 in odds. */
export const RATING_SCALE = 400 / Math.LN10;
/** The mean rating of the ranked items. */
export const RATING_ANCHOR = 1000;

export const toRating = (logStrength: number): number => RATING_ANCHOR + RATING_SCALE * logStrength;

/** One unordered pair's games: `score` is item i's wins plus half its ties against j. */
interface PairGames {
  i: number;
  j: number;
  games: number;
  score: number;
}

// ---------------------------------------------------------------------------------------------
// Random numbers: seeded, and multinomial counts for the bootstrap.

/** A seeded uniform generator on [0, 1): sfc32, its state filled by splitmix32 from the seed. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  const splitmix = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix();
  let b = splitmix();
  let c = splitmix();
  let d = splitmix();
  return () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
}

const LOG_FACTORIALS: number[] = [0];
for (let k = 1; k <= 1024; k++) LOG_FACTORIALS.push(LOG_FACTORIALS[k - 1]! + Math.log(k));

/** ln(k!), from a table up to 1024 and Stirling's series above (error below 1e-15). */
export function logFactorial(k: number): number {
  if (k <= 1024) return LOG_FACTORIALS[k]!;
  const inv = 1 / k;
  const inv2 = inv * inv;
  return (
    k * Math.log(k) - k + 0.5 * Math.log(2 * Math.PI * k) + inv * (1 / 12 - inv2 * (1 / 360 - inv2 / 1260))
  );
}

/**
 * A binomial(n, p) draw: inversion while n·p < 10, else Hörmann's BTRS (transformed rejection
 * with squeeze, 1993), exact and O(1) on average whatever n.
 */
export function binomial(n: number, p: number, random: () => number): number {
  if (n <= 0 || p <= 0) return 0;
  if (p >= 1) return n;
  if (p > 0.5) return n - binomial(n, 1 - p, random);
  const q = 1 - p;
  if (n * p < 10) {
    const s = p / q;
    const a = (n + 1) * s;
    let r = Math.pow(q, n);
    let u = random();
    let x = 0;
    while (u > r && x < n) {
      u -= r;
      x++;
      r *= a / x - s;
    }
    return x;
  }
  const spq = Math.sqrt(n * p * q);
  const b = 1.15 + 2.53 * spq;
  const a = -0.0873 + 0.0248 * b + 0.01 * p;
  const c = n * p + 0.5;
  const vr = 0.92 - 4.2 / b;
  const alpha = (2.83 + 5.1 / b) * spq;
  const lpq = Math.log(p / q);
  const m = Math.floor((n + 1) * p);
  const h = logFactorial(m) + logFactorial(n - m);
  for (;;) {
    const u = random() - 0.5;
    let v = random();
    const us = 0.5 - Math.abs(u);
    const k = Math.floor(((2 * a) / us + b) * u + c);
    if (k < 0 || k > n) continue;
    if (us >= 0.07 && v <= vr) return k;
    v = Math.log((v * alpha) / (a / (us * us) + b));
    if (v <= h - logFactorial(k) - logFactorial(n - k) + (k - m) * lpq) return k;
  }
}

/** Multinomial counts of `total` draws over cells with the given weights (conditional binomials). */
export function multinomial(total: number, weights: readonly number[], random: () => number): number[] {
  let left = total;
  let mass = weights.reduce((sum, w) => sum + w, 0);
  return weights.map((w) => {
    if (left <= 0 || mass <= 0) return 0;
    const drawn = w >= mass ? left : binomial(left, w / mass, random);
    left -= drawn;
    mass -= w;
    return drawn;
  });
}

// ---------------------------------------------------------------------------------------------
// The fit.

function outcomeScore(outcome: Outcome, bothBad: 'tie' | 'exclude'): number | null {
  if (outcome === 'A') return 1;
  if (outcome === 'B') return 0;
  if (outcome === 'TIE') return 0.5;
  return bothBad === 'tie' ? 0.5 : null;
}

/** Cells merged into one (i < j) entry per unordered pair; cells whose outcome is left out are skipped. */
function pairGames(counts: readonly PairCount[], weights: readonly number[], bothBad: 'tie' | 'exclude') {
  const byPair = new Map<string, PairGames>();
  counts.forEach((cell, index) => {
    const n = weights[index]!;
    const s = outcomeScore(cell.outcome, bothBad);
    if (n <= 0 || s === null || cell.a === cell.b) return;
    const [i, j, score] = cell.a < cell.b ? [cell.a, cell.b, s] : [cell.b, cell.a, 1 - s];
    const key = `${i},${j}`;
    const pair = byPair.get(key) ?? { i, j, games: 0, score: 0 };
    pair.games += n;
    pair.score += n * score;
    byPair.set(key, pair);
  });
  return [...byPair.values()];
}

/** Connected parts of the comparison graph: a label per item (items without games get -1). */
function components(n: number, pairs: readonly PairGames[]): number[] {
  const parent = Array.from({ length: n }, (_, i) => i);
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]!]!;
      x = parent[x]!;
    }
    return x;
  };
  const seen = new Array<boolean>(n).fill(false);
  for (const { i, j } of pairs) {
    seen[i] = seen[j] = true;
    parent[find(i)] = find(j);
  }
  return parent.map((_, i) => (seen[i] ? find(i) : -1));
}

const sigmoid = (x: number) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));
/** log σ(x), without overflow. */
const logSigmoid = (x: number) => (x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x)));

/** Solves A x = b for a symmetric positive definite A (Cholesky); A is overwritten. */
function solveSpd(a: Float64Array, b: Float64Array, m: number): Float64Array {
  for (let j = 0; j < m; j++) {
    let d = a[j * m + j]!;
    for (let k = 0; k < j; k++) d -= a[j * m + k]! ** 2;
    d = Math.sqrt(Math.max(d, 1e-300));
    a[j * m + j] = d;
    for (let i = j + 1; i < m; i++) {
      let s = a[i * m + j]!;
      for (let k = 0; k < j; k++) s -= a[i * m + k]! * a[j * m + k]!;
      a[i * m + j] = s / d;
    }
  }
  const y = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    let s = b[i]!;
    for (let k = 0; k < i; k++) s -= a[i * m + k]! * y[k]!;
    y[i] = s / a[i * m + i]!;
  }
  for (let i = m - 1; i >= 0; i--) {
    let s = y[i]!;
    for (let k = i + 1; k < m; k++) s -= a[k * m + i]! * y[k]!;
    y[i] = s / a[i * m + i]!;
  }
  return y;
}

export interface Fit {
  /** Log-strengths of the items in `members`, centred; NaN for the others. */
  theta: Float64Array;
  iterations: number;
  converged: boolean;
}

/**
 * The penalized maximum-likelihood strengths of `members` (one connected part), from `start`
 * when given. Newton steps on the negative log-likelihood plus (l2/2)·Σθ²; with l2 = 0 the
 * Hessian's null direction (a common shift) is filled by 11ᵀ/m, which leaves the mean unchanged.
 */
function fitPart(
  n: number,
  members: readonly number[],
  pairs: readonly PairGames[],
  l2: number,
  start?: Float64Array,
): Fit {
  const m = members.length;
  const slot = new Int32Array(n).fill(-1);
  members.forEach((item, k) => (slot[item] = k));
  const local = pairs
    .filter((p) => slot[p.i]! >= 0 && slot[p.j]! >= 0)
    .map((p) => ({ i: slot[p.i]!, j: slot[p.j]!, games: p.games, score: p.score }));
  const theta = new Float64Array(m);
  if (start) members.forEach((item, k) => (theta[k] = Number.isFinite(start[item]!) ? start[item]! : 0));
  const loss = (t: Float64Array) => {
    let value = 0;
    for (const p of local) {
      const d = t[p.i]! - t[p.j]!;
      value -= p.score * logSigmoid(d) + (p.games - p.score) * logSigmoid(-d);
    }
    for (let k = 0; k < m; k++) value += 0.5 * l2 * t[k]! ** 2;
    return value;
  };
  let current = loss(theta);
  let iterations = 0;
  let converged = m <= 1;
  while (!converged && iterations < 100) {
    iterations++;
    const gradient = new Float64Array(m);
    const hessian = new Float64Array(m * m);
    for (let k = 0; k < m; k++) {
      gradient[k] = l2 * theta[k]!;
      hessian[k * m + k] = l2 + (l2 === 0 ? 1 / m : 0);
      if (l2 === 0) for (let l = 0; l < m; l++) if (l !== k) hessian[k * m + l] = 1 / m;
    }
    for (const p of local) {
      const prob = sigmoid(theta[p.i]! - theta[p.j]!);
      const g = p.games * prob - p.score;
      gradient[p.i] = gradient[p.i]! + g;
      gradient[p.j] = gradient[p.j]! - g;
      const w = p.games * prob * (1 - prob);
      hessian[p.i * m + p.i] = hessian[p.i * m + p.i]! + w;
      hessian[p.j * m + p.j] = hessian[p.j * m + p.j]! + w;
      hessian[p.i * m + p.j] = hessian[p.i * m + p.j]! - w;
      hessian[p.j * m + p.i] = hessian[p.j * m + p.i]! - w;
    }
    const step = solveSpd(hessian, gradient, m);
    let size = 1;
    let next = new Float64Array(m);
    let value = Infinity;
    for (let tries = 0; tries < 40; tries++) {
      next = theta.map((t, k) => t - size * step[k]!);
      value = loss(next);
      if (value <= current + 1e-12 * Math.abs(current)) break;
      size /= 2;
    }
    const moved = Math.max(...next.map((t, k) => Math.abs(t - theta[k]!)));
    theta.set(next);
    current = Math.min(current, value);
    if (moved < 1e-9) converged = true;
  }
  // Without a prior, a finite maximum exists only when every item beat (or tied) one it can reach
  // back from: the graph of "scored against" edges is strongly connected (Ford 1957, Hunter 2004).
  if (l2 === 0 && !stronglyConnected(m, local)) converged = false;
  const mean = theta.reduce((sum, t) => sum + t, 0) / Math.max(m, 1);
  const out = new Float64Array(n).fill(NaN);
  members.forEach((item, k) => (out[item] = theta[k]! - mean));
  return { theta: out, iterations, converged };
}

/** Whether every item reaches every other along edges i → j where i scored against j. */
function stronglyConnected(m: number, pairs: readonly PairGames[]): boolean {
  const reachesAll = (forward: boolean) => {
    const next: number[][] = Array.from({ length: m }, () => []);
    for (const p of pairs) {
      if (p.score > 0) (forward ? next[p.i] : next[p.j])!.push(forward ? p.j : p.i);
      if (p.games - p.score > 0) (forward ? next[p.j] : next[p.i])!.push(forward ? p.i : p.j);
    }
    const seen = new Array<boolean>(m).fill(false);
    const stack = [0];
    seen[0] = true;
    while (stack.length > 0) {
      for (const k of next[stack.pop()!]!) {
        if (!seen[k]) {
          seen[k] = true;
          stack.push(k);
        }
      }
    }
    return seen.every(Boolean);
  };
  return m <= 1 || (reachesAll(true) && reachesAll(false));
}

/** The ranked part: the connected part with the most judgments (then the most items, then the first item). */
function rankedPart(n: number, pairs: readonly PairGames[]): number[] {
  const label = components(n, pairs);
  const games = new Map<number, number>();
  for (const p of pairs) games.set(label[p.i]!, (games.get(label[p.i]!) ?? 0) + p.games);
  const size = (root: number) => label.filter((l) => l === root).length;
  let best = -1;
  for (const root of games.keys()) {
    if (
      best === -1 ||
      games.get(root)! > games.get(best)! ||
      (games.get(root) === games.get(best) && size(root) > size(best))
    )
      best = root;
  }
  return best === -1 ? [] : label.flatMap((l, i) => (l === best ? [i] : []));
}

/**
 * Bradley-Terry log-strengths of `n` items from counts per (pair, outcome): centred over the
 * ranked part (the connected part with the most judgments); NaN for items outside it.
 */
export function fitBradleyTerry(
  n: number,
  counts: readonly PairCount[],
  options: FitOptions = {},
): Fit & { members: number[] } {
  const pairs = pairGames(
    counts,
    counts.map((c) => c.count),
    options.bothBad ?? 'tie',
  );
  const members = rankedPart(n, pairs);
  return { ...fitPart(n, members, pairs, options.l2 ?? DEFAULT_L2), members };
}

/** The q-quantile of sorted values, interpolating linearly (R's type 7). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const position = (sorted.length - 1) * q;
  const lower = Math.floor(position);
  const upper = Math.min(lower + 1, sorted.length - 1);
  return sorted[lower]! + (position - lower) * (sorted[upper]! - sorted[lower]!);
}

/**
 * Percentile bootstrap intervals of the log-strengths of the items in `members`: each resample
 * draws as many judgments as there are, with replacement (multinomial over the cells), and is
 * fitted from the full-data estimate. NaN bounds for items outside `members`.
 */
export function bootstrapIntervals(
  n: number,
  counts: readonly PairCount[],
  members: readonly number[],
  estimate: Float64Array,
  options: LeaderboardOptions = {},
): { low: Float64Array; high: Float64Array } {
  const resamples = options.resamples ?? DEFAULT_RESAMPLES;
  const confidence = options.confidence ?? 0.95;
  const bothBad = options.bothBad ?? 'tie';
  const l2 = options.l2 ?? DEFAULT_L2;
  const low = new Float64Array(n).fill(NaN);
  const high = new Float64Array(n).fill(NaN);
  const inPart = new Set(members);
  const cells = counts.filter(
    (c) => c.count > 0 && inPart.has(c.a) && inPart.has(c.b) && outcomeScore(c.outcome, bothBad) !== null,
  );
  const total = cells.reduce((sum, c) => sum + c.count, 0);
  if (resamples <= 0 || members.length < 2 || total === 0) return { low, high };
  const random = seededRandom(options.seed ?? 1);
  const weights = cells.map((c) => c.count);
  const draws = members.map(() => new Float64Array(resamples));
  for (let r = 0; r < resamples; r++) {
    const drawn = multinomial(total, weights, random);
    const fit = fitPart(n, members, pairGames(cells, drawn, bothBad), l2, estimate);
    members.forEach((item, k) => (draws[k]![r] = fit.theta[item]!));
  }
  const tail = (1 - confidence) / 2;
  members.forEach((item, k) => {
    const sorted = draws[k]!.sort();
    low[item] = quantile(sorted, tail);
    high[item] = quantile(sorted, 1 - tail);
  });
  return { low, high };
}

// ---------------------------------------------------------------------------------------------
// The leaderboard.

export interface ItemStanding {
  /** Natural-log strength, centred over the ranked items; null when not ranked. */
  logStrength: number | null;
  logLow: number | null;
  logHigh: number | null;
  /** The same on the Elo-like scale (1000 + 400·log10(e)·θ). */
  rating: number | null;
  ratingLow: number | null;
  ratingHigh: number | null;
  /** 1 + the number of items whose interval lies wholly above this one's (Arena's rank). */
  rank: number | null;
  /** Judgments this item took part in, by its outcome. */
  votes: number;
  wins: number;
  losses: number;
  ties: number;
  bothBad: number;
  /** In the ranked part of the comparison graph. */
  connected: boolean;
}

/** One ordered pair's record: row item against column item. */
export interface MatrixCell {
  wins: number;
  losses: number;
  ties: number;
  bothBad: number;
  total: number;
  /** (wins + ½ ties) / counted judgments (BOTH_BAD as a tie, or left out); null without any. */
  winRate: number | null;
}

export interface Leaderboard {
  items: ItemStanding[];
  /** matrix[i][j]: item i against item j; null on the diagonal and for pairs never compared. */
  matrix: (MatrixCell | null)[][];
  /** Judgments counted in the fit. */
  judgments: number;
  converged: boolean;
}

/** Which tally an outcome adds to, for side a and for side b. */
const TALLY = {
  A: ['wins', 'losses'],
  B: ['losses', 'wins'],
  TIE: ['ties', 'ties'],
  BOTH_BAD: ['bothBad', 'bothBad'],
} as const satisfies Record<Outcome, readonly [Tally, Tally]>;
type Tally = 'wins' | 'losses' | 'ties' | 'bothBad';

const finite = (x: number | undefined) => (x !== undefined && Number.isFinite(x) ? x : null);

/** Strengths, intervals, votes and the win-rate matrix of `n` items from counts per (pair, outcome). */
export function leaderboard(
  n: number,
  counts: readonly PairCount[],
  options: LeaderboardOptions = {},
): Leaderboard {
  const bothBad = options.bothBad ?? 'tie';
  const fit = fitBradleyTerry(n, counts, options);
  const resamples = options.resamples ?? DEFAULT_RESAMPLES;
  const { low, high } = bootstrapIntervals(n, counts, fit.members, fit.theta, { ...options, resamples });
  const matrix: (MatrixCell | null)[][] = Array.from({ length: n }, () => new Array(n).fill(null));
  const cell = (i: number, j: number) =>
    (matrix[i]![j] ??= { wins: 0, losses: 0, ties: 0, bothBad: 0, total: 0, winRate: null });
  const items = Array.from({ length: n }, () => ({ votes: 0, wins: 0, losses: 0, ties: 0, bothBad: 0 }));
  let judgments = 0;
  for (const c of counts) {
    if (c.count <= 0 || c.a === c.b) continue;
    const ab = cell(c.a, c.b);
    const ba = cell(c.b, c.a);
    const [ia, ib] = [items[c.a]!, items[c.b]!];
    ia.votes += c.count;
    ib.votes += c.count;
    ab.total += c.count;
    ba.total += c.count;
    const [forA, forB] = TALLY[c.outcome];
    ab[forA] += c.count;
    ia[forA] += c.count;
    ba[forB] += c.count;
    ib[forB] += c.count;
  }
  const ranked = new Set(fit.members);
  for (const row of matrix)
    for (const entry of row) {
      if (!entry) continue;
      const halves = entry.ties + (bothBad === 'tie' ? entry.bothBad : 0);
      const counted = entry.wins + entry.losses + halves;
      entry.winRate = counted === 0 ? null : (entry.wins + halves / 2) / counted;
    }
  for (const c of counts)
    if (c.count > 0 && ranked.has(c.a) && ranked.has(c.b) && outcomeScore(c.outcome, bothBad) !== null)
      judgments += c.count;
  const standings: ItemStanding[] = items.map((votes, i) => {
    const theta = ranked.has(i) ? finite(fit.theta[i]) : null;
    const lo = ranked.has(i) ? finite(low[i]) : null;
    const hi = ranked.has(i) ? finite(high[i]) : null;
    return {
      logStrength: theta,
      logLow: lo,
      logHigh: hi,
      rating: theta === null ? null : toRating(theta),
      ratingLow: lo === null ? null : toRating(lo),
      ratingHigh: hi === null ? null : toRating(hi),
      rank: null,
      ...votes,
      connected: ranked.has(i),
    };
  });
  for (const item of standings) {
    const top = item.logHigh ?? item.logStrength;
    if (top === null) continue;
    const above = standings.filter((other) => {
      const bottom = other.logLow ?? other.logStrength;
      return other !== item && bottom !== null && bottom > top;
    }).length;
    item.rank = 1 + above;
  }
  return { items: standings, matrix, judgments, converged: fit.converged };
}

/**
 * Kendall's tau-b between two rankings (scores, higher = better), ties corrected; null when
 * either has no variation or there are fewer than two items.
 */
export function kendallTau(x: readonly number[], y: readonly number[]): number | null {
  if (x.length !== y.length) throw new Error('kendallTau: the two lists differ in length');
  let concordant = 0;
  let discordant = 0;
  let tiesX = 0;
  let tiesY = 0;
  for (let i = 0; i < x.length; i++) {
    for (let j = i + 1; j < x.length; j++) {
      const dx = Math.sign(x[i]! - x[j]!);
      const dy = Math.sign(y[i]! - y[j]!);
      if (dx === 0 && dy === 0) continue;
      if (dx === 0) tiesX++;
      else if (dy === 0) tiesY++;
      else if (dx === dy) concordant++;
      else discordant++;
    }
  }
  const denominator = Math.sqrt((concordant + discordant + tiesX) * (concordant + discordant + tiesY));
  return denominator === 0 ? null : (concordant - discordant) / denominator;
}
