// Rating quality, computed live from the judgments: agreement between raters (pairwise and
// Krippendorff's alpha), accuracy on gold, agreement with the majority, time per judgment, and
// position and length bias; for rankings, rank agreement (Kendall's W per item, each rater's tau
// with the others). The statistics are pure functions; `QualityService` gathers the data.
import type { Choice, PrismaClient } from '../db/client.js';
import { kendallTau, kendallW } from '../ranking/rankings.js';

/** Share of rater pairs on the same unit that gave the same value. */
export function pairwiseAgreement(units: unknown[][]): number | null {
  let agree = 0;
  let pairs = 0;
  for (const values of units) {
    for (let i = 0; i < values.length; i++) {
      for (let j = i + 1; j < values.length; j++) {
        pairs++;
        if (values[i] === values[j]) agree++;
      }
    }
  }
  return pairs === 0 ? null : agree / pairs;
}

/**
 * Krippendorff's alpha for nominal data: 1 - D_o / D_e from the coincidence matrix. Units with
 * fewer than two values are not pairable and are left out (Krippendorff 2011).
 */
export function krippendorffAlphaNominal(units: unknown[][]): number | null {
  const coincidence = new Map<string, number>();
  const totals = new Map<unknown, number>();
  let n = 0;
  for (const values of units) {
    const m = values.length;
    if (m < 2) continue;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < m; j++) {
        if (i === j) continue;
        const c = values[i];
        const k = values[j];
        if (c !== k) {
          const key = JSON.stringify([c, k]);
          coincidence.set(key, (coincidence.get(key) ?? 0) + 1 / (m - 1));
        }
      }
      totals.set(values[i], (totals.get(values[i]) ?? 0) + 1);
      n++;
    }
  }
  if (n < 2) return null;
  const observed = [...coincidence.values()].reduce((sum, value) => sum + value, 0);
  const counts = [...totals.values()];
  let expected = 0;
  for (let i = 0; i < counts.length; i++) {
    for (let j = 0; j < counts.length; j++) if (i !== j) expected += counts[i]! * counts[j]!;
  }
  if (expected === 0) return observed === 0 ? 1 : null;
  return 1 - ((n - 1) * observed) / expected;
}

export function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** The most common value, or null when the top is shared. */
export function majority<T>(values: T[]): T | null {
  const counts = new Map<T, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  let best: T | null = null;
  let bestCount = 0;
  let shared = false;
  for (const [value, count] of counts) {
    if (count > bestCount) [best, bestCount, shared] = [value, count, false];
    else if (count === bestCount) shared = true;
  }
  return shared ? null : best;
}

export interface Judgment {
  comparisonId: string;
  raterId: string;
  choice: Choice;
  shownSwapped: boolean;
  timeSpentMs: number | null;
  lengthA: number;
  lengthB: number;
  isGold: boolean;
  goldChoice: Choice | null;
  /** A ranking's ranks in stored order; empty for a pair's judgment. */
  ranks: number[];
}

const share = (hits: number, total: number) => (total === 0 ? null : hits / total);

/** Did the rater pick the response shown on the left? (null for ties and both-bad) */
function choseLeft(judgment: Judgment): boolean | null {
  if (judgment.choice !== 'A' && judgment.choice !== 'B') return null;
  return (judgment.choice === 'A') !== judgment.shownSwapped;
}

/** Did the rater pick the longer response? (null for ties, both-bad and equal lengths) */
function choseLonger(judgment: Judgment): boolean | null {
  if ((judgment.choice !== 'A' && judgment.choice !== 'B') || judgment.lengthA === judgment.lengthB)
    return null;
  return (judgment.choice === 'A') === judgment.lengthA > judgment.lengthB;
}

function rates(judgments: Judgment[], test: (judgment: Judgment) => boolean | null): number | null {
  const outcomes = judgments.map(test).filter((value): value is boolean => value !== null);
  return share(outcomes.filter(Boolean).length, outcomes.length);
}

