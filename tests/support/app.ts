// Builds the real application on a fresh database for integration tests (app.inject, no port),
// with helpers to create users and sign them in through the API like a browser would.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { PgBoss } from 'pg-boss';
import { startBoss } from '../../core/jobs.js';
import { buildApp } from '../../server/app.js';
import { loadConfig, type Config } from '../../core/config.js';
import { createPrisma, type PrismaClient } from '../../core/db/client.js';
import type { Role } from '../../core/schemas/common.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export const PASSWORD = 'correct horse battery staple';

export interface TestApp {
  app: FastifyInstance;
  prisma: PrismaClient;
  config: Config;
  database: TestDatabase;
  boss: PgBoss | undefined;
  close(): Promise<void>;
}

export interface TestAppOptions {
  /** Start the job queue (pg-boss) for this app, with fast crash detection. */
  jobs?: boolean;
}

export async function createTestApp(
  env: Record<string, string> = {},
  options: TestAppOptions = {},
): Promise<TestApp> {
  const database = await createTestDatabase();
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: database.url,
    DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'loom-test-data-')),
    SESSION_SECRET: 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz',
    LOGIN_RATE_LIMIT_PER_MINUTE: '1000',
    LOG_LEVEL: 'silent',
    ...env,
  });
  const prisma = createPrisma(database.url, { max: config.dbPoolMax });
  const boss = options.jobs
    ? await startBoss(database.url, { heartbeatSeconds: 10, monitorIntervalSeconds: 1 })
    : undefined;
  const app = await buildApp({ config, prisma, logger: false, boss });
  await app.ready();
  return {
    app,
    prisma,
    config,
    database,
    boss,
    async close() {
      await app.close();
      await boss?.stop({ graceful: false });
      await prisma.$disconnect();
      await database.drop();
    },
  };
}

export interface SignedIn {
  userId: string;
  email: string;
  cookie: string;
  csrf: string;
  /** Headers for a cookie-authenticated request, CSRF token included. */
  headers: Record<string, string>;
}

export function sessionCookie(response: LightMyRequestResponse): string {
  const cookie = response.cookies.find((c) => c.name === 'loom_session');
  if (!cookie) throw new Error(`No session cookie in the answer (status ${response.statusCode})`);
  return `loom_session=${cookie.value}`;
}

let counter = 0;

export async function createUser(
  t: TestApp,
  role: Role,
  email = `${role.toLowerCase()}-${++counter}-${Date.now()}@example.com`,
) {
  return t.app.services.users.create(
    { email, name: `${role} ${counter}`, role, password: PASSWORD },
    { id: null },
  );
}

export async function signIn(t: TestApp, email: string, password = PASSWORD): Promise<SignedIn> {
  const response = await t.app.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { email, password },
  });
  if (response.statusCode !== 200) throw new Error(`Sign-in failed: ${response.statusCode} ${response.body}`);
  const body = response.json<{ user: { id: string }; csrfToken: string }>();
  const cookie = sessionCookie(response);
  return {
    userId: body.user.id,
    email,
    cookie,
    csrf: body.csrfToken,
    headers: { cookie, 'x-csrf-token': body.csrfToken },
  };
}

export async function createAndSignIn(t: TestApp, role: Role): Promise<SignedIn> {
  const user = await createUser(t, role);
  return signIn(t, user.email);
}
