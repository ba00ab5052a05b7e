// Every request has an id: in the X-Request-Id response header, on the request's log lines (pino's
// reqId) and in every error body (requestId), so a user's report leads to the log. The app runs on
// a real database with its real logger writing JSON lines into a stream the test reads.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config.js';
import { createPrisma, type PrismaClient } from '../../core/db/client.js';
import { buildApp } from '../../server/app.js';
import { logRedaction } from '../../server/log-redaction.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let database: TestDatabase;
let prisma: PrismaClient;
let app: FastifyInstance;
const lines: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  database = await createTestDatabase();
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: database.url,
    DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'loom-request-id-')),
    SESSION_SECRET: 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz',
  });
  prisma = createPrisma(database.url, { max: 4 });
  const stream = {
    write(chunk: string) {
      for (const line of chunk.split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
    },
  };
  app = await buildApp({ config, prisma, logger: { level: 'info', stream, ...logRedaction } });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await prisma?.$disconnect();
  await database?.drop();
});

/** The log lines of one request. */
const linesOf = (id: string) => lines.filter((line) => line.reqId === id);

describe('request ids', () => {
  it('puts the same id in the header, the error body and the log lines of a refused request', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { email: 'someone@example.com' },
    });
    expect(response.statusCode).toBe(400);
    const id = response.headers['x-request-id'];
    expect(id).toMatch(UUID);
    expect(response.json()).toMatchObject({ statusCode: 400, code: 'VALIDATION', requestId: id });
    const logged = linesOf(id as string);
    expect(logged.map((line) => line.msg)).toEqual(
      expect.arrayContaining(['incoming request', 'request refused', 'request completed']),
    );
  });

  it('shows the id on unknown routes and on answers that need a session', async () => {
    for (const url of ['/api/no-such-thing', '/api/auth/me']) {
      const response = await app.inject({ method: 'GET', url });
      const id = response.headers['x-request-id'] as string;
      expect(response.statusCode).toBe(url === '/api/auth/me' ? 401 : 404);
      expect(response.json<{ requestId: string }>().requestId).toBe(id);
      expect(linesOf(id).length).toBeGreaterThan(0);
    }
  });

  it("keeps a caller's sane X-Request-Id and replaces one that is not", async () => {
    const kept = await app.inject({
      method: 'GET',
      url: '/api/health',
      headers: { 'x-request-id': 'lb-7f3a.2026:12_05' },
    });
    expect(kept.headers['x-request-id']).toBe('lb-7f3a.2026:12_05');
    expect(linesOf('lb-7f3a.2026:12_05').length).toBeGreaterThan(0);

    for (const bad of ['has spaces in it', 'x'.repeat(129), 'quote"d', 'ünïcode', '']) {
      const response = await app.inject({
        method: 'GET',
        url: '/api/nope',
        headers: { 'x-request-id': bad },
      });
      const id = response.headers['x-request-id'] as string;
      expect(id).toMatch(UUID);
      expect(response.json<{ requestId: string }>().requestId).toBe(id);
    }
  });

  it('gives two requests two ids', async () => {
    const [a, b] = await Promise.all([
      app.inject({ method: 'GET', url: '/api/health' }),
      app.inject({ method: 'GET', url: '/api/health' }),
    ]);
    expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id']);
  });
});
