// The migration runner against real PostgreSQL: applies on an empty database, is a no-op the
// second time, applies once under concurrent starts, and refuses an edited migration.
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { applyMigrations, MigrationError, readMigrations } from '../../core/db/migrate.js';
import { createEmptyDatabase, type TestDatabase } from '../support/database.js';

const databases: TestDatabase[] = [];
afterEach(async () => {
  await Promise.all(databases.splice(0).map((database) => database.drop()));
});

async function fresh(): Promise<TestDatabase> {
  const database = await createEmptyDatabase();
  databases.push(database);
  return database;
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('migration runner', () => {
  const all = readMigrations();

  it('finds the migrations in Prisma folder format', () => {
    expect(all.length).toBeGreaterThan(0);
    for (const migration of all) expect(migration.name).toMatch(/^\d{14}_[a-z0-9_]+$/);
  });

  it('applies every migration to an empty database, then does nothing the second time', async () => {
    const database = await fresh();
    const first = await applyMigrations(database.url);
    expect(first.applied).toEqual(all.map((migration) => migration.name));
    const second = await applyMigrations(database.url);
    expect(second.applied).toEqual([]);

    const rows = await query<{ migration_name: string; finished_at: Date | null; checksum: string }>(
      database.url,
      'SELECT migration_name, finished_at, checksum FROM "_prisma_migrations" ORDER BY migration_name',
    );
    expect(rows.map((row) => row.migration_name)).toEqual(all.map((migration) => migration.name));
    expect(rows.every((row) => row.finished_at !== null)).toBe(true);
    expect(rows.map((row) => row.checksum)).toEqual(all.map((migration) => migration.checksum));
    const tables = await query<{ count: string }>(
      database.url,
      "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 'User'",
    );
    expect(tables[0]?.count).toBe('1');
  });

  it('retires comparisons of two equal texts stored before pairing refused them', async () => {
    const database = await fresh();
    const retire = all.findIndex((migration) => migration.name.endsWith('_retire_identical_comparisons'));
    expect(retire).toBeGreaterThan(0);
    await applyMigrations(database.url, () => {}, all.slice(0, retire));
    const ids = await query<{ project: string; prompt: string; a: string; b: string; c: string }>(
      database.url,
      `WITH pj AS (INSERT INTO "Project" (name, "updatedAt") VALUES ('p', now()) RETURNING id),
            pr AS (INSERT INTO "Prompt" ("projectId", messages) SELECT id, '[]' FROM pj RETURNING id, "projectId")
       SELECT pr."projectId" AS project, pr.id AS prompt,
              gen_random_uuid() AS a, gen_random_uuid() AS b, gen_random_uuid() AS c FROM pr`,
    );
    const { project, prompt, a, b, c } = ids[0]!;
    // Three comparisons of "4" vs "4" (unjudged, judged once of three, full) and one of "4" vs "5".
    await query(
      database.url,
      `INSERT INTO "Response" (id, "promptId", text) VALUES
         ('${a}', '${prompt}', '4'), ('${b}', '${prompt}', '4'), ('${c}', '${prompt}', '5');
       INSERT INTO "Comparison" (id, "projectId", "promptId", "responseAId", "responseBId", "requiredVotes", "voteCount") VALUES
         ('00000000-0000-4000-8000-000000000001', '${project}', '${prompt}', '${a}', '${b}', 3, 0),
         ('00000000-0000-4000-8000-000000000002', '${project}', '${prompt}', '${b}', '${a}', 3, 1),
         ('00000000-0000-4000-8000-000000000003', '${project}', '${prompt}', '${a}', '${a}', 1, 1),
         ('00000000-0000-4000-8000-000000000004', '${project}', '${prompt}', '${a}', '${c}', 3, 0);
       INSERT INTO "Preference" ("comparisonId", source, choice) VALUES
         ('00000000-0000-4000-8000-000000000002', 'IMPORTED', 'A'),
         ('00000000-0000-4000-8000-000000000003', 'IMPORTED', 'A');`,
    );
    expect((await applyMigrations(database.url)).applied).toEqual(all.slice(retire).map((m) => m.name));
    const rows = await query<{ id: string; requiredVotes: number; voteCount: number; open: boolean }>(
      database.url,
      'SELECT id, "requiredVotes", "voteCount", open FROM "Comparison" ORDER BY id',
    );
    expect(rows).toEqual([
      { id: '00000000-0000-4000-8000-000000000002', requiredVotes: 1, voteCount: 1, open: false },
      { id: '00000000-0000-4000-8000-000000000003', requiredVotes: 1, voteCount: 1, open: false },
      { id: '00000000-0000-4000-8000-000000000004', requiredVotes: 3, voteCount: 0, open: true },
    ]);
    const judgments = await query<{ count: string }>(database.url, 'SELECT count(*) FROM "Preference"');
    expect(judgments[0]?.count).toBe('2');
  });

  it('applies each migration exactly once when several processes start at the same time', async () => {
    const database = await fresh();
    const results = await Promise.all(Array.from({ length: 4 }, () => applyMigrations(database.url)));
    const appliedAnywhere = results.flatMap((result) => result.applied);
    expect(appliedAnywhere.sort()).toEqual(all.map((migration) => migration.name).sort());
    const rows = await query<{ count: string }>(database.url, 'SELECT count(*) FROM "_prisma_migrations"');
    expect(rows[0]?.count).toBe(String(all.length));
  });

  it('refuses a migration that was edited after it was applied, and changes nothing', async () => {
    const database = await fresh();
    await applyMigrations(database.url);
    const edited = all.map((migration, index) =>
      index === 0 ? { ...migration, sql: migration.sql + '\n-- edited', checksum: 'different' } : migration,
    );
    await expect(applyMigrations(database.url, () => {}, edited)).rejects.toThrow(MigrationError);
    await expect(applyMigrations(database.url, () => {}, edited)).rejects.toThrow(
      /changed after it was applied/,
    );
  });

  it('rolls a failing migration back completely and records nothing for it', async () => {
    const database = await fresh();
    const broken = [
      ...all,
      {
        name: '29991231000000_broken',
        sql: 'CREATE TABLE "Broken" (id int); SELECT no_such_function();',
        checksum: 'x',
      },
    ];
    await expect(applyMigrations(database.url, () => {}, broken)).rejects.toThrow(
      /29991231000000_broken failed/,
    );
    const rows = await query<{ migration_name: string }>(
      database.url,
      'SELECT migration_name FROM "_prisma_migrations"',
    );
    expect(rows.map((row) => row.migration_name)).not.toContain('29991231000000_broken');
    const tables = await query<{ count: string }>(
      database.url,
      "SELECT count(*) FROM information_schema.tables WHERE table_name = 'Broken'",
    );
    expect(tables[0]?.count).toBe('0');
    // The good migrations stay applied.
    expect((await applyMigrations(database.url)).applied).toEqual([]);
  });
});
