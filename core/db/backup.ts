// Backups of Loom's database in one file, and their restore, with nothing but a connection: the
// embedded PostgreSQL ships no pg_dump, and a system pg_dump older than the server cannot dump it.
//
// The file is gzip-compressed lines: a JSON header (format, the migrations the database had, its
// tables and sequences), then for each table a JSON line naming it and its columns followed by its
// rows in PostgreSQL's COPY text format and a `\.` line, then the job queue's unfinished jobs the
// same way, then a JSON trailer with every section's row count. All of it is read in one
// REPEATABLE READ READ ONLY transaction: one consistent moment, while the server goes on working.
//
// The schema is not in the file: it is the migrations. A restore empties the target (the `public`
// and `pgboss` schemas), applies the backup's migrations, loads the rows with foreign keys dropped
// and user triggers off (then adds the keys back, which checks them), sets the sequences, applies
// the migrations this version of Loom has beyond the backup's, and puts the unfinished jobs back in
// the job queue, so a round that was queued or running when the backup was made runs again.
import { once } from 'node:events';
import { createReadStream, createWriteStream, renameSync, rmSync, statSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { startBoss } from '../jobs.js';
import { applyMigrations, readMigrations, type Migration } from './migrate.js';

export const BACKUP_FORMAT = 'loom-backup';
export const BACKUP_VERSION = 1;
/** The job states worth restoring: work not done yet. Finished jobs are history. */
const UNFINISHED_JOB_STATES = ['created', 'retry', 'active'];
const JOBS_TABLE = 'pgboss.job';

/** A backup or restore refused or failed for a reason the user can act on; exitCode for the CLI. */
export class BackupError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
  }
}

export interface BackupHeader {
  format: typeof BACKUP_FORMAT;
  version: number;
  createdAt: string;
  postgres: string;
  migrations: Array<{ name: string; checksum: string }>;
  tables: string[];
  sequences: Array<{ name: string; lastValue: string | null }>;
}

interface SectionLine {
  /** `public.<table>` or `pgboss.job`. */
  section: string;
  columns: string[];
}

interface TrailerLine {
  end: true;
  rows: Record<string, number>;
}

export interface BackupSummary {
  file: string;
  bytes: number;
  rows: Record<string, number>;
  migrations: number;
}

export interface Progress {
  /** Rows written or read so far, of about `total` (an estimate on backup). */
  rows?(done: number, total: number): void;
  /** Bytes of the file read so far, of `total`. */
  bytes?(done: number, total: number): void;
  /** A step of the work, for the person watching. */
  step?(message: string): void;
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;
const qualified = (section: string) => {
  const dot = section.indexOf('.');
  return `${quote(section.slice(0, dot))}.${quote(section.slice(dot + 1))}`;
};

function connect(url: string, name: string): pg.Client {
  return new pg.Client({ connectionString: url, application_name: name, connectionTimeoutMillis: 10_000 });
}

/** Writes to a stream, waiting when it asks to (and failing if it fails meanwhile). */
class Sink {
  private failure: Error | null = null;
  private readonly failed: Promise<never>;
  constructor(private readonly stream: Writable) {
    this.failed = new Promise((_, reject) =>
      stream.once('error', (error) => {
        this.failure = error;
        reject(error);
      }),
    );
    this.failed.catch(() => {});
  }
  async write(chunk: string | Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.stream.write(chunk)) await Promise.race([once(this.stream, 'drain'), this.failed]);
  }
}

function countNewlines(chunk: Buffer): number {
  let count = 0;
  for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) count++;
  return count;
}

/**
 * Backs up the database at `url` into `file` (written as `file.partial` and renamed when complete,
 * so a failed backup never leaves a file that looks whole). Readable by its owner only: it holds
 * password hashes and everything else.
 */
