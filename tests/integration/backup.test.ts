// `npm run cli -- backup` and `restore` against a real PostgreSQL: a database with users, a
// project, prompts, comparisons, judgments and an unfinished job is backed up by the CLI, restored
// by the CLI into a fresh database, compared table by table, and then used: the app opened on it
// signs in, takes a judgment through the API and exports. Restoring over data is refused without
// --force, and a damaged file is refused before the database is touched.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma } from '../../core/db/client.js';
import { buildApp } from '../../server/app.js';
import { PASSWORD, createTestApp, signIn, type SignedIn, type TestApp } from '../support/app.js';
import { createEmptyDatabase, type TestDatabase } from '../support/database.js';
import { addRaters, createProject, next, submit, type RatingSetup } from '../support/rating.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..', '..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'loom-backup-'));
const file = path.join(dir, 'loom.backup');

let source: TestApp;
let setup: RatingSetup;
let rater: SignedIn;
let fresh: TestDatabase;

async function cli(args: string[], databaseUrl: string) {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'server/cli.ts', ...args], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: databaseUrl, TEST_DATABASE_URL: '' },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** Every table of the public schema with a digest of its rows, and the unfinished jobs. */
async function contents(url: string): Promise<Record<string, string>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const tables = await client.query<{ name: string }>(
      `SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_prisma_migrations'
       ORDER BY 1`,
    );
    const result: Record<string, string> = {};
    for (const { name } of tables.rows) {
      const { rows } = await client.query<{ n: number; digest: string | null }>(
        `SELECT count(*)::int AS n, md5(string_agg(t::text, E'\\n' ORDER BY t::text)) AS digest FROM "${name}" t`,
      );
      result[name] = `${rows[0]!.n}:${rows[0]!.digest}`;
    }
    const jobs = await client.query<{ name: string; state: string; data: unknown }>(
      `SELECT name, state::text, data FROM pgboss.job WHERE state::text IN ('created', 'retry', 'active') ORDER BY name`,
    );
    result['pgboss.job'] = JSON.stringify(jobs.rows);
    return result;
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  source = await createTestApp({}, { jobs: true });
  setup = await createProject(source, { overlap: 1 }, { prompts: 4, responses: 3 });
  rater = (await addRaters(source, setup, 1))[0]!;
  for (let i = 0; i < 2; i++) {
    const lease = await next(source, rater, setup.projectId);
    expect((await submit(source, rater, lease!.id)).statusCode).toBe(201);
  }
  // A job not run yet: a restored database must still run it.
  await source.boss!.send('round-scheduler', { from: 'before-backup' });
  fresh = await createEmptyDatabase();
});

afterAll(async () => {
  await source?.close();
  await fresh?.drop();
});

describe('backup and restore', () => {
  it('backs up and restores into a fresh database, table for table', async () => {
    const backup = await cli(['backup', '--out', file], source.database.url);
    expect(backup.code, backup.stderr).toBe(0);
    expect(backup.stdout).toMatch(/Backed up \d+ rows in \d+ tables and 1 unfinished job/);
    expect(readFileSync(file).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b])); // gzip

    const restore = await cli(['restore', file], fresh.url);
    expect(restore.code, restore.stderr + restore.stdout).toBe(0);
    expect(restore.stdout).toMatch(/Restored \d+ rows and 1 unfinished job/);

    const [before, after] = await Promise.all([contents(source.database.url), contents(fresh.url)]);
    expect(after).toEqual(before);
    expect(after.Preference).toMatch(/^2:/);
  });

  it('signs in, rates and exports on the restored database', async () => {
    const prisma = createPrisma(fresh.url, { max: 4 });
    const app = await buildApp({
      config: { ...source.config, databaseUrl: fresh.url },
      prisma,
      logger: false,
    });
    await app.ready();
    try {
      const restored = { ...source, app, prisma } as TestApp;
      const admin = await signIn(restored, setup.admin.email, PASSWORD);
      const raterAgain = await signIn(restored, rater.email, PASSWORD);
      // The session made before the backup still works: the same secret, the same hashes.
      const me = await app.inject({ method: 'GET', url: '/api/auth/me', headers: setup.admin.headers });
      expect(me.statusCode).toBe(200);

      const lease = await next(restored, raterAgain, setup.projectId);
      expect(lease).not.toBeNull();
      const stored = await submit(restored, raterAgain, lease!.id);
      expect(stored.statusCode, stored.body).toBe(201);

      const exported = await app.inject({
        method: 'POST',
        url: `/api/projects/${setup.projectId}/export`,
        headers: admin.headers,
        payload: { format: 'trl' },
      });
      expect(exported.statusCode, exported.body).toBe(200);
      expect(exported.headers['x-loom-judgments']).toBe('3');
      expect(exported.body.trim().split('\n')).toHaveLength(3);
    } finally {
      await app.close();
      await prisma.$disconnect();
    }
  });

  it('refuses to restore under a running Loom, and over data without --force', async () => {
    const server = new pg.Client({ connectionString: fresh.url, application_name: 'loom' });
    await server.connect();
    try {
      const running = await cli(['restore', file, '--force'], fresh.url);
      expect(running.code).toBe(3);
      expect(running.stderr).toMatch(/Loom is still connected to this database \(1 loom connection/);
    } finally {
      await server.end();
    }

    const refused = await cli(['restore', file], fresh.url);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/already holds data .*--force/);
    expect((await contents(fresh.url)).Preference).toMatch(/^3:/);
  });

  it('replaces the data with --force', async () => {
    const forced = await cli(['restore', file, '--force'], fresh.url);
    expect(forced.code, forced.stderr).toBe(0);
    expect(await contents(fresh.url)).toEqual(await contents(source.database.url));
  });

  it('refuses a damaged or missing file before touching the database', async () => {
    const whole = readFileSync(file);
    const truncated = path.join(dir, 'truncated.backup');
    writeFileSync(truncated, whole.subarray(0, Math.floor(whole.length * 0.6)));
    const damaged = await cli(['restore', truncated, '--force'], fresh.url);
    expect(damaged.code).toBe(2);
    expect(damaged.stderr).toMatch(/damaged|incomplete/);
    const missing = await cli(['restore', path.join(dir, 'nothing.backup')], fresh.url);
    expect(missing.code).toBe(4);
    expect(await contents(fresh.url)).toEqual(await contents(source.database.url));

    const exists = await cli(['backup', '--out', file], source.database.url);
    expect(exists.code).toBe(3);
  });
});