/** Mean of the numbers that are not null, or null when none is. */
function meanOf(values: (number | null)[]): number | null {
  const known = values.filter((value): value is number => value !== null);
  return known.length ? known.reduce((sum, value) => sum + value, 0) / known.length : null;
}

/**
 * Rank agreement of rankings: Kendall's W of each item ranked by two raters or more (averaged),
 * and per rater the mean tau-b of their ranking with the mean of the others' ranks of the item.
 */
export function rankAgreement(rankings: Judgment[]) {
  const byItem = new Map<string, Judgment[]>();
  for (const judgment of rankings)
    byItem.set(judgment.comparisonId, [...(byItem.get(judgment.comparisonId) ?? []), judgment]);
  const shared = [...byItem.values()].filter((group) => group.length > 1);
  const taus = new Map<string, (number | null)[]>();
  for (const group of shared) {
    for (const judgment of group) {
      const others = group.filter((other) => other !== judgment);
      const meanRanks = judgment.ranks.map(
        (_, i) => others.reduce((sum, other) => sum + other.ranks[i]!, 0) / others.length,
      );
      taus.set(judgment.raterId, [
        ...(taus.get(judgment.raterId) ?? []),
        kendallTau(judgment.ranks, meanRanks),
      ]);
    }
  }
  return {
    judgments: rankings.length,
    itemsWithMultiple: shared.length,
    kendallW: meanOf(shared.map((group) => kendallW(group.map((judgment) => judgment.ranks)))),
    tauOf: (raterId: string) => meanOf(taus.get(raterId) ?? []),
  };
}

export function summarize(all: Judgment[]) {
  // Rankings have their own measure of agreement; the choice-based figures are of pairs.
  const judgments = all.filter((judgment) => judgment.ranks.length === 0);
  const ranking = rankAgreement(all.filter((judgment) => judgment.ranks.length > 0 && !judgment.isGold));
  const byComparison = new Map<string, Judgment[]>();
  for (const judgment of judgments) {
    if (judgment.isGold) continue;
    byComparison.set(judgment.comparisonId, [...(byComparison.get(judgment.comparisonId) ?? []), judgment]);
  }
  const units = [...byComparison.values()].map((group) => group.map((judgment) => judgment.choice));
  const left = rates(judgments, choseLeft);
  const choiceCounts = { A: 0, B: 0, TIE: 0, BOTH_BAD: 0 };
  for (const judgment of judgments) choiceCounts[judgment.choice]++;

  const perRater = new Map<string, Judgment[]>();
  for (const judgment of all) if (!perRater.has(judgment.raterId)) perRater.set(judgment.raterId, []);
  for (const judgment of judgments) perRater.get(judgment.raterId)!.push(judgment);
  const rankingsBy = new Map<string, number>();
  for (const judgment of all)
    if (judgment.ranks.length) rankingsBy.set(judgment.raterId, (rankingsBy.get(judgment.raterId) ?? 0) + 1);
  const raters = new Map(
    [...perRater].map(([raterId, own]) => {
      const gold = own.filter((judgment) => judgment.isGold && judgment.goldChoice);
      let agreeWithMajority = 0;
      let comparable = 0;
      for (const judgment of own) {
        const others = (byComparison.get(judgment.comparisonId) ?? []).filter(
          (other) => other.raterId !== raterId,
        );
        const verdict = majority(others.map((other) => other.choice));
        if (verdict === null) continue;
        comparable++;
        if (verdict === judgment.choice) agreeWithMajority++;
      }
      return [
        raterId,
        {
          judgments: own.length + (rankingsBy.get(raterId) ?? 0),
          goldJudged: gold.length,
          goldAccuracy: share(
            gold.filter((judgment) => judgment.choice === judgment.goldChoice).length,
            gold.length,
          ),
          majorityAgreement: share(agreeWithMajority, comparable),
          medianTimeMs: median(
            own.flatMap((judgment) => (judgment.timeSpentMs === null ? [] : [judgment.timeSpentMs])),
          ),
          leftShare: rates(own, choseLeft),
          longerShare: rates(own, choseLonger),
          rankings: rankingsBy.get(raterId) ?? 0,
          rankTau: ranking.tauOf(raterId),
        },
      ];
    }),
  );
  return {
    judgments: all.length,
    comparisonsWithMultipleJudgments: units.filter((unit) => unit.length > 1).length,
    pairwiseAgreement: pairwiseAgreement(units),
    krippendorffAlpha: krippendorffAlphaNominal(units),
    positionBias: left === null ? null : left - 0.5,
    longerShare: rates(judgments, choseLonger),
    medianTimeMs: median(
      judgments.flatMap((judgment) => (judgment.timeSpentMs === null ? [] : [judgment.timeSpentMs])),
    ),
    choiceCounts,
    rankings: {
      judgments: ranking.judgments,
      itemsWithMultiple: ranking.itemsWithMultiple,
      kendallW: ranking.kendallW,
    },
    raters,
  };
}

