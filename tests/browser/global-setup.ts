// Starts the built server (dist/server/main.js) the way a user does, on a fresh database, and hands
// its address and the setup link it printed to the tests through the environment.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../core/db/embedded.js';

const root = path.resolve(import.meta.dirname, '..', '..');

async function waitForStart(server: ChildProcess): Promise<{ baseURL: string; setupUrl: string }> {
  return new Promise((resolve, reject) => {
    let output = '';
    let baseURL = '';
    const timer = setTimeout(
      () => reject(new Error(`The server did not start in time:\n${output}`)),
      180_000,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      baseURL ||= /Loom is running at (http:\/\/\S+)/.exec(output)?.[1] ?? '';
      const setupUrl = /(http:\/\/\S+\/setup[?#]token=\S+)/.exec(output)?.[1];
      if (baseURL && setupUrl) {
        clearTimeout(timer);
        resolve({ baseURL, setupUrl });
      }
    };
    server.stdout?.on('data', onData);
    server.stderr?.on('data', onData);
    server.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`The server exited with code ${code}:\n${output}`));
    });
  });
}

/** A loopback port free now, for a test's fake model endpoint (the server allow-lists only it). */
async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  const entry = path.join(root, 'dist', 'server', 'main.js');
  if (!existsSync(entry) || !existsSync(path.join(root, 'web', 'build', 'index.html'))) {
    throw new Error('Build first: npm run build');
  }
  let embedded: EmbeddedDatabase | null = null;
  let adminUrl = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL;
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'loom-e2e-'));
  if (!adminUrl) {
    embedded = await startEmbeddedPostgres(path.join(dataDir, 'pg'), { preferredPort: 0 });
    adminUrl = embedded.url;
  }
  const name = `loom_e2e_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const databaseUrl = new URL(adminUrl);
  databaseUrl.pathname = `/${name}`;

  const fakeEndpointPort = await freePort();

  const server = spawn(process.execPath, [entry], {
    cwd: root,
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl.toString(),
      DATA_DIR: path.join(dataDir, 'data'),
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      // Browser tests sign in often from one address.
      LOGIN_RATE_LIMIT_PER_MINUTE: '200',
      // As on the embedded default: the demo project and a trainer worker, with a short first SFT.
      SEED_DEMO: 'true',
      START_TRAINER: 'true',
      DEMO_SFT_STEPS: '30',
      NODE_ENV: 'test',
      // The outbound guard lets requests reach this one loopback port, where a test starts a fake
      // OpenAI-compatible endpoint; every other loopback address stays refused.
      OUTBOUND_ALLOW_HOSTS: `127.0.0.1:${fakeEndpointPort}`,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { baseURL, setupUrl } = await waitForStart(server);
  process.env.LOOM_E2E_BASE_URL = baseURL;
  process.env.LOOM_E2E_SETUP_URL = setupUrl;
  process.env.LOOM_E2E_DATABASE_URL = databaseUrl.toString();
  process.env.LOOM_E2E_FAKE_ENDPOINT_PORT = String(fakeEndpointPort);

  return async () => {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
    const dropper = new pg.Client({ connectionString: adminUrl });
    await dropper.connect();
    await dropper.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await dropper.end();
    if (embedded) {
      await embedded.stop();
      rmSync(embedded.clusterDir, { recursive: true, force: true });
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
}
