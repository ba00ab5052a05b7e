// K-wise rankings (InstructGPT's labelling: a rater orders K responses to one prompt, 4 to 9 there,
// 3 to 9 here): their ranks, the order a lease shows them in, the K(K−1)/2 pairs a ranking stands
// for, and the agreement of several raters' rankings (Kendall's W and tau). Pure functions.
//
// Ranks are standard competition ranks ("1224"): 1 is best, tied responses share a rank, and the
// next rank skips as many places as were tied (1, 1, 3). Any ranks a client sends are read only for
// their order and stored in that form, so equal orders are stored equally.
import { createHash } from 'node:crypto';
import type { Choice } from '../db/client.js';

/** Fewest and most responses in a ranking. */
export const MIN_RANK_SIZE = 3;
export const MAX_RANK_SIZE = 9;

/** Standard competition ranks of the same order: 1 + how many are strictly better. */
export function competitionRanks(ranks: readonly number[]): number[] {
  return ranks.map((rank) => 1 + ranks.filter((other) => other < rank).length);
}

/** Whether the ranks tie any two responses. */
export function hasTies(ranks: readonly number[]): boolean {
  return new Set(ranks).size < ranks.length;
}

/**
 * The order a lease shows a ranking's K responses in: shown[i] is the stored index of the i-th
 * response on screen. A shuffle seeded by the lease's id (no column holds it, and every server
 * reads the same one), so position on screen says nothing about the response's source.
 */
export function shownOrder(assignmentId: string, k: number): number[] {
  const bytes = createHash('sha256').update(`ranking:${assignmentId}`).digest();
  const order = Array.from({ length: k }, (_, i) => i);
  for (let i = k - 1; i > 0; i--) {
    const j = bytes.readUInt16LE(2 * i) % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/** Ranks in stored order from ranks given in shown order. */
export function storedRanks(shownRanks: readonly number[], shown: readonly number[]): number[] {
  const ranks = new Array<number>(shown.length);
  shown.forEach((stored, i) => (ranks[stored] = shownRanks[i]!));
  return competitionRanks(ranks);
}

/** Ranks in shown order from stored ranks (what undo shows back). */
export function shownRanks(ranks: readonly number[], shown: readonly number[]): number[] {
  return shown.map((stored) => ranks[stored]!);
}

/** The pairwise choice a ranking makes between two of its responses (A = the first given). */
export function choiceBetween(rankA: number, rankB: number): Choice {
  return rankA < rankB ? 'A' : rankA > rankB ? 'B' : 'TIE';
}

/** One of a ranking's pairs: the responses at stored positions a < b, and which is better. */
export interface RankedPair {
  a: number;
  b: number;
  choice: Choice;
}

/** The K(K−1)/2 pairs a ranking stands for, in order (0,1), (0,2), …, (K−2,K−1). */
export function rankingPairs(ranks: readonly number[]): RankedPair[] {
  const pairs: RankedPair[] = [];
  for (let a = 0; a < ranks.length; a++)
    for (let b = a + 1; b < ranks.length; b++)
      pairs.push({ a, b, choice: choiceBetween(ranks[a]!, ranks[b]!) });
  return pairs;
}

/** Mid-ranks (ties get the mean of the places they share), as Kendall's W and tau-b read ranks. */
function midRanks(ranks: readonly number[]): number[] {
  return ranks.map((rank) => {
    const tied = ranks.filter((other) => other === rank).length;
    return rank + (tied - 1) / 2;
  });
}

/**
 * Kendall's coefficient of concordance W of m raters' rankings of the same K items (ranks in the
 * same stored order), with the correction for ties: W = 12·S / (m²(K³ − K) − m·ΣT), S the sum of
 * squared deviations of the items' rank sums from their mean, T = Σ(t³ − t) over each rater's tie
 * groups. 1 when all raters agree, 0 when their orders cancel out. Null with fewer than two
 * rankings, or when every rater tied everything.
 */
export function kendallW(rankings: readonly (readonly number[])[]): number | null {
  const m = rankings.length;
  if (m < 2) return null;
  const k = rankings[0]!.length;
  const sums = new Array<number>(k).fill(0);
  let ties = 0;
  for (const ranks of rankings) {
    const mid = midRanks(ranks);
    mid.forEach((rank, i) => (sums[i]! += rank));
    const groups = new Map<number, number>();
    for (const rank of ranks) groups.set(rank, (groups.get(rank) ?? 0) + 1);
    for (const t of groups.values()) ties += t ** 3 - t;
  }
  const mean = (m * (k + 1)) / 2;
  const s = sums.reduce((total, sum) => total + (sum - mean) ** 2, 0);
  const denominator = m * m * (k ** 3 - k) - m * ties;
  return denominator > 0 ? (12 * s) / denominator : null;
}

/**
 * Kendall's tau-b between two rankings of the same items (ties handled): +1 the same order, −1 the
 * reverse. Null when either ranks everything equal.
 */
export function kendallTau(x: readonly number[], y: readonly number[]): number | null {
  let concordant = 0;
  let discordant = 0;
  let tiedX = 0;
  let tiedY = 0;
  for (let i = 0; i < x.length; i++) {
    for (let j = i + 1; j < x.length; j++) {
      const dx = Math.sign(x[i]! - x[j]!);
      const dy = Math.sign(y[i]! - y[j]!);
      if (dx === 0 && dy === 0) continue;
      if (dx === 0) tiedX++;
      else if (dy === 0) tiedY++;
      else if (dx === dy) concordant++;
      else discordant++;
    }
  }
  const denominator = Math.sqrt((concordant + discordant + tiedX) * (concordant + discordant + tiedY));
  return denominator > 0 ? (concordant - discordant) / denominator : null;
}
