// Starts Loom: the database (embedded unless DATABASE_URL is set), migrations, the API and the web
// UI on one port; prints where to go and how the first admin signs in; shuts down gracefully.
import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { openDatabase } from './db/open.js';
import { ensureDemoProject } from './demo.js';
import { startBoss } from './jobs.js';
import { startTrainerProcess, type TrainerProcess } from './trainer-process.js';
import { oneTimeLink, publicOrigin } from './services/users.js';

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
  say(
    config.databaseUrl
      ? 'Using the PostgreSQL server named by DATABASE_URL.'
      : `Starting the embedded PostgreSQL (data in ${config.dataDir}).`,
  );
  const db = await openDatabase(config, { log: say });
  // The app only enqueues; trainer workers supervise the queue.
  const boss = await startBoss(db.url, {
    supervise: false,
    heartbeatSeconds: config.trainerHeartbeatSeconds,
  });
  const app = await buildApp({ config, prisma: db.prisma, boss });
  let trainer: TrainerProcess | null = null;

  closeWithGrace({ delay: 30_000 }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an error');
    else app.log.info({ signal }, 'shutting down');
    await app.close();
    await trainer?.stop();
    await boss.stop({ graceful: false });
    await db.close();
  });

  if (config.seedDemo && (await ensureDemoProject(db.prisma, boss))) {
    say('Created the demo project "Practice problems with answer keys"; its first model is being trained.');
  }
  if (config.startTrainer) trainer = startTrainerProcess(db.url, say);

  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const origin = publicOrigin(config.publicUrl, port);
  say(`Loom is running at ${origin}  (API docs: ${origin}/api/docs)`);
  const setupToken = await app.services.users.issueSetupToken();
  if (setupToken) {
    // One write, so that a reader of the output never sees half of these instructions.
    say(
      [
        'No admin exists yet. Create the first admin with this one-time link (valid 24 h, replaced at every start):',
        `  ${oneTimeLink(origin, 'setup', setupToken)}`,
        'or from a terminal: npm run cli -- create-user --email you@example.com --role admin',
      ].join('\n[loom] '),
    );
  } else {
    say('Sign in with your account. Admins invite others under Users.');
  }
}

main().catch((error: unknown) => {
  console.error(`[loom] Could not start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
