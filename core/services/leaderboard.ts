// A project's leaderboard: the judgments between responses of two different policy versions,
// counted per (version pair, choice) in the database, then Bradley-Terry strengths with bootstrap
// intervals (core/ranking/bradley-terry.ts). Human judgments only unless simulated or imported ones
// are asked for; gold comparisons are left out (planted checks, shown to every rater on purpose).
import { Prisma, type PrismaClient } from '../db/client.js';
import { DEFAULT_RESAMPLES, leaderboard, type Outcome, type PairCount } from '../ranking/bradley-terry.js';
import type { Leaderboard, LeaderboardQuery, LeaderboardSource } from '../schemas/leaderboard.js';

type SourceClass = 'HUMAN' | 'SIMULATED' | 'IMPORTED';

interface CountRow {
  a: string;
  b: string;
  choice: Outcome;
  source: SourceClass;
  n: number;
}

export const LEADERBOARD_METHOD =
  'Bradley-Terry strengths by maximum likelihood (Newton, with a Gaussian prior of sd 10 on the log-strengths), ' +
  'a tie or BOTH_BAD counted as half a win for each version; 95% percentile intervals from bootstrap ' +
  'resamples of the judgments; ratings on the Elo-like scale 1000 + 400·log10(e)·θ.';

/** The sources to count from the `include` query: HUMAN and those named. */
export function sourcesOf(include: string | undefined): SourceClass[] {
  const named = new Set((include ?? '').split(',').filter(Boolean) as LeaderboardSource[]);
  return [
    'HUMAN',
    ...(named.has('simulated') ? (['SIMULATED'] as const) : []),
    ...(named.has('imported') ? (['IMPORTED'] as const) : []),
  ];
}

/**
 * One cell per (version of A, version of B, choice), the sources merged, in a fixed order (by
 * version ids, then choice): the bootstrap draws over the cells in this order, so the same
 * judgments and seed always give the same intervals.
 */
export function pairCells(
  rows: readonly { a: string; b: string; choice: Outcome; n: number }[],
  index: ReadonlyMap<string, number>,
): PairCount[] {
  const merged = new Map<string, PairCount>();
  for (const row of rows) {
    const [a, b] = [index.get(row.a), index.get(row.b)];
    if (a === undefined || b === undefined) continue;
    const key = `${row.a} ${row.b} ${row.choice}`;
    const cell = merged.get(key) ?? { a, b, outcome: row.choice, count: 0 };
    cell.count += row.n;
    merged.set(key, cell);
  }
  return [...merged.keys()].sort().map((key) => merged.get(key)!);
}

export class LeaderboardService {
  constructor(private readonly prisma: PrismaClient) {}

  /**
   * Judgments between two different versions of the project, per (version of response A, version
   * of response B, choice, source): one grouped scan, so the bootstrap works on counts, not rows.
   * A ranking counts as its pairs of responses, each a vote (like a pair judgment of the two).
   * A judgment is SIMULATED when its source says so or its rater is a simulated account.
   */
  private counts(projectId: string): Promise<CountRow[]> {
    return this.prisma.$queryRaw<CountRow[]>(Prisma.sql`
      SELECT ra."policyVersionId"::text AS a, rb."policyVersionId"::text AS b, x.choice,
        CASE WHEN p.source = 'IMPORTED' THEN 'IMPORTED'
             WHEN p.source = 'SIMULATED' OR COALESCE(u.simulated, false) THEN 'SIMULATED'
             ELSE 'HUMAN' END AS source,
        count(*)::int AS n
      FROM "Comparison" c
      JOIN "Preference" p ON p."comparisonId" = c.id
      -- A pair's judgment, or each of the K(K-1)/2 pairs of a ranking.
      CROSS JOIN LATERAL (
        SELECT c."responseAId" AS ra, c."responseBId" AS rb, p.choice::text AS choice
        WHERE cardinality(p.ranks) = 0
        UNION ALL
        SELECT c."responseIds"[i], c."responseIds"[j],
          CASE WHEN p.ranks[i] < p.ranks[j] THEN 'A' WHEN p.ranks[i] > p.ranks[j] THEN 'B' ELSE 'TIE' END
        FROM generate_series(1, cardinality(p.ranks)) i CROSS JOIN generate_series(1, cardinality(p.ranks)) j
        WHERE i < j
      ) x
      JOIN "Response" ra ON ra.id = x.ra
      JOIN "Response" rb ON rb.id = x.rb
      LEFT JOIN "User" u ON u.id = p."raterId"
      WHERE c."projectId" = ${projectId}::uuid AND NOT c."isGold"
        AND ra."policyVersionId" IS NOT NULL AND rb."policyVersionId" IS NOT NULL
        AND ra."policyVersionId" <> rb."policyVersionId"
      GROUP BY 1, 2, 3, 4`);
  }

  async board(
    project: { id: string; currentPolicyVersionId: string | null },
    query: LeaderboardQuery = {},
  ): Promise<Leaderboard> {
    const sources = sourcesOf(query.include);
    const resamples = query.bootstrap ?? DEFAULT_RESAMPLES;
    const seed = query.seed ?? 1;
    const [rows, versions] = await Promise.all([
      this.counts(project.id),
      this.prisma.policyVersion.findMany({
        where: { projectId: project.id },
        select: { id: true, name: true, kind: true, status: true },
        orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
      }),
    ]);
    const counted = rows.filter((row) => sources.includes(row.source));
    const leftOut = { simulated: 0, imported: 0 };
    for (const row of rows) {
      if (row.source === 'SIMULATED' && !sources.includes('SIMULATED')) leftOut.simulated += row.n;
      if (row.source === 'IMPORTED' && !sources.includes('IMPORTED')) leftOut.imported += row.n;
    }
    // Versions with votes, and those ready to answer (shown without a rating until compared).
    const voted = new Set(counted.flatMap((row) => [row.a, row.b]));
    const listed = versions.filter((v) => voted.has(v.id) || v.status === 'READY');
    const index = new Map(listed.map((v, i) => [v.id, i]));
    const cells = pairCells(counted, index);
    const result = leaderboard(listed.length, cells, { resamples, seed });

    // Best first: by rating, then the unranked by votes.
    const order = listed
      .map((_, i) => i)
      .sort((x, y) => {
        const [rx, ry] = [result.items[x]!.rating, result.items[y]!.rating];
        if (rx !== null && ry !== null) return ry - rx;
        if (rx !== null || ry !== null) return rx === null ? 1 : -1;
        return result.items[y]!.votes - result.items[x]!.votes;
      });
    return {
      projectId: project.id,
      sources,
      judgments: result.judgments,
      leftOut,
      bootstrap: resamples,
      seed,
      converged: result.converged,
      method: LEADERBOARD_METHOD,
      versions: order.map((i) => ({
        id: listed[i]!.id,
        name: listed[i]!.name,
        kind: listed[i]!.kind,
        current: listed[i]!.id === project.currentPolicyVersionId,
        ...result.items[i]!,
      })),
      matrix: order.map((i) => order.map((j) => result.matrix[i]![j] ?? null)),
    };
  }
}
