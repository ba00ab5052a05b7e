// On the embedded default `npm start` runs the trainer worker alongside the server, as a child
// process against the same database; it is restarted if it dies and stopped with the server.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from './paths.js';

export interface TrainerProcess {
  stop(): Promise<void>;
}

export function startTrainerProcess(databaseUrl: string, log: (message: string) => void): TrainerProcess {
  const built = path.join(projectRoot, 'dist', 'trainer', 'worker.js');
  const fromSource = path.join(projectRoot, 'trainer', 'worker.ts');
  // Run what the server itself runs: the build, or the sources under tsx.
  const args =
    import.meta.url.endsWith('.ts') || !existsSync(built) ? ['--import', 'tsx', fromSource] : [built];
  let child: ChildProcess | null = null;
  let stopping = false;
  let restarts = 0;
  const launch = () => {
    child = spawn(process.execPath, args, {
      cwd: projectRoot,
      env: { ...process.env, DATABASE_URL: databaseUrl, START_TRAINER: 'false', SEED_DEMO: 'false' },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.once('exit', (code, signal) => {
      if (stopping) return;
      restarts++;
      const delay = Math.min(30_000, 1000 * 2 ** Math.min(restarts, 5));
      log(`The trainer worker stopped (${signal ?? `code ${code}`}); restarting in ${delay / 1000} s.`);
      setTimeout(() => {
        if (!stopping) launch();
      }, delay).unref();
    });
  };
  launch();
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        stopping = true;
        if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
