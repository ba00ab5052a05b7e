// Starts Loom: the database (embedded unless DATABASE_URL is set), migrations, the API and the web
// UI on one port; prints where to go and how the first admin signs in, last; and stops all of it
// (trainer worker and embedded PostgreSQL included) on Ctrl+C, SIGTERM or SIGHUP.
import type { FastifyInstance } from 'fastify';
import type { PgBoss } from 'pg-boss';
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from '../core/config.js';
import { openDatabase, type OpenDatabase } from '../core/db/open.js';
import { ensureDemoProject } from '../core/demo.js';
import { startBoss } from '../core/jobs.js';
import { stopOnSignals, within } from './shutdown.js';
import { startTrainerProcess, type TrainerProcess } from './trainer-process.js';
import { oneTimeLink, publicOrigin } from '../core/services/users.js';

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
  const say = (message: string) => console.log(`[loom] ${message}`);

  // What has started so far, stopped in the reverse order: requests first, the database last.
  let app: FastifyInstance | null = null;
  let trainer: TrainerProcess | null = null;
  let boss: PgBoss | null = null;
  let db: OpenDatabase | null = null;
  stopOnSignals({
    say,
    stop: async () => {
      if (app && !(await within(app.close(), 5_000))) {
        app.server.closeAllConnections();
        await within(app.close(), 2_000);
      }
      await trainer?.stop();
      if (boss) {
        // The queue's connections may yet see the database stop (a slow machine): expected now.
        boss.removeAllListeners('error');
        boss.on('error', () => {});
        await within(boss.stop({ graceful: false }), 5_000);
      }
      await db?.close();
    },
    force: () => trainer?.kill(),
  });

  say(
    config.databaseUrl
      ? 'Using the PostgreSQL server named by DATABASE_URL.'
      : `Starting the embedded PostgreSQL (data in ${config.dataDir}).`,
  );
  // The embedded server in a session of its own: Ctrl+C reaches only this process, which stops
  // the database after everything that uses it.
  db = await openDatabase(config, { log: say, detached: true });
  // The app only enqueues; trainer workers supervise the queue.
  boss = await startBoss(db.url, {
    supervise: false,
    heartbeatSeconds: config.trainerHeartbeatSeconds,
  });
  app = await buildApp({ config, prisma: db.prisma, boss });

  if (config.seedDemo && (await ensureDemoProject(db.prisma, boss))) {
    say(
      'Created the demo project "Practice problems with answer keys"; its first model is being prepared (progress on Rate and here).',
    );
  }
  if (config.startTrainer) trainer = startTrainerProcess(db.url, say);

  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const origin = publicOrigin(config.publicUrl, port);
  const setupToken = await app.services.users.issueSetupToken();
  // The worker's start-up lines come before the instructions, so that these end the output.
  if (trainer) await within(trainer.ready, 20_000);
  // One write, so that a reader of the output never sees half of these instructions.
  const lines = [`[loom] Loom is running at ${origin} (API docs: ${origin}/api/docs). Stop it with Ctrl+C.`];
  if (setupToken) {
    lines.push(
      '[loom] No admin exists yet. Create the first admin with this one-time link (valid 24 h, replaced at',
      '[loom] every start), or from a terminal: npm run cli -- create-user --email you@example.com --role admin',
      '',
      `  ${oneTimeLink(origin, 'setup', setupToken)}`,
      '',
    );
  } else {
    lines.push('[loom] Sign in with your account. Admins invite others under Users.');
  }
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((error: unknown) => {
  console.error(`[loom] Could not start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
