// What the database says about the work in it, for the Prometheus metrics (server/plugins/metrics.ts):
// the rating queue per project, leases out and expired, recent judgments, rounds, generation jobs
// and the job queue by state. Read on scrape, one cheap query each, all in one short read-only
// transaction on one pooled connection; kept for a few seconds, so any number of scrapers (or
// replicas scraped at once) cost the database one read per interval.
import { poolOf, type PrismaClient } from '../db/client.js';

export interface ProjectQueue {
  projectId: string;
  project: string;
  /** Judgments still wanted: the free and leased slots of open comparisons. */
  judgments: number;
  /** Comparisons still open (fewer votes than required). */
  comparisons: number;
}

export interface ProjectLeases {
  projectId: string;
  project: string;
  /** Leases out now (status LEASED), expired ones included until the sweep closes them. */
  out: number;
  /** Leases past their expiry that still hold their slot. */
  expired: number;
}

export interface DatabaseGauges {
  queues: ProjectQueue[];
  leases: ProjectLeases[];
  /** Judgments stored in the last hour, by source (HUMAN, SIMULATED, IMPORTED), by every process. */
  judgmentsLastHour: Record<string, number>;
  rounds: Record<string, number>;
  /** Null while the GenerationJob table does not exist (a database migrated before it). */
  generationJobs: Record<string, number> | null;
  /** pg-boss jobs by queue and state; null while the job queue's schema does not exist. */
  jobs: Array<{ queue: string; state: string; count: number }> | null;
  /** When these were read. */
  readAt: number;
  /** How long the reads took, in seconds. */
  durationSeconds: number;
}

export const ROUND_STATES = ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'] as const;
export const GENERATION_STATES = ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'] as const;
export const JUDGMENT_SOURCES = ['HUMAN', 'SIMULATED', 'IMPORTED'] as const;
/** pg-boss's job states. */
export const JOB_STATES = ['created', 'retry', 'active', 'completed', 'cancelled', 'failed'] as const;

/** A metrics read is never allowed to hold the database for long. */
const STATEMENT_TIMEOUT_MS = 2_000;

const QUEUES = `
  SELECT p.id AS "projectId", p.name AS project,
         COALESCE(sum(c."requiredVotes" - c."voteCount"), 0)::int AS judgments,
         count(c.id)::int AS comparisons
  FROM "Project" p
  LEFT JOIN "Comparison" c ON c."projectId" = p.id AND c.open
  WHERE p."archivedAt" IS NULL
  GROUP BY p.id, p.name`;

// The open leases' own partial index (status = 'LEASED') keeps this as small as the leases out.
const LEASES = `
  SELECT p.id AS "projectId", p.name AS project, count(*)::int AS out,
         count(*) FILTER (WHERE a."expiresAt" < now())::int AS expired
  FROM "Assignment" a
  JOIN "Comparison" c ON c.id = a."comparisonId"
  JOIN "Project" p ON p.id = c."projectId"
  WHERE a.status = 'LEASED'
  GROUP BY p.id, p.name`;

// Read through the index on createdAt: an hour's judgments, not all of them.
const RECENT_JUDGMENTS = `
  SELECT source::text AS key, count(*)::int AS count
  FROM "Preference" WHERE "createdAt" > now() - interval '1 hour'
  GROUP BY 1`;

const ROUNDS = `SELECT status::text AS key, count(*)::int AS count FROM "TrainingRound" GROUP BY 1`;
const GENERATION_JOBS = `SELECT status::text AS key, count(*)::int AS count FROM "GenerationJob" GROUP BY 1`;
const JOBS = `SELECT name AS queue, state::text AS state, count(*)::int AS count FROM pgboss.job GROUP BY 1, 2`;
const TABLES = `SELECT to_regclass('public."GenerationJob"') IS NOT NULL AS generation,
                       to_regclass('pgboss.job') IS NOT NULL AS jobs`;

function byKey(rows: Array<{ key: string; count: number }>, keys: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(keys.map((key) => [key, 0]));
  for (const row of rows) counts[row.key] = row.count;
  return counts;
}

export class MetricsService {
  private cached: DatabaseGauges | null = null;
  private reading: Promise<DatabaseGauges> | null = null;

  constructor(
    private readonly prisma: PrismaClient,
    /** How long a read is reused. */
    private readonly maxAgeMs = 5_000,
  ) {}

  /** The gauges, read again when older than maxAgeMs; concurrent callers share one read. */
  async gauges(): Promise<DatabaseGauges> {
    if (this.cached && Date.now() - this.cached.readAt < this.maxAgeMs) return this.cached;
    this.reading ??= this.read().finally(() => (this.reading = null));
    return (this.cached = await this.reading);
  }

  /** The connection pool under Prisma: connections open, idle, and requests waiting for one. */
  pool(): { total: number; idle: number; waiting: number; max: number } {
    const pool = poolOf(this.prisma);
    return {
      total: pool.totalCount,
      idle: pool.idleCount,
      waiting: pool.waitingCount,
      max: pool.options.max ?? 10,
    };
  }

  private async read(): Promise<DatabaseGauges> {
    const started = performance.now();
    const client = await poolOf(this.prisma).connect();
    let failed = false;
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await client.query(`SET LOCAL statement_timeout = ${STATEMENT_TIMEOUT_MS}`);
      const tables = (await client.query<{ generation: boolean; jobs: boolean }>(TABLES)).rows[0]!;
      const queues = (await client.query<ProjectQueue>(QUEUES)).rows;
      const leases = (await client.query<ProjectLeases>(LEASES)).rows;
      type Count = { key: string; count: number };
      const recent = (await client.query<Count>(RECENT_JUDGMENTS)).rows;
      const rounds = (await client.query<Count>(ROUNDS)).rows;
      const generation = tables.generation ? (await client.query<Count>(GENERATION_JOBS)).rows : null;
      const jobs = tables.jobs
        ? (await client.query<{ queue: string; state: string; count: number }>(JOBS)).rows
        : null;
      await client.query('COMMIT');
      return {
        queues,
        leases,
        judgmentsLastHour: byKey(recent, JUDGMENT_SOURCES),
        rounds: byKey(rounds, ROUND_STATES),
        generationJobs: generation && byKey(generation, GENERATION_STATES),
        jobs,
        readAt: Date.now(),
        durationSeconds: (performance.now() - started) / 1000,
      };
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      // A connection whose transaction failed midway is dropped rather than reused.
      client.release(failed);
    }
  }
}
