// The database link cut off and restored, through a TCP proxy in front of the test's PostgreSQL:
// refused, blackholed, or hanging mid-query on connections already open, requests answer 503 (no
// internals) within a bound instead of hanging, and the service recovers by itself when the
// database is back.
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../server/app.js';
import { loadConfig } from '../../core/config.js';
import { createPrisma, type PrismaClient } from '../../core/db/client.js';
import { PASSWORD } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

type Mode = 'pass' | 'refuse' | 'blackhole' | 'stall';

/**
 * pass: forward; refuse: reset every connection; blackhole: accept new ones and never answer;
 * stall: as blackhole, and open connections stop forwarding without a reset (a link that hangs).
 */
async function startProxy(target: URL) {
  let mode: Mode = 'pass';
  const open = new Set<net.Socket>();
  const links: { client: net.Socket; upstream: net.Socket }[] = [];
  const server = net.createServer((client) => {
    open.add(client);
    client.on('close', () => open.delete(client));
    client.on('error', () => {});
    if (mode === 'refuse') return void client.resetAndDestroy();
    if (mode !== 'pass') return;
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    open.add(upstream);
    upstream.on('close', () => open.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.pipe(upstream).pipe(client);
    links.push({ client, upstream });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as net.AddressInfo).port);
  const resetAll = () => {
    for (const socket of open) socket.resetAndDestroy();
    links.length = 0;
  };
  return {
    url: url.toString(),
    /** Refuse and blackhole cut every open connection, as a failed link or restart does. */
    set(next: Mode) {
      const previous = mode;
      mode = next;
      if (next === 'stall') {
        for (const { client, upstream } of links) {
          client.unpipe(upstream);
          upstream.unpipe(client);
          client.pause();
          upstream.pause();
        }
      } else if (next !== 'pass' || previous === 'stall') resetAll();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

let database: TestDatabase;
let proxy: Awaited<ReturnType<typeof startProxy>>;
let prisma: PrismaClient;
let app: FastifyInstance;
let cookie: string;

beforeAll(async () => {
  database = await createTestDatabase();
  proxy = await startProxy(new URL(database.url));
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: proxy.url,
    DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'loom-test-outage-')),
    SESSION_SECRET: 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz',
    LOG_LEVEL: 'silent',
  });
  // The production defaults but for the pool size and a short statement timeout (2 s; a hung link
  // is given up READ_TIMEOUT_MARGIN_MS later): a 5 s connection timeout.
  prisma = createPrisma(proxy.url, { max: 4, statementTimeoutMillis: 2_000 });
  app = await buildApp({ config, prisma, logger: false });
  await app.ready();
  await app.services.users.create(
    { email: 'admin@example.com', name: 'Admin', role: 'ADMIN', password: PASSWORD },
    { id: null },
  );
  const login = await app.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { email: 'admin@example.com', password: PASSWORD },
  });
  expect(login.statusCode).toBe(200);
  cookie = login.cookies.map((c) => `${c.name}=${c.value}`).join('; ');
});

afterAll(async () => {
  proxy.set('pass');
  await app?.close();
  await prisma?.$disconnect();
  await proxy?.close();
  await database?.drop();
});

async function timed(url: string) {
  const started = Date.now();
  const response = await app.inject({ url, headers: { cookie } });
  return { response, ms: Date.now() - started };
}

/** The service answers again by itself within 15 s of the database coming back. */
async function waitUntilUp() {
  const back = Date.now() + 15_000;
  let status = 0;
  while (Date.now() < back) {
    status = (await timed('/api/auth/me')).response.statusCode;
    if (status === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  expect(status).toBe(200);
}

describe('the database link cut off', () => {
  it('answers 503 within a bound, then recovers by itself when the database is back', async () => {
    expect((await timed('/api/auth/me')).response.statusCode).toBe(200);

    for (const mode of ['refuse', 'blackhole', 'pass', 'stall'] as const) {
      proxy.set(mode);
      if (mode === 'pass') {
        // Connections open again, to have some that then hang mid-query.
        await waitUntilUp();
        continue;
      }
      for (const url of ['/api/health', '/api/auth/me', '/api/projects']) {
        const { response, ms } = await timed(url);
        expect(response.statusCode, `${mode} ${url}: ${response.body}`).toBe(503);
        expect(ms, `${mode} ${url}`).toBeLessThan(12_000);
        const body = response.json<{ message: string; code: string }>();
        expect(body.code).toBe('DATABASE_UNAVAILABLE');
        expect(response.body).not.toMatch(/127\.0\.0\.1|postgres|ECONN|stack/i);
      }
    }

    proxy.set('pass');
    await waitUntilUp();
    expect((await timed('/api/projects')).response.statusCode).toBe(200);
  }, 120_000);
});