/**
 * Judgments the Quality tab reads at most: the comparisons of the project's latest this many
 * judgments, with all their judgments (so agreement is measured on whole comparisons). A project
 * with months of rating holds millions; reading them all on every visit grew with the data.
 */
export const QUALITY_WINDOW = 20_000;

/**
 * A project's quality, from the judgments of its most recently judged comparisons (QUALITY_WINDOW)
 * and the skips of those comparisons.
 */
export class QualityService {
  constructor(private readonly prisma: PrismaClient) {}

  async ofProject(projectId: string) {
    // The latest judgments through the index on their time (newest first), their comparisons,
    // then every judgment of those through the index by comparison: bounded whatever the size.
    const rows = await this.prisma.$queryRaw<
      (Judgment & { name: string; email: string; simulated: boolean })[]
    >`
      WITH recent AS MATERIALIZED (
        SELECT DISTINCT l."comparisonId" AS id FROM (
          SELECT p."comparisonId" FROM "Preference" p JOIN "Comparison" c ON c.id = p."comparisonId"
          WHERE c."projectId" = ${projectId}::uuid
          ORDER BY p."createdAt" DESC LIMIT ${QUALITY_WINDOW}) l)
      SELECT p."comparisonId", p."raterId", p.choice::text AS choice, p.ranks, p."shownSwapped", p."timeSpentMs",
             length(ra.text) AS "lengthA", length(rb.text) AS "lengthB", c."isGold", c."goldChoice"::text AS "goldChoice",
             u.name, u.email, u.simulated
      FROM recent
      JOIN "Comparison" c ON c.id = recent.id
      JOIN "Preference" p ON p."comparisonId" = recent.id
      JOIN "Response" ra ON ra.id = c."responseAId"
      JOIN "Response" rb ON rb.id = c."responseBId"
      JOIN "User" u ON u.id = p."raterId"`;
    const comparisonIds = [...new Set(rows.map((row) => row.comparisonId))];
    const skips = await this.prisma.$queryRaw<{ raterId: string; n: bigint }[]>`
      SELECT a."raterId", count(*) AS n FROM "Assignment" a
      WHERE a."comparisonId" = ANY(${comparisonIds}::uuid[]) AND a.status = 'SKIPPED' GROUP BY a."raterId"`;
    const summary = summarize(rows);
    const people = new Map(rows.map((row) => [row.raterId, row]));
    const skipped = new Map(skips.map((row) => [row.raterId, Number(row.n)]));
    const { raters, ...totals } = summary;
    return {
      ...totals,
      raters: [...raters].map(([raterId, stats]) => ({
        raterId,
        name: people.get(raterId)?.name ?? '',
        email: people.get(raterId)?.email ?? '',
        simulated: people.get(raterId)?.simulated ?? false,
        skips: skipped.get(raterId) ?? 0,
        ...stats,
      })),
    };
  }
}
