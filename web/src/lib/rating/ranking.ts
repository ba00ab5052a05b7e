// K-wise ranking on the rater's screen, the pure part: the order the rater picks the responses in
// (best first, a pick may tie with the one before it) and the ranks it makes, in the order the
// responses are shown (standard competition ranks: 1 = best, tied responses share a rank and the
// next rank skips, e.g. [1, 1, 3, 4]). The state on screen is rating/ranking-draft.svelte.ts.

/** One pick: the response (its index as shown) and whether it shares the previous pick's rank. */
export interface Pick {
  index: number;
  tied: boolean;
}

/** The fewest and most responses a ranking item shows. */
export const MIN_RANK_SIZE = 3;
export const MAX_RANK_SIZE = 9;

/** The rank of every pick, in pick order. */
export function pickRanks(picks: readonly Pick[]): number[] {
  const ranks: number[] = [];
  picks.forEach((pick, position) => {
    ranks.push(pick.tied && position > 0 ? ranks[position - 1]! : position + 1);
  });
  return ranks;
}

/** The rank of each shown response (null: not picked yet), in the order they are shown. */
export function shownRanks(picks: readonly Pick[], size: number): (number | null)[] {
  const ranks: (number | null)[] = Array.from({ length: size }, () => null);
  const byPick = pickRanks(picks);
  picks.forEach((pick, position) => {
    if (pick.index >= 0 && pick.index < size) ranks[pick.index] = byPick[position]!;
  });
  return ranks;
}

/**
 * The picks that make these ranks (after an undo brings a ranking back): best first, equal ranks
 * tied, the responses of one rank in the order shown. Ranks that are not competition ranks come back
 * as the competition ranks of the same order.
 */
export function picksFromRanks(ranks: readonly number[]): Pick[] {
  const order = ranks
    .map((rank, index) => ({ rank, index }))
    .sort((a, b) => a.rank - b.rank || a.index - b.index);
  return order.map(({ rank, index }, position) => ({
    index,
    tied: position > 0 && order[position - 1]!.rank === rank,
  }));
}

/**
 * A ranking given in one order of the responses, in another order of the same responses (matched by
 * their text; each text once): null when the two orders do not hold the same texts.
 */
export function reorderRanking(
  ranking: readonly number[],
  from: readonly { text: string }[],
  to: readonly { text: string }[],
): number[] | null {
  if (ranking.length !== from.length || from.length !== to.length) return null;
  const rankOf = new Map(from.map((response, index) => [response.text, ranking[index]!]));
  if (rankOf.size !== from.length) return null;
  const reordered = to.map((response) => rankOf.get(response.text));
  return reordered.every((rank): rank is number => rank !== undefined) ? reordered : null;
}

/** "1st", "2nd", "3rd", "4th"… for ranks up to 9. */
export function ordinal(rank: number): string {
  if (rank === 1) return '1st';
  if (rank === 2) return '2nd';
  if (rank === 3) return '3rd';
  return `${rank}th`;
}
