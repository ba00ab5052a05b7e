// Starting Loom the way a user does, on the embedded default (no DATABASE_URL): twice in a row with
// data kept between runs, and the create-user CLI both while the server runs and while it does not.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startServerProcess } from '../support/server-process.js';

const root = path.resolve(import.meta.dirname, '..', '..');
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'loom-start-'));
const PASSWORD = 'a long enough passphrase';

function env(): NodeJS.ProcessEnv {
  const { DATABASE_URL: _unused, TEST_DATABASE_URL: _unusedToo, ...rest } = process.env;
  return {
    ...rest,
    // The demo and the trainer are covered elsewhere; here they would only cost CPU.
    SEED_DEMO: 'false',
    START_TRAINER: 'false',
    DATA_DIR: dataDir,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    NODE_ENV: 'development',
  };
}

function tsx(script: string, args: string[] = []): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: root,
    env: env(),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

function cli(args: string[], stdin: string): Promise<{ code: number | null; out: string }> {
  const child = tsx('server/cli.ts', args);
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stdin?.end(stdin);
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, out })));
}

async function login(origin: string, email: string, password = PASSWORD): Promise<number> {
  const response = await fetch(`${origin}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  return response.status;
}

function clusterDir(): string {
  const note = path.join(dataDir, 'postgres.location');
  return existsSync(note) ? readFileSync(note, 'utf8').trim() : path.join(dataDir, 'postgres');
}

afterAll(() => {
  const cluster = clusterDir();
  if (cluster.startsWith('/var/lib/loom/')) rmSync(path.dirname(cluster), { recursive: true, force: true });
  rmSync(dataDir, { recursive: true, force: true });
});

describe('npm start on the embedded default', () => {
  it('starts, keeps data across a restart, and the CLI works with and without the server', async () => {
    // First start: a new cluster, migrations, and a one-time setup link.
    const first = await startServerProcess(env());
    const setupUrl = /(http:\/\/\S+\/setup[?#]token=(\S+))/.exec(first.output());
    expect(setupUrl, first.output()).not.toBeNull();
    const health = await fetch(`${first.origin}/api/health`);
    expect(await health.json()).toEqual({ status: 'ok' });
    const accepted = await fetch(`${first.origin}/api/invites/accept`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        token: setupUrl![2],
        email: 'admin@example.com',
        name: 'Admin',
        password: PASSWORD,
      }),
    });
    expect(accepted.status).toBe(201);

    // The CLI uses the running embedded server.
    const created = await cli(
      ['create-user', '--email', 'rater@example.com', '--role', 'rater'],
      `${PASSWORD}\n`,
    );
    expect(created, created.out).toMatchObject({ code: 0 });
    expect(created.out).toMatch(/Created rater rater@example.com/);
    expect(await login(first.origin, 'rater@example.com')).toBe(200);
    const duplicate = await cli(
      ['create-user', '--email', 'rater@example.com', '--role', 'rater'],
      `${PASSWORD}\n`,
    );
    expect(duplicate.code).not.toBe(0);
    expect(duplicate.out).toMatch(/already exists/);

    expect(await first.stop()).toBe(0);
    expect(existsSync(path.join(clusterDir(), 'postmaster.pid'))).toBe(false);

    // With the server stopped, the CLI starts the embedded database for the command only.
    const offline = await cli(
      ['create-user', '--email', 'researcher@example.com', '--role', 'researcher'],
      `${PASSWORD}\n`,
    );
    expect(offline, offline.out).toMatchObject({ code: 0 });
    expect(existsSync(path.join(clusterDir(), 'postmaster.pid'))).toBe(false);

    // Second start: same data, no setup link any more.
    const second = await startServerProcess(env());
    expect(second.output()).not.toMatch(/setup[?#]token=/);
    expect(await login(second.origin, 'admin@example.com')).toBe(200);
    expect(await login(second.origin, 'rater@example.com')).toBe(200);
    expect(await login(second.origin, 'researcher@example.com')).toBe(200);
    expect(await second.stop()).toBe(0);
  }, 240_000);

  it('explains bad CLI usage with a message and a non-zero exit code', async () => {
    const badRole = await cli(
      ['create-user', '--email', 'x@example.com', '--role', 'owner'],
      `${PASSWORD}\n`,
    );
    expect(badRole.code).toBe(2);
    expect(badRole.out).toMatch(/--role must be admin, researcher or rater/);
    const shortPassword = await cli(
      ['create-user', '--email', 'x@example.com', '--role', 'rater'],
      'short\n',
    );
    expect(shortPassword.code).toBe(2);
    expect(shortPassword.out).toMatch(/password/);
    const unknown = await cli(['frobnicate'], '');
    expect(unknown.code).toBe(2);
    const help = await cli(['create-user', '--help'], '');
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/--email/);
  }, 60_000);
});
