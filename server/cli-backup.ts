// `npm run cli -- backup --out FILE` and `npm run cli -- restore FILE [--force]`: the whole database
// in one file and back (core/db/backup.ts), on the embedded default or DATABASE_URL, with progress.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Presets, SingleBar } from 'cli-progress';
import { loadConfig } from '../core/config.js';
import { backupDatabase, BackupError, restoreDatabase } from '../core/db/backup.js';
import { startEmbeddedPostgres } from '../core/db/embedded.js';

export const BACKUP_HELP = `Usage:
  npm run cli -- backup --out <file>            back up the whole database into one file
  npm run cli -- restore <file> [--force]       restore a backup into the database

The database is DATABASE_URL, or the embedded PostgreSQL under DATA_DIR (started for the command
when Loom is not running). A backup is one consistent moment, taken while Loom keeps running; its
file (gzip; readable by you only) holds every table, the schema's migrations and the unfinished
jobs of the job queue. Keep SESSION_SECRET (DATA_DIR/session-secret on the embedded default) with
it: API tokens, sessions and exports' rater pseudonyms depend on it; passwords do not.

Restore first reads the whole file and checks it. It is refused while Loom's servers or workers
are connected to the database, and over a database that holds data unless --force is given (which
replaces everything in it). It restores the schema the backup had, then applies newer migrations.

Options:
  --out <file>   (backup) where to write; an existing file is refused unless --force
  --force        (backup) overwrite --out; (restore) replace a database that holds data
  --quiet        no progress bar

Exit codes: 0 done, 1 unexpected failure, 2 bad usage or a damaged backup, 3 refused (data or
running servers), 4 no such file.`;

interface Target {
  url: string;
  where: string;
  /** True when another process (the server) runs the embedded PostgreSQL. */
  shared: boolean;
  close(): Promise<void>;
}

async function target(): Promise<Target> {
  const config = loadConfig();
  if (config.databaseUrl) {
    const url = new URL(config.databaseUrl);
    return {
      url: config.databaseUrl,
      where: `${url.hostname}:${url.port || 5432}${url.pathname}`,
      shared: false,
      close: async () => {},
    };
  }
  const embedded = await startEmbeddedPostgres(config.dataDir, { log: (line) => console.log(line) });
  return {
    url: embedded.url,
    where: `the embedded PostgreSQL in ${config.dataDir}`,
    shared: embedded.reused,
    close: embedded.stop,
  };
}

function bar(quiet: boolean, unit: string): SingleBar | null {
  if (quiet || !process.stdout.isTTY) return null;
  return new SingleBar(
    { format: `{step} |{bar}| {value}/{total} ${unit}`, hideCursor: true, clearOnComplete: true },
    Presets.shades_classic,
  );
}

function size(bytes: number): string {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MB` : `${(bytes / 1024).toFixed(1)} kB`;
}

export async function backupCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      out: { type: 'string' },
      force: { type: 'boolean' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) return void console.log(BACKUP_HELP);
  if (!values.out) throw new BackupError('--out <file> is required.');
  const file = path.resolve(values.out);
  if (existsSync(file) && !values.force)
    throw new BackupError(`${file} exists; choose another name or add --force to overwrite it.`, 3);
  const db = await target();
  const progress = bar(Boolean(values.quiet), 'rows (estimated total)');
  try {
    console.log(`Backing up ${db.where} to ${file}`);
    let started = false;
    const startedAt = Date.now();
    const summary = await backupDatabase(db.url, file, {
      rows(done, total) {
        if (!progress) return;
        if (!started) progress.start(total, 0, { step: 'backup' });
        started = true;
        progress.setTotal(total);
        progress.update(done);
      },
    });
    progress?.stop();
    const jobs = summary.rows['pgboss.job'] ?? 0;
    const rows = Object.values(summary.rows).reduce((sum, n) => sum + n, 0) - jobs;
    const tables = Object.keys(summary.rows).filter((section) => section !== 'pgboss.job').length;
    console.log(
      `Backed up ${rows} rows in ${tables} tables` +
        ` and ${jobs} unfinished job(s) at migration ${summary.migrations}: ${file} (${size(summary.bytes)}, ` +
        `${((Date.now() - startedAt) / 1000).toFixed(1)} s).`,
    );
  } finally {
    progress?.stop();
    await db.close();
  }
}

export async function restoreCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      force: { type: 'boolean' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return void console.log(BACKUP_HELP);
  if (positionals.length !== 1) throw new BackupError('Name one backup file: restore <file> [--force].');
  const file = path.resolve(positionals[0]!);
  if (!existsSync(file)) throw new BackupError(`No backup file ${file}.`, 4);
  const db = await target();
  const progress = bar(Boolean(values.quiet), 'rows');
  try {
    if (db.shared)
      throw new BackupError('Loom is running on this database (npm start); stop it before restoring.', 3);
    console.log(`Restoring ${file} into ${db.where}`);
    let started = false;
    const restored = await restoreDatabase(db.url, file, {
      force: Boolean(values.force),
      progress: {
        step(message) {
          if (progress && started) progress.update({ step: message });
          else console.log(`  ${message}`);
        },
        rows(done, total) {
          if (!progress) return;
          if (!started) progress.start(total, 0, { step: 'restore' });
          started = true;
          progress.update(done);
        },
      },
    });
    progress?.stop();
    const jobs = restored['pgboss.job'] ?? 0;
    const rows = Object.values(restored).reduce((sum, n) => sum + n, 0) - jobs;
    console.log(`Restored ${rows} rows and ${jobs} unfinished job(s). Start Loom as usual.`);
  } finally {
    progress?.stop();
    await db.close();
  }
}
