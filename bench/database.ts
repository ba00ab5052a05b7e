// A fresh, migrated database for one benchmark run, on the server named by TEST_DATABASE_URL or
// DATABASE_URL (default: the local PostgreSQL), dropped afterwards.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
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
