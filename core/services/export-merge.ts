// The cursor merge: the selected judgments (narrow rows, by comparison) joined to their comparisons
// (prompt and response texts, by id), both read batch by batch in the same order, as an async
// generator of whole comparisons' judgments. A ranking's judgments become its K(K−1)/2 pairs'
// (each pair one group) for the pairwise formats, or stay whole for the ranking format.
import type { Choice } from '../db/client.js';
import { choiceBetween, rankingPairs } from '../ranking/rankings.js';
import type { Message } from './export-formats.js';
import type { ComparisonTuple, JudgmentTuple } from './export-selection.js';

/** One judgment with everything an export can show about it. */
export interface JudgmentRow {
  id: string;
  comparisonId: string;
  promptId: string;
  raterId: string | null;
  source: string;
  importSource: string | null;
  choice: Choice;
  strength: number | null;
  criteria: unknown;
  flags: string[];
  rationale: string | null;
  shownSwapped: boolean;
  timeSpentMs: number | null;
  /** ISO 8601 in UTC, to the millisecond. */
  createdAt: string;
  messages: Message[];
  promptSplit: string;
  responseA: string;
  responseB: string;
  sourceA: string | null;
  sourceB: string | null;
  policyVersionA: string | null;
  policyVersionB: string | null;
  roundNumber: number | null;
  isGold: boolean;
  agreement: number;
  votes: number;
  /** A pair of a ranking: the ranking comparison's id (comparisonId is then `<id>:<a>-<b>`). */
  fromRanking: string | null;
  /** A ranking's ranks in stored order; empty for a pair's judgment (and a ranking's pairs). */
  ranks: number[];
  /** A ranking's responses in stored order; null for a pair (and a ranking's pairs). */
  ranked: RankedResponses | null;
}

/** A ranking comparison's responses, in stored order. */
export interface RankedResponses {
  ids: string[];
  texts: string[];
  sources: (string | null)[];
  versions: (string | null)[];
}

/**
 * A ranking's judgments as its K(K−1)/2 pairs: one group per pair (a, b) of stored positions, a
 * row per judgment with the pair's texts and the choice the ranks make between them.
 */
function rankingGroups(group: JudgmentRow[]): JudgmentRow[][] {
  const ranked = group[0]!.ranked!;
  return rankingPairs(group[0]!.ranks).map(({ a, b }) =>
    withVotes(
      group.map((row) => ({
        ...row,
        comparisonId: `${row.comparisonId}:${a}-${b}`,
        choice: choiceBetween(row.ranks[a]!, row.ranks[b]!),
        strength: null,
        responseA: ranked.texts[a]!,
        responseB: ranked.texts[b]!,
        sourceA: ranked.sources[a]!,
        sourceB: ranked.sources[b]!,
        policyVersionA: ranked.versions[a]!,
        policyVersionB: ranked.versions[b]!,
        fromRanking: row.comparisonId,
        ranks: [],
        ranked: null,
      })),
    ),
  );
}

/** Votes and the majority's share, set on every judgment of one comparison. */
function withVotes(group: JudgmentRow[]): JudgmentRow[] {
  const counts = new Map<Choice, number>();
  for (const row of group) counts.set(row.choice, (counts.get(row.choice) ?? 0) + 1);
  const agreement = Math.max(...counts.values()) / group.length;
  for (const row of group) {
    row.votes = group.length;
    row.agreement = agreement;
  }
  return group;
}

/**
 * Merges the two streams: each call of `nextJudgments` gives the next batch of judgments (ordered by
 * comparison, then id; fewer than `batchSize` ends them), each call of `nextComparisons` the next
 * comparisons (ordered by id; those without selected judgments are passed over). Yields, per batch
 * of judgments, the comparisons it completed as groups of their judgments (votes and agreement set)
 * and how many judgments it held: a comparison's votes are adjacent, and the last group of a batch
 * may continue in the next, so it waits. The next batch is requested before this one is handed on,
 * so the database and the consumer work at the same time.
 */
export async function* mergeJudgments(
  nextJudgments: () => Promise<JudgmentTuple[]>,
  nextComparisons: () => Promise<ComparisonTuple[]>,
  batchSize: number,
  options: { rankingPairs: boolean } = { rankingPairs: true },
): AsyncGenerator<{ groups: JudgmentRow[][]; judgments: number }, void, undefined> {
  const close = (group: JudgmentRow[], groups: JudgmentRow[][]) => {
    if (options.rankingPairs && group[0]!.ranked && group.every((row) => row.ranks.length > 0))
      groups.push(...rankingGroups(group));
    else groups.push(withVotes(group));
  };
  let comparisons: ComparisonTuple[] = [];
  let next = 0;
  // Both streams run in the same order, and every selected judgment has its comparison.
  const comparisonOf = async (id: string): Promise<ComparisonTuple> => {
    for (;;) {
      if (next >= comparisons.length) {
        comparisons = await nextComparisons();
        next = 0;
        if (comparisons.length === 0) throw new Error(`comparison ${id} missing from the export`);
      }
      const candidate = comparisons[next]!;
      if (candidate[0] === id) return candidate;
      next++;
    }
  };
  let pending: JudgmentRow[] = [];
  let current: ComparisonTuple | null = null;
  const fetchJudgments = () => {
    const batch = nextJudgments();
    batch.catch(() => {}); // awaited below; this only keeps an abandoned batch from going unhandled
    return batch;
  };
  let nextBatch = fetchJudgments();
  for (;;) {
    const fetched = await nextBatch;
    if (fetched.length === batchSize) nextBatch = fetchJudgments();
    const groups: JudgmentRow[][] = [];
    for (const part of fetched) {
      const comparisonId = part[1];
      if (pending.length && pending[0]!.comparisonId !== comparisonId) {
        close(pending, groups);
        pending = [];
      }
      if (current?.[0] !== comparisonId) current = await comparisonOf(comparisonId);
      // One literal with every field: a single object shape, cheap to make and to collect.
      pending.push({
        id: part[0],
        comparisonId,
        promptId: current[1],
        raterId: part[2],
        source: part[3],
        importSource: part[4],
        choice: part[5],
        strength: part[6],
        criteria: part[7],
        flags: part[8],
        rationale: part[9],
        shownSwapped: part[10],
        timeSpentMs: part[11],
        createdAt: part[12],
        messages: current[2],
        promptSplit: current[3],
        responseA: current[4],
        responseB: current[5],
        sourceA: current[6],
        sourceB: current[7],
        policyVersionA: current[8],
        policyVersionB: current[9],
        roundNumber: current[10],
        isGold: current[11],
        agreement: 0,
        votes: 0,
        fromRanking: null,
        ranks: part[13],
        ranked: current[13]
          ? { ids: current[12], texts: current[13], sources: current[14]!, versions: current[15]! }
          : null,
      });
    }
    if (fetched.length < batchSize && pending.length) {
      close(pending, groups);
      pending = [];
    }
    yield { groups, judgments: fetched.length };
    if (fetched.length < batchSize) return;
  }
}
