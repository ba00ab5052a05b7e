// Finds the PostgreSQL server the tests use: TEST_DATABASE_URL, else DATABASE_URL, else an embedded
// server started for this run. Each test file then creates and drops its own database on it.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../../core/db/embedded.js';

declare module 'vitest' {
  export interface ProvidedContext {
    adminDatabaseUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const configured = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL;
  if (configured) {
    project.provide('adminDatabaseUrl', configured);
    return async () => {};
  }
  // A cluster of this run's own, so concurrent runs never stop each other's server.
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'loom-test-postgres-'));
  const embedded = await startEmbeddedPostgres(dataDir, { preferredPort: 0 });
  project.provide('adminDatabaseUrl', embedded.url);
  return async () => {
    await embedded.stop();
    rmSync(embedded.clusterDir, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  };
}
