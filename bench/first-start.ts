// The first start as a newcomer meets it: the built server (what `npm start` runs once built) on a
// fresh database, with the demo project and the trainer worker, as on the embedded default. Times
// from the start to the server listening and to the first demo comparison a signed-in admin can
// lease through the API (signed in as the first admin, through the setup link the server
// prints), and samples what Rate reports meanwhile (the preparation's phase and
// progress). `--embedded` uses a fresh embedded PostgreSQL instead of a database on the bench's
// server (TEST_DATABASE_URL or DATABASE_URL, default the local one).
// Ends with `first-start: ready_s=<n> first_comparison_s=<n>`; the target is a comparison within 120 s.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { benchDatabase, type BenchDatabase } from './database.js';
import { projectRoot } from '../core/paths.js';

interface RateProject {
  id: string;
  isDemo: boolean;
  preparing: { phase: string; progress: number } | null;
  progress: { availableToMe: number };
}

export async function main(args: string[]): Promise<void> {
  const entry = path.join(projectRoot, 'dist', 'server', 'main.js');
  if (!existsSync(entry)) throw new Error('Build first: npm run build');
  const embedded = args.includes('--embedded');
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'loom-bench-first-start-'));
  const database: BenchDatabase | null = embedded ? null : await benchDatabase('first_start');
  const started = Date.now();
  const seconds = () => (Date.now() - started) / 1000;
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.DATABASE_URL;
  if (database) env.DATABASE_URL = database.url;
  const server = spawn(process.execPath, [entry], {
    cwd: projectRoot,
    env: {
      ...env,
      DATA_DIR: path.join(dataDir, 'data'),
      PORT: '0',
      HOST: '127.0.0.1',
      SEED_DEMO: 'true',
      START_TRAINER: 'true',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let origin = '';
  let readyAt = 0;
  let setupToken = '';
  const onData = (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n').filter(Boolean)) {
      output += `${line}\n`;
      if (/\[(trainer|loom)\].*demo/i.test(line))
        console.log(`first-start: [${seconds().toFixed(1)} s] ${line}`);
      setupToken ||= /\/setup[?#]token=([\w-]+)/.exec(line)?.[1] ?? '';
      const match = /Loom is running at (http:\/\/\S+)/.exec(line);
      if (match && !origin) {
        origin = match[1]!.replace('localhost', '127.0.0.1');
        readyAt = seconds();
      }
    }
  };
  server.stdout.on('data', onData);
  server.stderr.on('data', onData);
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  try {
    while (!origin) {
      if (server.exitCode !== null) throw new Error(`The server exited:\n${output}`);
      if (seconds() > 300) throw new Error(`The server did not start in 300 s:\n${output}`);
      await sleep(100);
    }
    // The first admin, through the one-time setup link the server printed, as a newcomer does.
    while (!setupToken) {
      if (seconds() > 300) throw new Error(`No setup link in 300 s:\n${output}`);
      await sleep(100);
    }
    const accepted = await fetch(`${origin}/api/invites/accept`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        token: setupToken,
        email: 'bench@example.com',
        name: 'Bench',
        password: 'first start bench passphrase',
      }),
    });
    if (accepted.status !== 201) throw new Error(`setup: ${accepted.status} ${await accepted.text()}`);
    const { csrfToken } = (await accepted.json()) as { csrfToken: string };
    const cookie = /loom_session=[^;]+/.exec(accepted.headers.get('set-cookie') ?? '')?.[0] ?? '';
    const headers = { cookie, 'x-csrf-token': csrfToken, 'content-type': 'application/json' };

    let last = '';
    let firstAt = 0;
    while (!firstAt) {
      if (server.exitCode !== null) throw new Error(`The server exited:\n${output}`);
      if (seconds() > 1800) throw new Error('No demo comparison within 30 minutes');
      const response = await fetch(`${origin}/api/rating/projects`, { headers });
      const demo = ((await response.json()) as RateProject[]).find((project) => project.isDemo);
      const state = demo?.preparing
        ? `${demo.preparing.phase} ${Math.floor(demo.preparing.progress * 100)}%`
        : `${demo?.progress.availableToMe ?? 0} comparisons waiting`;
      if (state !== last) console.log(`first-start: [${seconds().toFixed(1)} s] Rate: ${state}`);
      last = state;
      if (demo && demo.progress.availableToMe > 0) {
        // Rateable: a lease of a demo comparison through the rater's API.
        const next = await fetch(`${origin}/api/projects/${demo.id}/leases/next`, {
          method: 'POST',
          headers,
          body: '{}',
        });
        if (next.status === 200) firstAt = seconds();
      }
      if (!firstAt) await sleep(250);
    }
    console.log(`first-start: ready_s=${readyAt.toFixed(1)} first_comparison_s=${firstAt.toFixed(1)}`);
  } finally {
    server.kill('SIGTERM');
    const killer = setTimeout(() => server.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(killer);
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
