// No secret reaches the server's log. The server runs as `npm start` runs it (its own process, its
// real logger, every request logged: JSON at the most verbose level), and goes through first-admin
// setup, invitations (create, look up, accept), sign-in, a wrong password, API token creation and
// use, a password change, and a link in the old `?token=` shape; then its whole output is searched
// for every secret it handled. The setup link is printed on purpose, once, and nowhere else.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';

let database: TestDatabase;
let server: ServerProcess;

beforeAll(async () => {
  database = await createTestDatabase();
  const { TEST_DATABASE_URL: _unused, ...rest } = process.env;
  server = await startServerProcess({
    ...rest,
    DATABASE_URL: database.url,
    DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'loom-log-')),
    SEED_DEMO: 'false',
    START_TRAINER: 'false',
    PORT: '0',
    HOST: '127.0.0.1',
    NODE_ENV: 'development',
    LOG_LEVEL: 'trace',
    LOG_FORMAT: 'json',
  });
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await database?.drop();
});

interface Answer {
  status: number;
  body: Record<string, unknown>;
  cookie: string | null;
}

async function call(
  method: string,
  url: string,
  options: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const response = await fetch(`${server.origin}${url}`, {
    method,
    headers: {
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...options.headers,
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // A web page.
  }
  const cookie = /loom_session=([^;]+)/.exec(response.headers.get('set-cookie') ?? '')?.[1] ?? null;
  return { status: response.status, body, cookie };
}

/** A browser opening a one-time link: the page (the fragment stays in the browser), then the lookup. */
async function openLink(link: string): Promise<string> {
  const url = new URL(link);
  const token = new URLSearchParams(url.hash.slice(1)).get('token')!;
  expect(token).toMatch(/^loom_inv_/);
  expect(url.search).toBe('');
  expect((await call('GET', url.pathname + url.search)).status).toBe(200);
  expect((await call('POST', '/api/invites/lookup', { body: { token } })).status).toBe(200);
  return token;
}

describe('the server log', () => {
  it('holds none of the secrets the server handled', async () => {
    const secrets: Record<string, string> = {};
    const passwords = {
      admin: 'admin passphrase that is long',
      rater: 'rater passphrase that is long',
      wrong: 'a wrong passphrase, guessed',
      changed: 'a new admin passphrase, long',
    };
    Object.assign(secrets, passwords);

    // Setup: the link printed at start.
    const printed = /(http:\/\/\S+\/setup#token=\S+)/.exec(server.output())?.[1];
    expect(printed, server.output()).toBeDefined();
    const setupToken = await openLink(printed!);
    secrets.setupToken = setupToken;
    const admin = await call('POST', '/api/invites/accept', {
      body: { token: setupToken, email: 'admin@example.com', name: 'Admin', password: passwords.admin },
    });
    expect(admin.status).toBe(201);
    secrets.adminCookie = admin.cookie!;
    secrets.adminCsrf = admin.body.csrfToken as string;
    const adminHeaders = { cookie: `loom_session=${admin.cookie}`, 'x-csrf-token': secrets.adminCsrf };

    // Invitations: created, looked up, accepted; one more, opened through an old-style link.
    const invited = await call('POST', '/api/invites', {
      body: { email: 'rater@example.com', role: 'RATER' },
      headers: adminHeaders,
    });
    expect(invited.status).toBe(201);
    secrets.inviteToken = await openLink(invited.body.url as string);
    const rater = await call('POST', '/api/invites/accept', {
      body: { token: secrets.inviteToken, name: 'Rater', password: passwords.rater },
    });
    expect(rater.status).toBe(201);
    secrets.raterCookie = rater.cookie!;
    secrets.raterCsrf = rater.body.csrfToken as string;
    const second = await call('POST', '/api/invites', {
      body: { email: 'old-link@example.com', role: 'ADMIN' },
      headers: adminHeaders,
    });
    secrets.oldStyleToken = second.body.token as string;
    expect((await call('GET', `/invite?token=${encodeURIComponent(secrets.oldStyleToken)}&x=1`)).status).toBe(
      200,
    );

    // Sign-in, a wrong password, the signed-in user.
    expect(
      (
        await call('POST', '/api/auth/login', {
          body: { email: 'admin@example.com', password: passwords.wrong },
        })
      ).status,
    ).toBe(401);
    const signedIn = await call('POST', '/api/auth/login', {
      body: { email: 'admin@example.com', password: passwords.admin },
    });
    expect(signedIn.status).toBe(200);
    secrets.loginCookie = signedIn.cookie!;
    secrets.loginCsrf = signedIn.body.csrfToken as string;
    const headers = { cookie: `loom_session=${signedIn.cookie}`, 'x-csrf-token': secrets.loginCsrf };
    expect((await call('GET', '/api/auth/me', { headers })).status).toBe(200);

    // An API token: created, used, used where it may not go, revoked, refused.
    const created = await call('POST', '/api/tokens', { body: { name: 'script' }, headers });
    expect(created.status).toBe(201);
    secrets.apiToken = created.body.token as string;
    const bearer = { authorization: `Bearer ${secrets.apiToken}` };
    expect((await call('GET', '/api/users', { headers: bearer })).status).toBe(200);
    expect((await call('GET', '/api/no-such-route', { headers: bearer })).status).toBe(404);
    const tokenId = (created.body.apiToken as { id: string }).id;
    expect((await call('DELETE', `/api/tokens/${tokenId}`, { headers: bearer })).status).toBe(204);
    expect((await call('GET', '/api/auth/me', { headers: bearer })).status).toBe(401);
    // A CSRF token sent wrong, a cookie of the rater on an admin route.
    expect(
      (
        await call('POST', '/api/invites', {
          body: {},
          headers: { ...headers, 'x-csrf-token': secrets.raterCsrf },
        })
      ).status,
    ).toBe(403);
    expect(
      (await call('GET', '/api/users', { headers: { cookie: `loom_session=${rater.cookie}` } })).status,
    ).toBe(403);
    const changed = await call('POST', '/api/auth/password', {
      body: { currentPassword: passwords.admin, newPassword: passwords.changed },
      headers,
    });
    expect(changed.status).toBe(204);

    await server.stop();
    const output = server.output();
    // The log really logged every request (this test would otherwise prove nothing).
    expect(output).toMatch(/"url":"\/api\/invites\/lookup"/);
    expect(output).toMatch(/"url":"\/api\/tokens\/[0-9a-f-]+"/);
    expect(output).toContain('"url":"/invite?token=[redacted]&x=1"');

    const lines = output.split('\n');
    const printedLines = lines.filter((line) => line.includes(setupToken));
    expect(printedLines, 'the setup link is printed once').toHaveLength(1);
    expect(printedLines[0]!.trim()).toBe(printed);
    const log = lines.filter((line) => line !== printedLines[0]).join('\n');
    for (const [name, secret] of Object.entries(secrets)) {
      expect(secret.length, name).toBeGreaterThan(8);
      expect(log.includes(secret), `${name} is in the log`).toBe(false);
      expect(log.includes(encodeURIComponent(secret)), `${name} (URL-encoded) is in the log`).toBe(false);
    }
  }, 120_000);
});
