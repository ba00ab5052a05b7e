// Starts Loom's server as its own process (as `npm start` does) and waits until it listens;
// used by start-up tests and benchmarks.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', '..');

export interface ServerProcess {
  child: ChildProcess;
  /** e.g. http://127.0.0.1:41234 */
  origin: string;
  output(): string;
  stop(): Promise<number | null>;
}

/**
 * Runs server/main.ts through tsx (or `entry`, e.g. dist/server/main.js) with these variables and
 * Node options.
 */
export function startServerProcess(
  env: NodeJS.ProcessEnv,
  entry = 'server/main.ts',
  timeoutMs = 90_000,
  nodeOptions: string[] = [],
): Promise<ServerProcess> {
  const args = [...nodeOptions, ...(entry.endsWith('.ts') ? ['--import', 'tsx', entry] : [entry])];
  const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`No start within ${timeoutMs / 1000} s:\n${output}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const origin = /Loom is running at (http:\/\/\S+)/.exec(output)?.[1];
      // Ready once the sign-in instructions are complete (the setup link, or the sign-in line).
      if (origin && /setup[?#]token=\S+\s|Sign in with your account/.test(output)) {
        clearTimeout(timer);
        child.off('exit', onEarlyExit);
        resolve({
          child,
          origin: origin.replace('localhost', '127.0.0.1'),
          output: () => output,
          stop: () => {
            if (child.exitCode !== null) return Promise.resolve(child.exitCode);
            const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
            child.kill('SIGTERM');
            return exited;
          },
        });
      }
    };
    const onEarlyExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`Exited with ${code} before starting:\n${output}`));
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onEarlyExit);
  });
}
