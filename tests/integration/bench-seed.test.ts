// The scale benchmark's seeding (bench/database.ts), at a small size: months of rating written in
// batches leave a project whose counters match its rows, whose judgments each belong to their
// submitted lease, and whose stale leases the queue's sweep frees.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedComparisons } from '../../bench/database.js';
import { createPrisma, type PrismaClient } from '../../core/db/client.js';
import { QUALITY_WINDOW, QualityService } from '../../core/services/quality.js';
import { RatingService } from '../../core/services/rating.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let database: TestDatabase;
let prisma: PrismaClient;
beforeAll(async () => {
  database = await createTestDatabase();
  prisma = createPrisma(database.url, { max: 2 });
});
afterAll(async () => {
  await prisma.$disconnect();
  await database.drop();
});

const COUNT = 20_000;

describe('seeding months of rating', () => {
  it('writes comparisons, judgments and leases in proportion, counters matching the rows', async () => {
    const project = await prisma.project.create({ data: { name: 'Seeded', overlap: 3, labelSchema: {} } });
    await prisma.user.createMany({
      data: Array.from({ length: 12 }, (_, i) => ({
        email: `seed${i}@example.com`,
        name: `Seed ${i}`,
        role: 'RATER' as const,
      })),
    });
    const raterIds = (await prisma.user.findMany({ select: { id: true } })).map((user) => user.id);
    // Batches of 6,000: four statements, the last one partial.
    const seeded = await seedComparisons(prisma, project.id, COUNT, {
      judged: 0.8,
      raterIds,
      expired: 0.1,
      skipped: 0.05,
      stale: 0.02,
      batch: 6_000,
    });
    expect(seeded.comparisons).toBe(COUNT);
    expect(seeded.judged).toBe(0.8 * COUNT);
    expect(seeded.judgments).toBe(3 * seeded.judged);
    // Random shares, within a wide margin of their expectation.
    expect(seeded.expired / seeded.judged).toBeGreaterThan(0.08);
    expect(seeded.expired / seeded.judged).toBeLessThan(0.12);
    expect(seeded.skipped / seeded.judged).toBeGreaterThan(0.035);
    expect(seeded.skipped / seeded.judged).toBeLessThan(0.065);
    expect(seeded.stale / (COUNT - seeded.judged)).toBeGreaterThan(0.01);
    expect(seeded.stale / (COUNT - seeded.judged)).toBeLessThan(0.03);

    const where = { projectId: project.id };
    expect(await prisma.prompt.count({ where })).toBe(COUNT);
    expect(await prisma.response.count({ where: { prompt: where } })).toBe(2 * COUNT);
    expect(await prisma.comparison.count({ where })).toBe(COUNT);
    expect(await prisma.comparison.count({ where: { ...where, open: false } })).toBe(seeded.judged);
    expect(await prisma.preference.count({ where: { comparison: where } })).toBe(seeded.judgments);
    const byStatus = Object.fromEntries(
      (
        await prisma.assignment.groupBy({
          by: ['status'],
          _count: { _all: true },
          where: { comparison: where },
        })
      ).map((group) => [group.status, group._count._all]),
    );
    expect(byStatus).toEqual({
      SUBMITTED: seeded.judgments,
      EXPIRED: seeded.expired,
      SKIPPED: seeded.skipped,
      LEASED: seeded.stale,
    });

    // Every comparison's counters match its rows; every judgment is its own submitted lease's,
    // by a rater of the pool, and no rater judged a comparison twice (the unique index).
    const [mismatch] = await prisma.$queryRaw<{ counters: bigint; orphans: bigint; raters: bigint }[]>`
      SELECT
        (SELECT count(*) FROM "Comparison" c WHERE c."projectId" = ${project.id}::uuid AND (
           c."voteCount" <> (SELECT count(*) FROM "Preference" p WHERE p."comparisonId" = c.id)
           OR c."leaseCount" <> (SELECT count(*) FROM "Assignment" a WHERE a."comparisonId" = c.id AND a.status = 'LEASED')
           OR c."voteCount" + c."leaseCount" > c."requiredVotes")) AS counters,
        (SELECT count(*) FROM "Preference" p LEFT JOIN "Assignment" a ON a.id = p."assignmentId"
           AND a."comparisonId" = p."comparisonId" AND a."raterId" = p."raterId" AND a.status = 'SUBMITTED'
         WHERE a.id IS NULL) AS orphans,
        (SELECT count(DISTINCT "raterId") FROM "Preference") AS raters`;
    expect(mismatch).toEqual({ counters: 0n, orphans: 0n, raters: BigInt(raterIds.length) });
    // History lies in the past, spread over the 90 days (judgments on more than 80 of them).
    const [spread] = await prisma.$queryRaw<{ days: bigint; future: bigint }[]>`
      SELECT count(DISTINCT date_trunc('day', "createdAt")) AS days, count(*) FILTER (WHERE "createdAt" > now()) AS future
      FROM "Preference"`;
    expect(spread!.future).toBe(0n);
    expect(Number(spread!.days)).toBeGreaterThan(80);

    // The queue's sweep frees exactly the stale leases' slots.
    const rating = new RatingService(prisma);
    expect(await rating.expireLeases(project.id)).toBe(seeded.stale);
    expect(await prisma.comparison.count({ where: { ...where, leaseCount: { gt: 0 } } })).toBe(0);

    // The Quality tab reads the comparisons of the latest QUALITY_WINDOW judgments, whole: 60,000
    // judgments stored, the window's comparisons each with their three.
    const quality = await new QualityService(prisma).ofProject(project.id);
    expect(quality.judgments).toBeGreaterThanOrEqual(QUALITY_WINDOW);
    expect(quality.judgments).toBeLessThan(QUALITY_WINDOW + 100);
    expect(quality.comparisonsWithMultipleJudgments).toBe(quality.judgments / 3);
    expect(quality.raters.reduce((sum, rater) => sum + rater.skips, 0)).toBeGreaterThan(0);

    // A second call adds to the same project without colliding.
    const more = await seedComparisons(prisma, project.id, 1_000);
    expect(more).toMatchObject({ comparisons: 1_000, judged: 0, judgments: 0 });
    expect(await prisma.comparison.count({ where })).toBe(COUNT + 1_000);
  });
});