export async function backupDatabase(
  url: string,
  file: string,
  progress: Progress = {},
): Promise<BackupSummary> {
  const client = connect(url, 'loom-backup');
  await client.connect();
  const partial = `${file}.partial`;
  const gzip = createGzip();
  const out = createWriteStream(partial, { mode: 0o600 });
  gzip.pipe(out);
  const sink = new Sink(gzip);
  out.once('error', (error) => gzip.destroy(error));
  let complete = false;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const found = await client.query<{ migrations: boolean; jobs: boolean; version: string }>(
      `SELECT to_regclass('public._prisma_migrations') IS NOT NULL AS migrations,
              to_regclass('${JOBS_TABLE}') IS NOT NULL AS jobs, current_setting('server_version') AS version`,
    );
    const { migrations: hasMigrations, jobs: hasJobs, version } = found.rows[0]!;
    if (!hasMigrations)
      throw new BackupError(
        'This database has no Loom schema (no _prisma_migrations table); nothing to back up.',
      );
    const migrations = await client.query<{ name: string; checksum: string }>(
      `SELECT migration_name AS name, checksum FROM "_prisma_migrations"
       WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY migration_name`,
    );
    const tables = await client.query<{ name: string; estimate: number }>(
      `SELECT c.relname AS name, greatest(c.reltuples, 0)::float8 AS estimate
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
         AND c.relname <> '_prisma_migrations'
       ORDER BY c.relname`,
    );
    const sequences = await client.query<{ name: string; lastValue: string | null }>(
      `SELECT sequencename AS name, last_value::text AS "lastValue" FROM pg_sequences
       WHERE schemaname = 'public' ORDER BY sequencename`,
    );
    const header: BackupHeader = {
      format: BACKUP_FORMAT,
      version: BACKUP_VERSION,
      createdAt: new Date().toISOString(),
      postgres: version,
      migrations: migrations.rows,
      tables: tables.rows.map((row) => row.name),
      sequences: sequences.rows,
    };
    await sink.write(JSON.stringify(header) + '\n');

    const sections = tables.rows.map((row) => ({ section: `public.${row.name}`, where: '' }));
    if (hasJobs)
      sections.push({
        section: JOBS_TABLE,
        where: ` WHERE state::text IN (${UNFINISHED_JOB_STATES.map((s) => `'${s}'`).join(', ')})`,
      });
    const total = Math.round(tables.rows.reduce((sum, row) => sum + row.estimate, 0));
    const rows: Record<string, number> = {};
    let done = 0;
    for (const { section, where } of sections) {
      const columns = await columnsOf(client, section);
      await sink.write(JSON.stringify({ section, columns } satisfies SectionLine) + '\n');
      const list = columns.map(quote).join(', ');
      const copy = client.query(copyTo(`COPY (SELECT ${list} FROM ${qualified(section)}${where}) TO STDOUT`));
      let count = 0;
      for await (const chunk of copy as AsyncIterable<Buffer>) {
        const lines = countNewlines(chunk);
        count += lines;
        done += lines;
        await sink.write(chunk);
        progress.rows?.(done, Math.max(total, done));
      }
      await sink.write('\\.\n');
      rows[section] = count;
    }
    await sink.write(JSON.stringify({ end: true, rows } satisfies TrailerLine) + '\n');
    await client.query('COMMIT');
    gzip.end();
    await once(out, 'close');
    renameSync(partial, file);
    complete = true;
    return { file, bytes: statSync(file).size, rows, migrations: migrations.rows.length };
  } finally {
    await client.end().catch(() => {});
    if (!complete) {
      gzip.destroy();
      out.destroy();
      rmSync(partial, { force: true });
    }
  }
}

