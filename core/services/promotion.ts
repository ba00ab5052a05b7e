// Promotion evidence for a project's versions: raters' votes on each version's comparisons against
// its parent (whichever side each was shown on), turned into a win rate with its 95% interval by
// core/ranking/win-rate.ts, next to the reward model's win rate from the round; and what the
// project's promotion rule makes of them.
import { Prisma, type PrismaClient, type Project } from '../db/client.js';
import {
  humanVerdict,
  rewardModelVerdict,
  winRateFromVotes,
  type ComparisonVotes,
} from '../ranking/win-rate.js';
import type { PromotionEvidence, VersionPromotion } from '../schemas/promotion.js';
import { promotionOf, type PromotionSettings } from './project-settings.js';

type Db = PrismaClient | Prisma.TransactionClient;

export const INTERVAL_METHOD =
  'Wilson score interval (95%) on the score wins + ½ (ties + both bad) over votes, with the ' +
  'variance of tied votes and the correlation of votes on the same comparison (design effect) ' +
  'taken into account.';

interface VoteRow extends ComparisonVotes {
  versionId: string;
  comparisonId: string;
  simulated: boolean;
}

/**
 * Votes on each version's comparisons against its parent, per version, comparison and whether the
 * rater is simulated. Gold comparisons and imported judgments are left out.
 */
async function parentVotes(db: Db, projectId: string, versionIds?: string[]): Promise<VoteRow[]> {
  const only = versionIds ? Prisma.sql`AND v.id = ANY(${versionIds}::uuid[])` : Prisma.empty;
  return db.$queryRaw<VoteRow[]>`
    WITH pairs AS (
      SELECT v.id AS version, c.id AS comparison, (ra."policyVersionId" = v.id) AS "newIsA"
      FROM "PolicyVersion" v
      JOIN "Response" ra ON ra."policyVersionId" IN (v.id, v."parentId")
      JOIN "Comparison" c ON c."responseAId" = ra.id AND NOT c."isGold"
      JOIN "Response" rb ON rb.id = c."responseBId"
      WHERE v."projectId" = ${projectId}::uuid AND v."parentId" IS NOT NULL ${only}
        AND rb."policyVersionId" IN (v.id, v."parentId")
        AND rb."policyVersionId" <> ra."policyVersionId"
    )
    SELECT pr.version AS "versionId", pr.comparison AS "comparisonId",
      (p.source = 'SIMULATED' OR COALESCE(u.simulated, false)) AS simulated,
      count(*) FILTER (WHERE (p.choice = 'A' AND pr."newIsA") OR (p.choice = 'B' AND NOT pr."newIsA"))::int AS wins,
      count(*) FILTER (WHERE (p.choice = 'B' AND pr."newIsA") OR (p.choice = 'A' AND NOT pr."newIsA"))::int AS losses,
      count(*) FILTER (WHERE p.choice = 'TIE')::int AS ties,
      count(*) FILTER (WHERE p.choice = 'BOTH_BAD')::int AS "bothBad"
    FROM pairs pr
    JOIN "Preference" p ON p."comparisonId" = pr.comparison AND p.source <> 'IMPORTED'
    LEFT JOIN "User" u ON u.id = p."raterId"
    GROUP BY 1, 2, 3`;
}

/** Both rules for one version, from its votes and its round's metrics. */
export function versionPromotion(
  version: { id: string; parentId: string; metrics: unknown },
  rows: readonly VoteRow[],
  settings: PromotionSettings,
): VersionPromotion {
  const counted = new Map<string, ComparisonVotes>();
  let simulatedVotes = 0;
  for (const row of rows) {
    if (row.simulated) simulatedVotes += row.wins + row.losses + row.ties + row.bothBad;
    if (row.simulated && !settings.countSimulated) continue;
    const into = counted.get(row.comparisonId) ?? { wins: 0, losses: 0, ties: 0, bothBad: 0 };
    into.wins += row.wins;
    into.losses += row.losses;
    into.ties += row.ties;
    into.bothBad += row.bothBad;
    counted.set(row.comparisonId, into);
  }
  const rate = winRateFromVotes([...counted.values()]);
  const human = humanVerdict(rate, settings);
  const rmWinRate = (version.metrics as Record<string, unknown> | null)?.winRateVsParent;
  const rm = rewardModelVerdict(typeof rmWinRate === 'number' ? rmWinRate : null, settings.rewardModelMargin);
  const metrics = version.metrics as Record<string, unknown> | null;
  const notBetter =
    metrics?.notBetter === true
      ? Array.isArray(metrics.notBetterReasons)
        ? metrics.notBetterReasons.map(String)
        : ['marked not better by its round']
      : [];
  return {
    versionId: version.id,
    parentId: version.parentId,
    human: {
      votes: rate.votes,
      wins: rate.wins,
      losses: rate.losses,
      ties: rate.ties,
      bothBad: rate.bothBad,
      comparisons: rate.comparisons,
      simulatedVotes,
      winRate: rate.winRate,
      low: rate.low,
      high: rate.high,
      effectiveVotes: rate.effectiveVotes,
      ...human,
    },
    rewardModel: {
      winRate: typeof rmWinRate === 'number' ? rmWinRate : null,
      threshold: Math.min(1, 0.5 + settings.rewardModelMargin),
      ...rm,
    },
    // A round's own verdict of not better overrules both: such a version waits for an admin.
    decision: notBetter.length ? 'not-better' : settings.rule === 'human' ? human.decision : rm.decision,
    notBetterReasons: notBetter,
  };
}

/** Both rules for the project's versions that have a parent (all of them, or those named). */
export async function promotionEvidence(
  db: Db,
  project: Pick<Project, 'id' | 'schedule'>,
  versionIds?: string[],
): Promise<PromotionEvidence> {
  const settings = promotionOf(project);
  const versions = await db.policyVersion.findMany({
    where: {
      projectId: project.id,
      parentId: { not: null },
      ...(versionIds ? { id: { in: versionIds } } : {}),
    },
    orderBy: { createdAt: 'asc' },
    select: { id: true, parentId: true, metrics: true },
  });
  const rows = versions.length ? await parentVotes(db, project.id, versionIds) : [];
  const byVersion = new Map<string, VoteRow[]>();
  for (const row of rows) byVersion.set(row.versionId, [...(byVersion.get(row.versionId) ?? []), row]);
  return {
    settings,
    interval: INTERVAL_METHOD,
    versions: versions.map((v) =>
      versionPromotion({ ...v, parentId: v.parentId! }, byVersion.get(v.id) ?? [], settings),
    ),
  };
}

/** What an audit entry of a promotion records: the active rule and what it rested on. */
export function promotionAuditDetails(
  settings: PromotionSettings,
  evidence: VersionPromotion | undefined,
): Prisma.InputJsonObject {
  if (!evidence) return { rule: settings.rule, decision: 'unavailable', votes: 0 };
  return {
    rule: settings.rule,
    decision: evidence.decision,
    votes: evidence.human.votes,
    humanWinRate: evidence.human.winRate,
    humanInterval: [evidence.human.low, evidence.human.high],
    margin: settings.margin,
    minVotes: settings.minVotes,
    countSimulated: settings.countSimulated,
    rewardModelWinRate: evidence.rewardModel.winRate,
    rewardModelThreshold: evidence.rewardModel.threshold,
  };
}
