// Opens the database for a process (server, CLI, trainer): the configured server or the embedded
// one, migrated, with a Prisma client; and closes all of it again.
import pg from 'pg';
import type { Config } from '../config.js';
import { createPrisma, type PrismaClient } from './client.js';
import { startEmbeddedPostgres } from './embedded.js';
import { applyMigrations } from './migrate.js';

export interface OpenDatabase {
  url: string;
  prisma: PrismaClient;
  embedded: boolean;
  close(): Promise<void>;
}

export interface OpenOptions {
  log?: (message: string) => void;
  /** Logs of the embedded server itself (noisy; off unless debugging). */
  postgresLog?: (message: string) => void;
  poolMax?: number;
  /** Run the embedded server in a session of its own (see EmbeddedOptions.detached). */
  detached?: boolean;
}

export async function openDatabase(config: Config, options: OpenOptions = {}): Promise<OpenDatabase> {
  const log = options.log ?? (() => {});
  let url = config.databaseUrl;
  let stopEmbedded = async () => {};
  if (!url) {
    const embedded = await startEmbeddedPostgres(config.dataDir, {
      log,
      postgresLog: options.postgresLog,
      detached: options.detached,
      // The server (detached) owns the cluster: one left running by a killed start is its to stop.
      adoptOrphan: options.detached,
    });
    url = embedded.url;
    stopEmbedded = embedded.stop;
  }
  try {
    // One line for all of them (the first start applies every migration there is).
    const { applied } = await applyMigrations(url, () => {});
    if (applied.length) log(`Applied ${applied.length} migration(s); the database is up to date.`);
    await warnOnUnsafeDurability(url, log);
  } catch (error) {
    await stopEmbedded();
    throw error;
  }
  const prisma = createPrisma(url, { max: options.poolMax ?? config.dbPoolMax });
  return {
    url,
    prisma,
    embedded: !config.databaseUrl,
    async close() {
      await prisma.$disconnect();
      await stopEmbedded();
    },
  };
}

/** An acknowledged preference must survive a crash; these settings would break that promise. */
async function warnOnUnsafeDurability(url: string, log: (message: string) => void): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    for (const setting of ['fsync', 'synchronous_commit', 'full_page_writes']) {
      const { rows } = await client.query<Record<string, string>>(`SHOW ${setting}`);
      const value = rows[0]?.[setting];
      if (value === 'off')
        log(`WARNING: PostgreSQL has ${setting}=off; acknowledged ratings can be lost in a crash.`);
    }
  } finally {
    await client.end();
  }
}
