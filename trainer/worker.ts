// The trainer worker process (`npm run trainer`, a docker-compose service, any number of
// replicas): takes jobs from the queue in PostgreSQL, exactly one handler per job name.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import closeWithGrace from 'close-with-grace';
import { ConfigError, loadConfig } from '../core/config.js';
import { openDatabase } from '../core/db/open.js';
import { JOB_NAMES, startBoss, type JobName, type JobPayloads } from '../core/jobs.js';
import { RoundService } from '../core/services/rounds.js';
import { runGeneration } from './jobs/generation.js';
import { endpointDeps } from './jobs/generation-endpoints.js';
import { runInThread, type ThreadSettings } from './jobs/thread.js';

/** Touched while the worker is alive; trainer/healthcheck.ts reads its age. */
const HEARTBEAT_FILE = 'trainer-heartbeat';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
  const say = (message: string) => console.log(`[trainer] ${message}`);
  if (!config.databaseUrl) say('No DATABASE_URL: using the embedded PostgreSQL under DATA_DIR.');
  const db = await openDatabase(config, { log: say, poolMax: 2 });
  const boss = await startBoss(db.url, {
    heartbeatSeconds: config.trainerHeartbeatSeconds,
    monitorIntervalSeconds: config.jobMonitorSeconds,
  });
  const settings: ThreadSettings = { databaseUrl: db.url, demoSftSteps: config.demoSftSteps };
  const handlers: { [N in JobName]: (payload: JobPayloads[N], signal: AbortSignal) => Promise<void> } = {
    'training-round': (payload) => runInThread('training-round', payload, settings, say),
    'seed-demo': (payload) => runInThread('seed-demo', payload, settings, say),
    // Scoring the open comparisons keeps a core busy: a thread of its own, like a round.
    'queue-order': (payload) => runInThread('queue-order', payload, settings, say),
    'round-scheduler': async () => {
      // Promotions first: a round the schedule starts then trains from the promoted version.
      for (const version of await rounds.autoPromote())
        say(`promoted ${version.name}: raters prefer it to its parent (${version.votes} votes)`);
      const started = await rounds.runSchedules();
      if (started.length) say(`scheduled ${started.length} round(s)`);
    },
    // Waits on endpoints, not the CPU: runs on this thread.
    generation: (payload, signal) =>
      runGeneration(db.prisma, payload.jobId, { ...endpointDeps(db.prisma, config), log: say, signal }),
  };
  const rounds = new RoundService(db.prisma, () => boss);
  await boss.schedule('round-scheduler', '* * * * *', {}, { singletonKey: 'round-scheduler' });
  for (const name of JOB_NAMES) {
    await boss.work<JobPayloads[typeof name]>(
      name,
      { batchSize: 1, pollingIntervalSeconds: 1 },
      async ([job]) => {
        if (job)
          await (handlers[name] as (payload: JobPayloads[typeof name], signal: AbortSignal) => Promise<void>)(
            job.data,
            job.signal,
          );
      },
    );
  }

  mkdirSync(config.dataDir, { recursive: true });
  const beat = () => writeFileSync(path.join(config.dataDir, HEARTBEAT_FILE), new Date().toISOString());
  beat();
  const timer = setInterval(beat, 10_000);
  closeWithGrace({ delay: 30_000 }, async ({ signal, err }) => {
    if (err) console.error('[trainer] stopping after an error', err);
    else say(`stopping (${signal})`);
    clearInterval(timer);
    await boss.stop({ graceful: true, timeout: 20_000 });
    await db.close();
  });
  say(`ready: ${JOB_NAMES.join(', ')}`);
}

main().catch((error: unknown) => {
  console.error(`[trainer] Could not start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
