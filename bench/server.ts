// The server as `npm start` runs it (compiled, with the start script's Node options), started in
// its own process against a benchmark's database, and its memory as Linux reports it.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServerProcess, type ServerProcess } from '../tests/support/server-process.js';

export type { ServerProcess };

let built: { entry: string; nodeOptions: string[]; env: Record<string, string> } | null = null;

/**
 * `npm start`'s server command (entry, Node options, and the variables it sets with a default:
 * `NAME=${NAME:-value}`), compiled once per benchmark run.
 */
function productionCommand(): { entry: string; nodeOptions: string[]; env: Record<string, string> } {
  if (built) return built;
  const { scripts } = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: { start: string } };
  const command = /\bnode ((?:--\S+ )*)(dist\/server\/main\.js)/.exec(scripts.start);
  if (!command) throw new Error(`Cannot read the server command from "${scripts.start}".`);
  const env: Record<string, string> = {};
  for (const [, name, value] of scripts.start.matchAll(/\b(\w+)=\$\{\1:-([^}]*)\}/g))
    env[name!] = process.env[name!] || value!;
  console.log('building the server (npm run build:server)...');
  execFileSync('npm', ['run', 'build:server'], { stdio: 'ignore' });
  const nodeOptions = [command[1]!, process.env.BENCH_NODE_OPTIONS ?? '']
    .join(' ')
    .split(' ')
    .filter(Boolean);
  return (built = { entry: command[2]!, nodeOptions, env });
}

/**
 * Starts `node <start options> dist/server/main.js` on `databaseUrl` (built on first use).
 * BENCH_NODE_OPTIONS adds Node options (e.g. `--cpu-prof` to profile the server).
 */
export async function startProductionServer(
  databaseUrl: string,
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  const { entry, nodeOptions, env: startEnv } = productionCommand();
  return startServerProcess(
    {
      ...process.env,
      ...startEnv,
      DATABASE_URL: databaseUrl,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'error',
      NODE_ENV: 'production',
      SESSION_SECRET: randomBytes(48).toString('base64'),
      DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'loom-bench-')),
      ...env,
    },
    entry,
    90_000,
    nodeOptions,
  );
}

/** Peak and current resident memory of a process, in MB (Linux /proc). */
export function memoryOf(pid: number): { peak: number; now: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { peak: Math.round(kb('VmHWM') / 1024), now: Math.round(kb('VmRSS') / 1024) };
}
