// On the embedded default `npm start` runs the trainer worker alongside the server, as a child
// process against the same database; it is restarted if it dies and stopped with the server. It runs
// in a session of its own, so that a terminal's Ctrl+C reaches only the server, which stops it
// before the database; its output passes through the server's.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { projectRoot } from '../core/paths.js';
import { within } from './shutdown.js';

export interface TrainerProcess {
  /** Resolves once the worker said it is ready (or gave up starting). */
  ready: Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs` (default 3 s): a job cut short is retried later. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL, at once. */
  kill(): void;
}

export function startTrainerProcess(databaseUrl: string, log: (message: string) => void): TrainerProcess {
  const built = path.join(projectRoot, 'dist', 'trainer', 'worker.js');
  const fromSource = path.join(projectRoot, 'trainer', 'worker.ts');
  // Run what the server itself runs: the build, or the sources under tsx; with the guard that stops
  // the worker should the server vanish.
  const fromSources = import.meta.url.endsWith('.ts') || !existsSync(built);
  const guard = pathToFileURL(
    path.join(
      projectRoot,
      ...(fromSources ? ['server', 'parent-guard.ts'] : ['dist', 'server', 'parent-guard.js']),
    ),
  ).href;
  const args = fromSources ? ['--import', 'tsx', '--import', guard, fromSource] : ['--import', guard, built];
  let child: ChildProcess | null = null;
  let stopping = false;
  let restarts = 0;
  let markReady = () => {};
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const alive = () => child !== null && child.exitCode === null && child.signalCode === null;
  const launch = () => {
    const current = spawn(process.execPath, args, {
      cwd: projectRoot,
      env: { ...process.env, DATABASE_URL: databaseUrl, START_TRAINER: 'false', SEED_DEMO: 'false' },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      detached: true,
    });
    child = current;
    let pending = '';
    current.stdout?.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk);
      pending = (pending + chunk.toString()).slice(-1000);
      if (/\] ready:/.test(pending)) markReady();
    });
    current.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    current.once('error', (error) => log(`The trainer worker could not start: ${error.message}`));
    current.once('exit', (code, signal) => {
      markReady();
      if (stopping) return;
      restarts++;
      const delay = Math.min(30_000, 1000 * 2 ** Math.min(restarts, 5));
      log(`The trainer worker stopped (${signal ?? `code ${code}`}); restarting in ${delay / 1000} s.`);
      setTimeout(() => {
        if (!stopping) launch();
      }, delay).unref();
    });
  };
  // Should the server end without stopping it (process.exit after an error), so does the worker.
  const onExit = () => {
    if (alive()) child?.kill('SIGTERM');
  };
  process.on('exit', onExit);
  launch();
  return {
    ready,
    stop: async (graceMs = 3_000) => {
      stopping = true;
      process.removeListener('exit', onExit);
      const running = child;
      if (!running || !alive()) return;
      const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
      running.kill('SIGTERM');
      if (await within(exited, graceMs)) return;
      running.kill('SIGKILL');
      await within(exited, 2_000);
    },
    kill: () => {
      stopping = true;
      if (alive()) child?.kill('SIGKILL');
    },
  };
}