/** A table's stored columns in order (generated columns are PostgreSQL's to compute). */
async function columnsOf(client: pg.Client, section: string): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT attname AS name FROM pg_attribute
     WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
     ORDER BY attnum`,
    [qualified(section)],
  );
  return rows.map((row) => row.name);
}

/** The file's lines, split at `\n` only (COPY's text format escapes every other line break). */
async function* linesOf(stream: Readable): AsyncGenerator<Buffer> {
  let rest: Buffer = Buffer.alloc(0);
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let data = rest.length ? Buffer.concat([rest, chunk]) : chunk;
    let start = 0;
    for (let at = data.indexOf(10); at !== -1; at = data.indexOf(10, start)) {
      yield data.subarray(start, at);
      start = at + 1;
    }
    data = data.subarray(start);
    rest = Buffer.from(data);
  }
  if (rest.length) yield rest;
}

function open(file: string, progress: Progress): Readable {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    throw new BackupError(`No backup file ${file}.`, 4);
  }
  const input = createReadStream(file);
  let read = 0;
  input.on('data', (chunk) => {
    read += chunk.length;
    progress.bytes?.(read, size);
  });
  const gunzip = createGunzip();
  input.on('error', (error) => gunzip.destroy(error));
  return input.pipe(gunzip);
}

function parseJson<T>(line: Buffer, what: string): T {
  try {
    return JSON.parse(line.toString('utf8')) as T;
  } catch {
    throw new BackupError(`Not a Loom backup, or a damaged one: ${what} is not readable.`);
  }
}

/** Reads a whole backup, checking its shape and every section's row count against the trailer. */
export async function checkBackup(
  file: string,
  progress: Progress = {},
): Promise<{ header: BackupHeader; rows: Record<string, number> }> {
  const lines = linesOf(open(file, progress));
  try {
    const first = await lines.next();
    if (first.done) throw new BackupError(`${file} is empty.`);
    const header = parseJson<BackupHeader>(first.value, 'the header');
    if (header.format !== BACKUP_FORMAT) throw new BackupError(`${file} is not a Loom backup.`);
    if (header.version > BACKUP_VERSION)
      throw new BackupError(
        `${file} was made by a newer Loom (backup format ${header.version}); restore it with that version.`,
      );
    const counted: Record<string, number> = {};
    let section: string | null = null;
    for await (const line of lines) {
      if (section !== null) {
        if (line.length === 2 && line[0] === 0x5c && line[1] === 0x2e) section = null;
        else counted[section]!++;
        continue;
      }
      const parsed = parseJson<Partial<SectionLine & TrailerLine>>(line, 'a section');
      if (parsed.end) {
        const expected = JSON.stringify(Object.entries(parsed.rows ?? {}).sort());
        if (JSON.stringify(Object.entries(counted).sort()) !== expected)
          throw new BackupError(`${file} is damaged: its row counts do not match its contents.`);
        return { header, rows: counted };
      }
      if (typeof parsed.section !== 'string' || !Array.isArray(parsed.columns))
        throw new BackupError(`${file} is damaged: a section has no name or columns.`);
      section = parsed.section;
      counted[section] = 0;
    }
    throw new BackupError(`${file} is incomplete (it ends before its last section); it cannot be restored.`);
  } catch (error) {
    if (error instanceof BackupError) throw error;
    throw new BackupError(`${file} is damaged or not a Loom backup: ${(error as Error).message}`);
  }
}

/** The migrations to apply for the backup: exactly its own, which this version of Loom must have. */
function migrationsFor(header: BackupHeader, known: Migration[]): Migration[] {
  return header.migrations.map((recorded, index) => {
    const migration = known[index];
    if (!migration || migration.name !== recorded.name)
      throw new BackupError(
        `The backup was made by a newer or different Loom: its migration ${recorded.name} is not this version's ` +
          `${migration ? migration.name : '(none)'}; restore it with the Loom that made it.`,
      );
    if (migration.checksum !== recorded.checksum)
      throw new BackupError(`The backup's migration ${recorded.name} differs from this version's.`);
    return migration;
  });
}

export interface RestoreOptions {
  /** Replace a database that holds data. */
  force?: boolean;
  progress?: Progress;
}

