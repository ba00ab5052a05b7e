// Rater reliability in a project: each rater's estimated reliability with its interval (the
// Dawid–Skene fit of core/ranking/reliability.ts over the project's judgments and gold answers),
// raters below a threshold flagged, and admins' exclusions of raters from training and exports
// (audited; including a rater again restores their judgments, which are never deleted).
import { Prisma, type PrismaClient } from '../db/client.js';
import { badRequest, notFound } from '../errors.js';
import {
  fitReliability,
  judgmentWeight,
  labelOf,
  MIN_INFORMATIVE_COMPARISONS,
  reliabilityWeights,
  type Label,
} from '../ranking/reliability.js';
import { recordAudit } from './audit.js';
import type { Actor } from './users.js';

/** Raters whose reliability is below this are flagged, unless the caller asks for another bar. */
export const DEFAULT_RELIABILITY_THRESHOLD = 0.5;

type Choice = 'A' | 'B' | 'TIE' | 'BOTH_BAD';

interface JudgmentRow {
  comparisonId: string;
  raterId: string;
  choice: Choice;
  isGold: boolean;
  goldChoice: Choice | null;
}

/**
 * A project's rated judgments (imported ones have no rater) and its gold answers; without those of
 * excluded raters when `included` is set.
 */
async function projectJudgments(
  prisma: PrismaClient | Prisma.TransactionClient,
  projectId: string,
  included = false,
) {
  const rows = await prisma.$queryRaw<JudgmentRow[]>`
    SELECT p."comparisonId", p."raterId", p.choice::text AS choice, c."isGold", c."goldChoice"::text AS "goldChoice"
    FROM "Preference" p JOIN "Comparison" c ON c.id = p."comparisonId"
    WHERE c."projectId" = ${projectId}::uuid AND p."raterId" IS NOT NULL
      AND ${included ? notExcludedSql : Prisma.sql`true`}
    ORDER BY p.id`;
  const gold = new Map<string, Label>();
  for (const row of rows)
    if (row.isGold && row.goldChoice) gold.set(row.comparisonId, labelOf(row.goldChoice));
  return { rows, gold };
}

/** The SQL condition that leaves out the judgments of raters excluded from the project of `c`. */
// A judgment without a rater matches no exclusion (NULL = NULL is not true). No `IS NULL OR` in
// front: an OR keeps PostgreSQL from planning it as an anti-join, and a per-row subplan over
// millions of exported judgments costs seconds.
export const notExcludedSql = Prisma.sql`NOT EXISTS (
  SELECT 1 FROM "RaterExclusion" x WHERE x."projectId" = c."projectId" AND x."raterId" = p."raterId")`;

/**
 * Training weights for judgments about to be trained on, from a fit over the project's rated
 * judgments and gold answers (excluded raters left out); null when too few comparisons tell raters
 * apart (then all weigh 1). Judgments without a rater (imported) weigh 1.
 */
export async function trainingWeights(
  prisma: PrismaClient | Prisma.TransactionClient,
  projectId: string,
  judgments: { comparisonId: string; raterId: string | null; choice: Choice }[],
): Promise<number[] | null> {
  const { rows, gold } = await projectJudgments(prisma, projectId, true);
  const { weights, fit } = reliabilityWeights(rows, gold);
  if (!weights) return null;
  return judgments.map((j) =>
    j.raterId === null ? 1 : judgmentWeight(fit.outcomes.get(j.comparisonId), labelOf(j.choice)),
  );
}

export class ReliabilityService {
  constructor(private readonly prisma: PrismaClient) {}

