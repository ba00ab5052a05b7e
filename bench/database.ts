// A fresh, migrated database for one benchmark run, on the server named by TEST_DATABASE_URL or
// DATABASE_URL (default: the local PostgreSQL), dropped afterwards.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { poolOf, type PrismaClient } from '../core/db/client.js';
import { applyMigrations } from '../core/db/migrate.js';

export interface BenchDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function benchDatabase(prefix: string): Promise<BenchDatabase> {
  const admin =
    process.env.TEST_DATABASE_URL ??
    process.env.DATABASE_URL ??
    'postgresql://postgres@127.0.0.1:5432/postgres';
  const name = `loom_bench_${prefix}_${randomBytes(4).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  await client.query(`CREATE DATABASE "${name}"`);
  const url = new URL(admin);
  url.pathname = `/${name}`;
  const drop = async () => {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await client.end();
  };
  try {
    await applyMigrations(url.toString());
  } catch (error) {
    await drop();
    throw error;
  }
  return { url: url.toString(), drop };
}

/** What months of use leave behind a project's comparisons (see seedComparisons). */
export interface SeedOptions {
  /**
   * Share of the comparisons already judged to the full overlap (3 SUBMITTED leases, 3 judgments,
   * spread over `days` of history); the rest are open, unjudged. Default 0.
   */
  judged?: number;
  /** Raters the judged history belongs to (at least 5; required when `judged` > 0). */
  raterIds?: string[];
  /** Of the judged comparisons, the share that also had a lease expire unjudged (swept: EXPIRED). */
  expired?: number;
  /** Of the judged comparisons, the share that a rater also skipped (SKIPPED). */
  skipped?: number;
  /**
   * Of the open comparisons, the share holding a lease past its expiry that no sweep has freed yet
   * (LEASED, its slot taken): what a sweep finds after raters close their tabs.
   */
  stale?: number;
  /** Days of history the judged comparisons' timestamps spread over. Default 90. */
  days?: number;
  /** Rows per statement (each its own transaction). Default 50,000. */
  batch?: number;
}

/** What seedComparisons wrote. */
export interface SeedCounts {
  comparisons: number;
  judged: number;
  judgments: number;
  expired: number;
  skipped: number;
  stale: number;
}

let seeded = 0;

/**
 * `count` single-turn prompts in a project, two responses each (sources model-1 and model-2) and
 * one comparison per prompt wanting 3 judgments. Written by SQL in batches of `batch` comparisons,
 * each batch one statement and one transaction with no statement timeout (5,000,000 comparisons
 * take minutes, not one statement of hours). With `judged`, the first comparisons of each batch come
 * with the leases and judgments of months of rating (and expired, skipped and stale leases in the
 * given proportions); the tables are analyzed at the end, as autovacuum would have done.
 */
export async function seedComparisons(
  prisma: PrismaClient,
  projectId: string,
  count: number,
  options: SeedOptions = {},
): Promise<SeedCounts> {
  const judgedShare = options.judged ?? 0;
  const raterIds = options.raterIds ?? [];
  if ((judgedShare > 0 || (options.stale ?? 0) > 0) && raterIds.length < 5)
    throw new Error('judged history and stale leases need at least 5 raters');
  const batch = options.batch ?? 50_000;
  const days = options.days ?? 90;
  const totals: SeedCounts = { comparisons: 0, judged: 0, judgments: 0, expired: 0, skipped: 0, stale: 0 };
  // A connection of its own, without the pool's statement and read timeouts. Foreign keys are not
  // checked row by row (session_replication_role: the rows are consistent by construction, as the
  // seeding test checks) and commits do not wait for the disk: a bulk load, not rating.
  const client = new pg.Client({
    connectionString: poolOf(prisma).options.connectionString,
    options:
      '-c statement_timeout=0 -c jit=off -c synchronous_commit=off -c session_replication_role=replica -c maintenance_work_mem=256MB',
  });
  await client.connect();
  try {
    for (let done = 0; done < count; done += batch) {
      const size = Math.min(batch, count - done);
      const judged = Math.round(size * judgedShare);
      const first = seeded + 1;
      seeded += size;
      // One row per comparison with every id it needs; i < judged: the judged history. Raters of a
      // comparison are five consecutive ones (mod the pool) from a spread start: three judged it,
      // the fourth let a lease expire, the fifth skipped it.
      const { rows } = await client.query<{
        judgments: string;
        expired: string;
        skipped: string;
        stale: string;
      }>(
        `WITH g AS MATERIALIZED (
           SELECT i, i < $4 AS judged, gen_random_uuid() AS prompt, gen_random_uuid() AS ra, gen_random_uuid() AS rb,
                  gen_random_uuid() AS comparison,
                  CASE WHEN i < $4 THEN now() - make_interval(secs => ($6::float8 * 86400) * (1 - (i::float8 / $4)) + 3600)
                       ELSE now() - interval '10 minutes' END AS at,
                  (i * 7919) % $7 AS r0,
                  random() AS u1, random() AS u2, random() AS u3
           FROM generate_series(0, $3 - 1) i
         ), p AS (
           INSERT INTO "Prompt" (id, "projectId", messages, "createdAt")
           SELECT prompt, $1::uuid, jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'Question ' || ($2 + i))), at FROM g
         ), r AS (
           INSERT INTO "Response" (id, "promptId", text, source, "createdAt")
           SELECT ra, prompt, 'Answer 1 to question ' || ($2 + i), 'model-1', at FROM g
           UNION ALL SELECT rb, prompt, 'Answer 2 to question ' || ($2 + i), 'model-2', at FROM g
         ), c AS (
           INSERT INTO "Comparison" (id, "projectId", "promptId", "responseAId", "responseBId", "requiredVotes", "voteCount", "leaseCount", "createdAt")
           SELECT comparison, $1::uuid, prompt, ra, rb, 3, CASE WHEN judged THEN 3 ELSE 0 END,
                  CASE WHEN NOT judged AND u3 < $10 THEN 1 ELSE 0 END, at FROM g
         ), leases AS (
           SELECT g.*, k, ($5::uuid[])[1 + (r0 + k) % $7] AS rater, (u1 * 1000)::int % 2 = 1 AS swapped,
                  at + make_interval(secs => 60 + k * 37) AS done
           FROM g, generate_series(0, 4) k
           WHERE judged AND (k < 3 OR (k = 3 AND u1 < $8) OR (k = 4 AND u2 < $9))
         ), a AS (
           INSERT INTO "Assignment" (id, "comparisonId", "raterId", status, swapped, "leasedAt", "expiresAt", "completedAt", "skipReason")
           SELECT CASE WHEN k < 3 THEN md5(comparison::text || k)::uuid ELSE gen_random_uuid() END, comparison, rater,
                  (CASE k WHEN 3 THEN 'EXPIRED' WHEN 4 THEN 'SKIPPED' ELSE 'SUBMITTED' END)::"AssignmentStatus",
                  swapped, done - interval '40 seconds', done + interval '560 seconds',
                  CASE WHEN k = 3 THEN NULL ELSE done END, CASE WHEN k = 4 THEN 'Cannot judge' END
           FROM leases
           UNION ALL
           SELECT gen_random_uuid(), comparison, ($5::uuid[])[1 + r0 % $7], 'LEASED', false,
                  now() - interval '2 hours', now() - interval '1 hour', NULL, NULL
           FROM g WHERE NOT judged AND u3 < $10
         ), j AS (
           INSERT INTO "Preference" ("comparisonId", "raterId", "assignmentId", source, choice, strength, "shownSwapped", "timeSpentMs", "createdAt")
           SELECT comparison, rater, md5(comparison::text || k)::uuid, 'HUMAN',
                  (CASE WHEN ((u1 + k * 0.29) - floor(u1 + k * 0.29)) < 0.45 THEN 'A' WHEN ((u1 + k * 0.29) - floor(u1 + k * 0.29)) < 0.9 THEN 'B' WHEN ((u1 + k * 0.29) - floor(u1 + k * 0.29)) < 0.97 THEN 'TIE' ELSE 'BOTH_BAD' END)::"Choice",
                  ((u2 * 10)::int + k) % 3, swapped, 4000 + ((u2 * 100000)::int + k * 7001) % 60000, done
           FROM leases WHERE k < 3
         )
         SELECT (SELECT count(*) FROM leases WHERE k < 3) AS judgments,
                (SELECT count(*) FROM leases WHERE k = 3) AS expired,
                (SELECT count(*) FROM leases WHERE k = 4) AS skipped,
                (SELECT count(*) FROM g WHERE NOT judged AND u3 < $10) AS stale`,
        [
          projectId,
          first,
          size,
          judged,
          raterIds.length > 0 ? raterIds : [projectId],
          days,
          Math.max(1, raterIds.length),
          options.expired ?? 0,
          options.skipped ?? 0,
          options.stale ?? 0,
        ],
      );
      const row = rows[0]!;
      totals.comparisons += size;
      totals.judged += judged;
      totals.judgments += Number(row.judgments);
      totals.expired += Number(row.expired);
      totals.skipped += Number(row.skipped);
      totals.stale += Number(row.stale);
    }
    // A running database has its statistics (and visibility map) from autovacuum.
    for (const table of ['Prompt', 'Response', 'Comparison', 'Assignment', 'Preference'])
      await client.query(`VACUUM (ANALYZE) "${table}"`);
  } finally {
    await client.end();
  }
  return totals;
}
