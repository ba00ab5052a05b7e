// Starts the trainer worker (trainer/worker.ts) as its own process on a test app's database, with
// fast crash detection, for tests that kill it mid-job and start another.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestApp } from './app.js';

const root = path.resolve(import.meta.dirname, '..', '..');

export function startTrainerWorker(t: TestApp, env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'trainer/worker.ts'], {
    cwd: root,
    env: {
      ...process.env,
      DATABASE_URL: t.database.url,
      DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'loom-worker-')),
      TRAINER_HEARTBEAT_SECONDS: '10',
      JOB_MONITOR_SECONDS: '1',
      SESSION_SECRET: t.config.sessionSecret,
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.resume();
  child.stderr?.resume();
  return child;
}
