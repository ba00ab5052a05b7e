// The worker-thread side of runInThread: one job, with its own database connection and tfjs.
import { parentPort, workerData } from 'node:worker_threads';
import { createPrisma } from '../../core/db/client.js';
import type { JobName, JobPayloads } from '../../core/jobs.js';
import { runQueueOrder } from '../queue-order.js';
import { initBackend } from '../runtime.js';
import { DEFAULT_DEMO, seedDemo } from './seed-demo.js';
import type { ThreadSettings } from './thread.js';
import { runRound } from './training-round.js';

const { name, payload, settings } = workerData as {
  name: JobName;
  payload: JobPayloads[JobName];
  settings: ThreadSettings;
};
const log = (message: string) => parentPort?.postMessage({ log: message });

await initBackend();
const prisma = createPrisma(settings.databaseUrl, { max: 2, statementTimeoutMillis: 120_000 });
try {
  if (name === 'training-round') {
    await runRound(prisma, (payload as JobPayloads['training-round']).roundId, log);
  } else if (name === 'queue-order') {
    await runQueueOrder(prisma, (payload as JobPayloads['queue-order']).projectId, log);
  } else {
    await seedDemo(
      prisma,
      (payload as JobPayloads['seed-demo']).projectId,
      { ...DEFAULT_DEMO, sftSteps: settings.demoSftSteps, ...settings.demo },
      log,
    );
  }
  parentPort?.postMessage({ ok: true });
} catch (error) {
  parentPort?.postMessage({
    ok: false,
    error: error instanceof Error ? (error.stack ?? error.message) : String(error),
  });
} finally {
  await prisma.$disconnect();
}
