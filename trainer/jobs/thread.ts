// Runs one job in a worker thread: training keeps a core busy for minutes, and the process's main
// thread must stay free to send the job's heartbeats (a silent job counts as crashed).
import { Worker } from 'node:worker_threads';
import type { JobPayloads } from '../../core/jobs.js';
import type { DemoSettings } from './seed-demo.js';

export interface ThreadSettings {
  databaseUrl: string;
  demoSftSteps: number;
  /** Overrides of the demo's first policy (tests use a tiny model). */
  demo?: Partial<DemoSettings>;
}

export function runInThread<N extends 'training-round' | 'seed-demo' | 'queue-order'>(
  name: N,
  payload: JobPayloads[N],
  settings: ThreadSettings,
  log: (message: string) => void,
): Promise<void> {
  const ts = import.meta.url.endsWith('.ts');
  const url = new URL(`./job-thread.${ts ? 'ts' : 'js'}`, import.meta.url);
  const worker = new Worker(url, {
    workerData: { name, payload, settings },
    execArgv: ts ? ['--import', 'tsx'] : [],
  });
  return new Promise((resolve, reject) => {
    let settled = false;
    worker.on('message', (message: { log?: string; ok?: boolean; error?: string }) => {
      if (message.log) log(message.log);
      if (message.ok !== undefined) {
        settled = true;
        if (message.ok) resolve();
        else reject(new Error(message.error ?? `${name} failed`));
      }
    });
    worker.on('error', (error) => {
      settled = true;
      reject(error);
    });
    worker.on('exit', (code) => {
      if (!settled) reject(new Error(`${name} thread exited with code ${code}`));
    });
  });
}
