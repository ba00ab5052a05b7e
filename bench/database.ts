// A fresh, migrated database for one benchmark run, on the server named by TEST_DATABASE_URL or
// DATABASE_URL (default: the local PostgreSQL), dropped afterwards.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { PrismaClient } from '../server/db/client.js';
import { applyMigrations } from '../server/db/migrate.js';

export interface BenchDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function benchDatabase(prefix: string): Promise<BenchDatabase> {
  const admin =
    process.env.TEST_DATABASE_URL ??
    process.env.DATABASE_URL ??
    'postgresql://postgres@127.0.0.1:5432/postgres';
  const name = `loom_bench_${prefix}_${randomBytes(4).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  await client.query(`CREATE DATABASE "${name}"`);
  const url = new URL(admin);
  url.pathname = `/${name}`;
  const drop = async () => {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await client.end();
  };
  try {
    await applyMigrations(url.toString());
  } catch (error) {
    await drop();
    throw error;
  }
  return { url: url.toString(), drop };
}

/**
 * `count` single-turn prompts in a project, two responses each (sources model-1 and model-2) and
 * one comparison per prompt wanting 3 judgments, written by SQL in one statement.
 */
export async function seedComparisons(prisma: PrismaClient, projectId: string, count: number): Promise<void> {
  await prisma.$executeRaw`
    WITH p AS (
      INSERT INTO "Prompt" ("projectId", messages)
      SELECT ${projectId}::uuid, jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'Question ' || g))
      FROM generate_series(1, ${count}) g RETURNING id
    ), r AS (
      INSERT INTO "Response" ("promptId", text, source)
      SELECT p.id, 'Answer ' || s || ' to ' || p.id, 'model-' || s FROM p, generate_series(1, 2) s RETURNING id, "promptId", source
    )
    INSERT INTO "Comparison" ("projectId", "promptId", "responseAId", "responseBId", "requiredVotes")
    SELECT ${projectId}::uuid, a."promptId", a.id, b.id, 3 FROM r a JOIN r b
    ON a."promptId" = b."promptId" AND a.source = 'model-1' AND b.source = 'model-2'`;
}