/** Tables of the target with rows in them (its data), or [] when it is empty. */
async function tablesWithData(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND c.relname <> '_prisma_migrations' ORDER BY c.relname`,
  );
  const withData: string[] = [];
  for (const { name } of rows) {
    const found = await client.query(`SELECT 1 FROM "public".${quote(name)} LIMIT 1`);
    if (found.rowCount) withData.push(name);
  }
  return withData;
}

/**
 * Restores `file` into the database at `url`: refused while Loom's servers or workers are connected
 * to it, and over data unless `force` (then everything in its `public` and `pgboss` schemas is
 * replaced).
 */
export async function restoreDatabase(
  url: string,
  file: string,
  options: RestoreOptions = {},
): Promise<Record<string, number>> {
  const progress = options.progress ?? {};
  progress.step?.('Checking the backup file');
  const { header, rows: expected } = await checkBackup(file);
  const known = readMigrations();
  const own = migrationsFor(header, known);

  const client = connect(url, 'loom-restore');
  await client.connect();
  try {
    // A process that has just stopped may still be listed for a moment while its sessions end.
    let others: pg.QueryResult<{ name: string; count: number }>;
    for (let attempt = 0; ; attempt++) {
      others = await client.query<{ name: string; count: number }>(
        `SELECT application_name AS name, count(*)::int AS count FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND (application_name LIKE 'loom%' OR application_name = 'pgboss')
         GROUP BY 1 ORDER BY 1`,
      );
      if (!others.rows.length || attempt === 10) break;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    if (others.rows.length)
      throw new BackupError(
        `Loom is still connected to this database (${others.rows.map((r) => `${r.count} ${r.name}`).join(', ')} ` +
          `connection(s)); stop its servers and workers first.`,
        3,
      );
    const data = await tablesWithData(client);
    if (data.length && !options.force)
      throw new BackupError(
        `The database already holds data (${data.slice(0, 6).join(', ')}${data.length > 6 ? ', ...' : ''}); ` +
          'restoring replaces all of it. Add --force to do so.',
        3,
      );

    progress.step?.(data.length ? 'Removing the data in the database (--force)' : 'Preparing the database');
    await client.query('DROP SCHEMA IF EXISTS pgboss CASCADE');
    await client.query('DROP SCHEMA IF EXISTS public CASCADE');
    await client.query('CREATE SCHEMA public');
    progress.step?.(`Creating the schema as the backup had it (${own.length} migrations)`);
    await applyMigrations(url, () => {}, own);

    const restored: Record<string, number> = {};
    let rowsDone = 0;
    const total = Object.values(expected).reduce((sum, n) => sum + n, 0);
    let inTransaction = false;
    let foreignKeys: Array<{ table: string; name: string; definition: string }> = [];
    const finishTables = async () => {
      if (!inTransaction) return;
      progress.step?.('Checking the foreign keys and setting the sequences');
      for (const table of header.tables)
        await client.query(`ALTER TABLE "public".${quote(table)} ENABLE TRIGGER USER`);
      for (const key of foreignKeys)
        await client.query(`ALTER TABLE ${key.table} ADD CONSTRAINT ${quote(key.name)} ${key.definition}`);
      for (const sequence of header.sequences)
        if (sequence.lastValue !== null)
          await client.query(`SELECT setval($1::regclass, $2::bigint, true)`, [
            `"public".${quote(sequence.name)}`,
            sequence.lastValue,
          ]);
      await client.query('COMMIT');
      inTransaction = false;
      if (own.length < known.length) {
        progress.step?.(`Applying ${known.length - own.length} newer migration(s)`);
        await applyMigrations(url, () => {}, known);
      }
    };

    const lines = linesOf(open(file, progress));
    await lines.next(); // the header, checked above
    let ended = false;
    for (;;) {
      const next = await lines.next();
      if (next.done) break;
      const parsed = parseJson<Partial<SectionLine & TrailerLine>>(next.value, 'a section');
      if (parsed.end) {
        ended = true;
        break;
      }
      const section = parsed.section!;
      const columns = parsed.columns!;
      let target: string;
      if (section === JOBS_TABLE) {
        await finishTables();
        progress.step?.('Putting the unfinished jobs back in the job queue');
        await prepareJobQueue(url);
        await client.query('BEGIN');
        await client.query(
          `CREATE TEMP TABLE restored_jobs (${columns.map((c) => `${quote(c)} text`).join(', ')}) ON COMMIT DROP`,
        );
        target = 'restored_jobs';
      } else {
        if (!section.startsWith('public.'))
          throw new BackupError(`Unexpected section ${section} in the backup.`);
        if (!inTransaction) {
          await client.query('BEGIN');
          inTransaction = true;
          foreignKeys = (
            await client.query<{ table: string; name: string; definition: string }>(
              `SELECT conrelid::regclass::text AS table, conname AS name, pg_get_constraintdef(oid) AS definition
               FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace`,
            )
          ).rows;
          for (const key of foreignKeys)
            await client.query(`ALTER TABLE ${key.table} DROP CONSTRAINT ${quote(key.name)}`);
          for (const table of header.tables)
            await client.query(`ALTER TABLE "public".${quote(table)} DISABLE TRIGGER USER`);
        }
        target = qualified(section);
      }
      const copy = client.query(copyFrom(`COPY ${target} (${columns.map(quote).join(', ')}) FROM STDIN`));
      const sink = new Sink(copy);
      const finished = new Promise<void>((resolve, reject) => {
        copy.once('finish', resolve);
        copy.once('error', reject);
      });
      let count = 0;
      let batch: Buffer[] = [];
      let batchBytes = 0;
      for (;;) {
        const line = await lines.next();
        if (line.done) throw new BackupError(`${file} ended inside section ${section}.`);
        if (line.value.length === 2 && line.value[0] === 0x5c && line.value[1] === 0x2e) break;
        batch.push(line.value, NEWLINE);
        batchBytes += line.value.length + 1;
        count++;
        if (batchBytes >= 1 << 16) {
          await sink.write(Buffer.concat(batch));
          batch = [];
          batchBytes = 0;
          progress.rows?.(rowsDone + count, total);
        }
      }
      if (batch.length) await sink.write(Buffer.concat(batch));
      copy.end();
      await finished;
      rowsDone += count;
      progress.rows?.(rowsDone, total);
      restored[section] = count;
      if (section === JOBS_TABLE) {
        await restoreJobs(client, columns);
        await client.query('COMMIT');
      }
    }
    if (!ended) throw new BackupError(`${file} is incomplete.`);
    await finishTables();
    if (!(JOBS_TABLE in restored)) await prepareJobQueue(url);
    return restored;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    await client.end().catch(() => {});
  }
}

const NEWLINE = Buffer.from('\n');

/** The job queue's schema and Loom's queues, as a worker's start would make them. */
async function prepareJobQueue(url: string): Promise<void> {
  const boss = await startBoss(url, { supervise: false });
  await boss.stop({ graceful: false });
}

/** Jobs from the backup's columns (as text) into the queue's own columns and types, those both have. */
async function restoreJobs(client: pg.Client, columns: string[]): Promise<void> {
  const { rows } = await client.query<{ name: string; type: string }>(
    `SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute
     WHERE attrelid = '${JOBS_TABLE}'::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''`,
  );
  const common = rows.filter((row) => columns.includes(row.name));
  const names = common.map((row) => quote(row.name)).join(', ');
  const values = common.map((row) => `${quote(row.name)}::${row.type}`).join(', ');
  await client.query(
    `INSERT INTO ${JOBS_TABLE} (${names}) SELECT ${values} FROM restored_jobs
     WHERE name IN (SELECT name FROM pgboss.queue) ON CONFLICT DO NOTHING`,
  );
}