  async ofProject(projectId: string, threshold = DEFAULT_RELIABILITY_THRESHOLD) {
    const { rows, gold } = await projectJudgments(this.prisma, projectId);
    const fit = fitReliability(
      rows.map((row) => ({
        comparisonId: row.comparisonId,
        raterId: row.raterId,
        label: labelOf(row.choice),
      })),
      gold,
    );
    const ids = fit.raters.map((r) => r.raterId);
    const [people, exclusions] = await Promise.all([
      this.prisma.user.findMany({
        where: { id: { in: ids } },
        select: { id: true, name: true, email: true, simulated: true },
      }),
      this.prisma.raterExclusion.findMany({
        where: { projectId },
        include: { rater: { select: { id: true, name: true, email: true, simulated: true } } },
      }),
    ]);
    const person = new Map(people.map((p) => [p.id, p]));
    const excluded = new Map(exclusions.map((x) => [x.raterId, x]));
    const raters = fit.raters.map((r) => ({
      raterId: r.raterId,
      name: person.get(r.raterId)?.name ?? '',
      email: person.get(r.raterId)?.email ?? '',
      simulated: person.get(r.raterId)?.simulated ?? false,
      judgments: r.judgments,
      goldJudged: r.goldJudged,
      overlapping: r.overlapping,
      reliability: r.reliability,
      low: r.low,
      high: r.high,
      flagged: r.reliability < threshold,
      excluded: excluded.has(r.raterId),
      excludedAt: excluded.get(r.raterId)?.createdAt.toISOString() ?? null,
      exclusionReason: excluded.get(r.raterId)?.reason ?? null,
    }));
    // Excluded raters with no judgments left to fit still show, so that they can be included again.
    for (const x of exclusions)
      if (!fit.raters.some((r) => r.raterId === x.raterId))
        raters.push({
          raterId: x.raterId,
          name: x.rater.name,
          email: x.rater.email,
          simulated: x.rater.simulated,
          judgments: 0,
          goldJudged: 0,
          overlapping: 0,
          reliability: 0,
          low: 0,
          high: 1,
          flagged: false,
          excluded: true,
          excludedAt: x.createdAt.toISOString(),
          exclusionReason: x.reason,
        });
    raters.sort((a, b) => a.reliability - b.reliability || a.email.localeCompare(b.email));
    return {
      threshold,
      informativeComparisons: fit.informative,
      enoughOverlap: fit.informative >= MIN_INFORMATIVE_COMPARISONS,
      minInformativeComparisons: MIN_INFORMATIVE_COMPARISONS,
      raters,
    };
  }

  /** Leaves a rater's judgments out of the project's training and exports (idempotent). */
  async exclude(projectId: string, raterId: string, reason: string, actor: Actor) {
    await this.requireRater(projectId, raterId);
    await this.prisma.$transaction(async (tx) => {
      const created = await tx.raterExclusion.createMany({
        data: [{ projectId, raterId, reason, excludedById: actor.id }],
        skipDuplicates: true,
      });
      if (created.count)
        await recordAudit(tx, {
          actorId: actor.id,
          action: 'rater.exclude',
          targetType: 'user',
          targetId: raterId,
          details: { projectId, reason },
          ip: actor.ip ?? null,
        });
    });
  }

  /** Takes a rater's judgments back into training and exports (idempotent). */
  async include(projectId: string, raterId: string, actor: Actor) {
    await this.prisma.$transaction(async (tx) => {
      const removed = await tx.raterExclusion.deleteMany({ where: { projectId, raterId } });
      if (removed.count)
        await recordAudit(tx, {
          actorId: actor.id,
          action: 'rater.include',
          targetType: 'user',
          targetId: raterId,
          details: { projectId },
          ip: actor.ip ?? null,
        });
    });
  }

  private async requireRater(projectId: string, raterId: string) {
    const user = await this.prisma.user.findUnique({ where: { id: raterId }, select: { id: true } });
    if (!user) throw notFound('No such rater.');
    const [member, judged] = await Promise.all([
      this.prisma.projectMember.findUnique({ where: { projectId_userId: { projectId, userId: raterId } } }),
      this.prisma.preference.findFirst({
        where: { raterId, comparison: { projectId } },
        select: { id: true },
      }),
    ]);
    if (!member && !judged) throw badRequest('This user is not a rater of this project.');
  }
}
