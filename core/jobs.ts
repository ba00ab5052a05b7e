// The job queue (pg-boss in PostgreSQL): a typed map from job name to payload, each with exactly
// one handler in the trainer worker (trainer/jobs/). Jobs are enqueued in the same transaction as
// the write that causes them, so a round is never created without its job or the other way round.
import { PgBoss } from 'pg-boss';
import type { Prisma } from './db/client.js';

export interface JobPayloads {
  /** Snapshot, reward model, policy optimization, evaluation, new version: one round, keyed by id. */
  'training-round': { roundId: string };
  /** The demo project's first policy: SFT on its demonstrations, then responses and comparisons. */
  'seed-demo': { projectId: string };
  /** Every minute: start the rounds that projects' schedules call for. */
  'round-scheduler': Record<string, never>;
  /** Prompts × external versions × samples, answered by the versions' endpoints; keyed by job id. */
  generation: { jobId: string };
  /**
   * The uncertainty queue order switched on: the project's open comparisons re-ordered by its
   * newest reward model (rounds re-order after training by themselves); keyed by project.
   */
  'queue-order': { projectId: string };
}
export type JobName = keyof JobPayloads;

interface QueueSettings {
  retryLimit: number;
  retryDelay: number;
  /** Bound on one attempt's run time. */
  expireInSeconds: number;
}

export const JOBS: Record<JobName, QueueSettings> = {
  'training-round': { retryLimit: 3, retryDelay: 5, expireInSeconds: 4 * 3600 },
  'seed-demo': { retryLimit: 3, retryDelay: 5, expireInSeconds: 3600 },
  'round-scheduler': { retryLimit: 0, retryDelay: 0, expireInSeconds: 120 },
  // A retry picks up the items still pending; an attempt may run for hours against slow endpoints.
  generation: { retryLimit: 5, retryDelay: 2, expireInSeconds: 12 * 3600 },
  'queue-order': { retryLimit: 3, retryDelay: 5, expireInSeconds: 3600 },
};
export const JOB_NAMES = Object.keys(JOBS) as JobName[];

export interface BossOptions {
  /** Seconds without a heartbeat after which a running job counts as crashed and is retried. */
  heartbeatSeconds?: number;
  /** How often the supervisor looks for crashed jobs. */
  monitorIntervalSeconds?: number;
  /** Workers supervise; the app only sends. */
  supervise?: boolean;
}

export async function startBoss(databaseUrl: string, options: BossOptions = {}): Promise<PgBoss> {
  const boss = new PgBoss({
    connectionString: databaseUrl,
    schema: 'pgboss',
    max: 4,
    supervise: options.supervise ?? true,
    monitorIntervalSeconds: options.monitorIntervalSeconds ?? 30,
    openTelemetry: { enabled: false },
  });
  boss.on('error', (error) => console.error('[jobs]', error));
  await boss.start();
  for (const name of JOB_NAMES) {
    const settings = { ...JOBS[name], heartbeatSeconds: options.heartbeatSeconds ?? 60 };
    // Idempotent: creates the queue or brings its settings up to date.
    if (await boss.getQueue(name)) await boss.updateQueue(name, settings);
    else await boss.createQueue(name, settings);
  }
  return boss;
}

/**
 * Enqueues inside a Prisma interactive transaction: the job row commits or rolls back with it.
 * The singleton key makes a repeated enqueue of the same key a no-op while one is pending.
 */
export async function enqueue<N extends JobName>(
  boss: PgBoss,
  tx: Prisma.TransactionClient,
  name: N,
  payload: JobPayloads[N],
  singletonKey: string,
): Promise<void> {
  await boss.send(name, payload, {
    singletonKey,
    db: {
      executeSql: async (text: string, values: unknown[] = []) => ({
        rows: await tx.$queryRawUnsafe<unknown[]>(text, ...values),
      }),
    },
  });
}
