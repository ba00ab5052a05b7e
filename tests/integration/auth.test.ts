// Accounts and sessions against real PostgreSQL: first-admin setup, invitations, sign-in and out,
// CSRF, session expiry and renewal, disabling, API tokens and the sign-in rate limit.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createAndSignIn,
  createTestApp,
  createUser,
  PASSWORD,
  sessionCookie,
  signIn,
  type SignedIn,
  type TestApp,
} from '../support/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

/** What a one-time link grants, asked as the web page does: the token in the body, never the URL. */
function lookup(app: TestApp, token: string | null) {
  return app.app.inject({ method: 'POST', url: '/api/invites/lookup', payload: { token } });
}

describe('first admin', () => {
  it('is created once through the one-time setup link, which then stops working', async () => {
    expect((await t.app.inject({ url: '/api/setup/status' })).json()).toEqual({ needsSetup: true });
    const stale = await t.app.services.users.issueSetupToken();
    const token = await t.app.services.users.issueSetupToken();
    expect(token).toMatch(/^loom_inv_/);
    // A newer link replaces the older one.
    expect((await lookup(t, stale)).statusCode).toBe(404);
    const found = await lookup(t, token);
    expect(found.json()).toMatchObject({ kind: 'setup', email: null, role: 'ADMIN' });

    const withoutEmail = await t.app.inject({
      method: 'POST',
      url: '/api/invites/accept',
      payload: { token, name: 'First Admin', password: PASSWORD },
    });
    expect(withoutEmail.statusCode).toBe(400);

    const accepted = await t.app.inject({
      method: 'POST',
      url: '/api/invites/accept',
      payload: { token, email: 'First@Example.com', name: 'First Admin', password: PASSWORD },
    });
    expect(accepted.statusCode).toBe(201);
    expect(accepted.json()).toMatchObject({ user: { email: 'first@example.com', role: 'ADMIN' } });
    const me = await t.app.inject({ url: '/api/auth/me', headers: { cookie: sessionCookie(accepted) } });
    expect(me.statusCode).toBe(200);

    const again = await t.app.inject({
      method: 'POST',
      url: '/api/invites/accept',
      payload: { token, email: 'second@example.com', name: 'Second', password: PASSWORD },
    });
    expect(again.statusCode).toBe(404);
    expect((await lookup(t, token)).statusCode).toBe(404);
    expect(await t.app.services.users.issueSetupToken()).toBeNull();
    expect((await t.app.inject({ url: '/api/setup/status' })).json()).toEqual({ needsSetup: false });
  });

  it('is dead once any admin exists, however the admin was made', async () => {
    const fresh = await createTestApp();
    try {
      const token = (await fresh.app.services.users.issueSetupToken())!;
      expect((await lookup(fresh, token)).statusCode).toBe(200);
      // The CLI's create-user while the printed link is still pending.
      await fresh.app.services.users.create(
        { email: 'cli-admin@example.com', name: 'CLI Admin', role: 'ADMIN', password: PASSWORD },
        { id: null },
      );
      expect((await lookup(fresh, token)).statusCode).toBe(404);
      const accept = await fresh.app.inject({
        method: 'POST',
        url: '/api/invites/accept',
        payload: { token, email: 'late@example.com', name: 'Late', password: PASSWORD },
      });
      expect(accept.statusCode).toBe(404);
      expect(await fresh.prisma.user.count()).toBe(1);

      // An admin written by other means (SQL) kills a pending link too.
      const other = await createTestApp();
      try {
        const pending = (await other.app.services.users.issueSetupToken())!;
        await other.prisma.user.create({
          data: { email: 'sql-admin@example.com', name: 'SQL Admin', role: 'ADMIN' },
        });
        expect((await lookup(other, pending)).statusCode).toBe(404);
      } finally {
        await other.close();
      }
    } finally {
      await fresh.close();
    }
  });

  it('stores passwords only as argon2id hashes with m=19 MiB, t=2, p=1', async () => {
    const user = await createUser(t, 'RATER');
    const credential = await t.prisma.credential.findUniqueOrThrow({ where: { userId: user.id } });
    expect(credential.passwordHash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(credential.passwordHash).not.toContain(PASSWORD);
  });
});

describe('invitations', () => {
  it('lets an admin invite a rater who then signs up with the link, once', async () => {
    const admin = await createAndSignIn(t, 'ADMIN');
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/invites',
      headers: admin.headers,
      payload: { email: 'Invited.Rater@example.com', role: 'RATER' },
    });
    expect(created.statusCode).toBe(201);
    const { url, token, invite } = created.json<{
      url: string;
      token: string;
      invite: { id: string; email: string };
    }>();
    // The token rides in the fragment, which browsers never send to a server.
    expect(url).toBe(`http://localhost:${t.config.port}/invite#token=${token}`);
    expect((await lookup(t, token)).json()).toMatchObject({
      kind: 'invite',
      email: 'invited.rater@example.com',
      role: 'RATER',
    });
    // The lookup takes no token in its URL.
    expect((await t.app.inject({ url: `/api/invites/lookup?token=${token}` })).statusCode).toBe(404);
    expect(invite.email).toBe('invited.rater@example.com');
    const stored = await t.prisma.invite.findUniqueOrThrow({ where: { id: invite.id } });
    expect(stored.tokenHash).not.toContain(token);

    const list = await t.app.inject({ url: '/api/invites', headers: admin.headers });
    expect(list.body).not.toContain(token);

    const accepted = await t.app.inject({
      method: 'POST',
      url: '/api/invites/accept',
      // An invitation fixes the email: a different one in the body is ignored.
      payload: { token, email: 'someone.else@example.com', name: 'Rita Rater', password: PASSWORD },
    });
    expect(accepted.statusCode).toBe(201);
    expect(accepted.json()).toMatchObject({
      user: { email: 'invited.rater@example.com', role: 'RATER', name: 'Rita Rater' },
    });
    const reuse = await t.app.inject({
      method: 'POST',
      url: '/api/invites/accept',
      payload: { token, name: 'Again', password: PASSWORD },
    });
    expect(reuse.statusCode).toBe(404);
  });

  it('refuses revoked and expired invitations', async () => {
    const admin = await createAndSignIn(t, 'ADMIN');
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/invites',
      headers: admin.headers,
      payload: { email: 'revoked@example.com', role: 'RESEARCHER' },
    });
    const { token, invite } = created.json<{ token: string; invite: { id: string } }>();
    expect(
      (await t.app.inject({ method: 'DELETE', url: `/api/invites/${invite.id}`, headers: admin.headers }))
        .statusCode,
    ).toBe(204);
    expect((await lookup(t, token)).statusCode).toBe(404);

    const second = await t.app.inject({
      method: 'POST',
      url: '/api/invites',
      headers: admin.headers,
      payload: { email: 'expired@example.com', role: 'RATER' },
    });
    const expired = second.json<{ token: string; invite: { id: string } }>();
    await t.prisma.invite.update({
      where: { id: expired.invite.id },
      data: { expiresAt: new Date(Date.now() - 1000) },
    });
    const accept = await t.app.inject({
      method: 'POST',
      url: '/api/invites/accept',
      payload: { token: expired.token, name: 'Late', password: PASSWORD },
    });
    expect(accept.statusCode).toBe(404);
    expect(await t.prisma.user.findUnique({ where: { email: 'expired@example.com' } })).toBeNull();
  });
});

describe('invitations naming projects', () => {
  it('make the new user a member of them, so that they find work waiting', async () => {
    const admin = await createAndSignIn(t, 'ADMIN');
    const project = async (name: string) => {
      const created = await t.app.inject({
        method: 'POST',
        url: '/api/projects',
        headers: admin.headers,
        payload: { name: `${name} ${randomUUID().slice(0, 8)}` },
      });
      expect(created.statusCode, created.body).toBe(201);
      return created.json<{ id: string; name: string }>();
    };
    const [first, second, other] = [await project('Alpha'), await project('Beta'), await project('Gamma')];
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/invites',
      headers: admin.headers,
      payload: { email: 'member@example.com', role: 'RATER', projectIds: [second.id, first.id] },
    });
    expect(created.statusCode, created.body).toBe(201);
    const { token, invite, replaced } = created.json<{
      token: string;
      invite: { projects: { id: string; name: string }[] };
      replaced: boolean;
    }>();
    expect(replaced).toBe(false);
    expect(invite.projects).toEqual([
      { id: first.id, name: first.name },
      { id: second.id, name: second.name },
    ]);
    const listed = await t.app.inject({ url: '/api/invites', headers: admin.headers });
    expect(listed.json()[0]).toMatchObject({ email: 'member@example.com', projects: invite.projects });
    expect((await lookup(t, token)).json().projects).toEqual([{ name: first.name }, { name: second.name }]);

    const accepted = await t.app.inject({
      method: 'POST',
      url: '/api/invites/accept',
      payload: { token, name: 'Member', password: PASSWORD },
    });
    expect(accepted.statusCode, accepted.body).toBe(201);
    const rates = await t.app.inject({
      url: '/api/rating/projects',
      headers: { cookie: sessionCookie(accepted) },
    });
    expect(
      rates
        .json<{ id: string }[]>()
        .map((p) => p.id)
        .sort(),
    ).toEqual([first.id, second.id].sort());
    expect(rates.json<{ id: string }[]>().map((p) => p.id)).not.toContain(other.id);
  });

  it('refuses projects that do not exist or are archived, and stores nothing', async () => {
    const admin = await createAndSignIn(t, 'ADMIN');
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/projects',
      headers: admin.headers,
      payload: { name: `Archived ${randomUUID().slice(0, 8)}` },
    });
    const archived = created.json<{ id: string }>();
    await t.prisma.project.update({ where: { id: archived.id }, data: { archivedAt: new Date() } });
    for (const projectIds of [[randomUUID()], [archived.id]]) {
      const refused = await t.app.inject({
        method: 'POST',
        url: '/api/invites',
        headers: admin.headers,
        payload: { email: 'nowhere@example.com', role: 'RATER', projectIds },
      });
      expect(refused.statusCode, refused.body).toBe(400);
      expect(refused.json().message).toMatch(/No such project|Archived/);
    }
    expect(await t.prisma.invite.count({ where: { email: 'nowhere@example.com' } })).toBe(0);
  });

  it('say when a new invitation replaces a pending one for the same address', async () => {
    const admin = await createAndSignIn(t, 'ADMIN');
    const invite = () =>
      t.app.inject({
        method: 'POST',
        url: '/api/invites',
        headers: admin.headers,
        payload: { email: 'Twice@Example.com', role: 'RATER' },
      });
    const first = await invite();
    expect(first.json().replaced).toBe(false);
    const second = await invite();
    expect(second.statusCode).toBe(201);
    expect(second.json().replaced).toBe(true);
    expect((await lookup(t, first.json().token)).statusCode).toBe(404);
    expect((await lookup(t, second.json().token)).statusCode).toBe(200);

    // Sent at the same moment, one replaces the other: one link works, and one answer says so.
    const together = await Promise.all(
      Array.from({ length: 4 }, () =>
        t.app.inject({
          method: 'POST',
          url: '/api/invites',
          headers: admin.headers,
          payload: { email: 'together@example.com', role: 'RATER' },
        }),
      ),
    );
    expect(together.map((answer) => answer.statusCode)).toEqual([201, 201, 201, 201]);
    expect(together.filter((answer) => answer.json().replaced === false)).toHaveLength(1);
    const open = await t.prisma.invite.count({
      where: { email: 'together@example.com', acceptedAt: null, revokedAt: null },
    });
    expect(open).toBe(1);
  });
});

describe('invitation links', () => {
  it('use the configured origin, never the Host header of the request', async () => {
    const admin = await createAndSignIn(t, 'ADMIN');
    const invite = (app: TestApp, email: string, headers: Record<string, string>) =>
      app.app.inject({
        method: 'POST',
        url: '/api/invites',
        headers: { ...headers, host: 'evil.example:1234', 'x-forwarded-host': 'evil.example' },
        payload: { email, role: 'ADMIN' },
      });
    const plain = await invite(t, 'host-header@example.com', admin.headers);
    expect(plain.statusCode, plain.body).toBe(201);
    expect(plain.json().url).toMatch(new RegExp(`^http://localhost:${t.config.port}/invite#token=loom_inv_`));

    const configured = await createTestApp({ PUBLIC_URL: 'https://loom.example.org/' });
    try {
      const other = await createAndSignIn(configured, 'ADMIN');
      const response = await invite(configured, 'configured@example.com', other.headers);
      expect(response.json().url).toMatch(/^https:\/\/loom\.example\.org\/invite#token=loom_inv_/);
    } finally {
      await configured.close();
    }
  });
});

describe('sign-in and sessions', () => {
  it('sets an httpOnly SameSite cookie, gives a new session at every sign-in, and signs out', async () => {
    const user = await createUser(t, 'RESEARCHER');
    const first = await t.app.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { email: user.email, password: PASSWORD },
    });
    expect(first.statusCode).toBe(200);
    const cookie = first.cookies.find((c) => c.name === 'loom_session')!;
    expect(cookie.httpOnly).toBe(true);
    expect(cookie.sameSite).toBe('Lax');
    expect(cookie.value.length).toBeGreaterThanOrEqual(43); // 256 random bits

    const second = await signIn(t, user.email);
    expect(second.cookie).not.toBe(sessionCookie(first));
    const stored = await t.prisma.session.findMany({ where: { userId: user.id } });
    expect(stored).toHaveLength(2);
    expect(stored.every((s) => !cookie.value.includes(s.tokenHash) && s.tokenHash !== cookie.value)).toBe(
      true,
    );

    const out = await t.app.inject({ method: 'POST', url: '/api/auth/logout', headers: second.headers });
    expect(out.statusCode).toBe(204);
    expect((await t.app.inject({ url: '/api/auth/me', headers: { cookie: second.cookie } })).statusCode).toBe(
      401,
    );
    expect(
      (await t.app.inject({ url: '/api/auth/me', headers: { cookie: sessionCookie(first) } })).statusCode,
    ).toBe(200);
  });

  it('answers the same for an unknown email and a wrong password', async () => {
    const user = await createUser(t, 'RATER');
    const wrong = await t.app.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { email: user.email, password: 'not the password' },
    });
    const unknown = await t.app.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { email: 'nobody@example.com', password: 'x' },
    });
    expect(wrong.statusCode).toBe(401);
    expect(unknown.statusCode).toBe(401);
    expect(wrong.json().message).toBe(unknown.json().message);
  });

  it('requires the CSRF token on cookie-authenticated writes', async () => {
    const admin = await createAndSignIn(t, 'ADMIN');
    const payload = { email: `csrf-${Date.now()}@example.com`, role: 'RATER' };
    const missing = await t.app.inject({
      method: 'POST',
      url: '/api/invites',
      headers: { cookie: admin.cookie },
      payload,
    });
    expect(missing.statusCode).toBe(403);
    expect(missing.json().message).toMatch(/CSRF/);
    const wrong = await t.app.inject({
      method: 'POST',
      url: '/api/invites',
      headers: { cookie: admin.cookie, 'x-csrf-token': 'forged' },
      payload,
    });
    expect(wrong.statusCode).toBe(403);
    expect(await t.prisma.invite.count({ where: { email: payload.email } })).toBe(0);
    const right = await t.app.inject({
      method: 'POST',
      url: '/api/invites',
      headers: admin.headers,
      payload,
    });
    expect(right.statusCode).toBe(201);
  });

  it('ends sessions after the idle timeout and the absolute lifetime', async () => {
    const idle = await createAndSignIn(t, 'RATER');
    await t.prisma.session.updateMany({
      where: { userId: idle.userId },
      data: { lastSeenAt: new Date(Date.now() - t.config.sessionIdleMs - 1000) },
    });
    await t.app.services.auth.credentialsCurrent();
    expect((await t.app.inject({ url: '/api/auth/me', headers: idle.headers })).statusCode).toBe(401);

    const old = await createAndSignIn(t, 'RATER');
    await t.prisma.session.updateMany({
      where: { userId: old.userId },
      data: { expiresAt: new Date(Date.now() - 1000) },
    });
    await t.app.services.auth.credentialsCurrent();
    expect((await t.app.inject({ url: '/api/auth/me', headers: old.headers })).statusCode).toBe(401);
  });

  it('lists and revokes own sessions', async () => {
    const user = await createUser(t, 'RATER');
    const a = await signIn(t, user.email);
    const b = await signIn(t, user.email);
    const list = await t.app.inject({ url: '/api/auth/sessions', headers: a.headers });
    const sessions = list.json<{ id: string; current: boolean }[]>();
    expect(sessions).toHaveLength(2);
    const other = sessions.find((s) => !s.current)!;
    expect(
      (await t.app.inject({ method: 'DELETE', url: `/api/auth/sessions/${other.id}`, headers: a.headers }))
        .statusCode,
    ).toBe(204);
    expect((await t.app.inject({ url: '/api/auth/me', headers: b.headers })).statusCode).toBe(401);
    expect((await t.app.inject({ url: '/api/auth/me', headers: a.headers })).statusCode).toBe(200);
  });

  it('changes the password, ending the other sessions', async () => {
    const user = await createUser(t, 'RESEARCHER');
    const a = await signIn(t, user.email);
    const b = await signIn(t, user.email);
    const wrong = await t.app.inject({
      method: 'POST',
      url: '/api/auth/password',
      headers: a.headers,
      payload: { currentPassword: 'wrong', newPassword: 'another long passphrase' },
    });
    expect(wrong.statusCode).toBe(409);
    const changed = await t.app.inject({
      method: 'POST',
      url: '/api/auth/password',
      headers: a.headers,
      payload: { currentPassword: PASSWORD, newPassword: 'another long passphrase' },
    });
    expect(changed.statusCode).toBe(204);
    expect((await t.app.inject({ url: '/api/auth/me', headers: a.headers })).statusCode).toBe(200);
    expect((await t.app.inject({ url: '/api/auth/me', headers: b.headers })).statusCode).toBe(401);
    await expect(signIn(t, user.email)).rejects.toThrow(/401/);
    await signIn(t, user.email, 'another long passphrase');
  });
});

describe('user administration', () => {
  it('disabling a user ends their sessions and API tokens at once; enabling lets them sign in again', async () => {
    const admin = await createAndSignIn(t, 'ADMIN');
    const researcher = await createAndSignIn(t, 'RESEARCHER');
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/tokens',
      headers: researcher.headers,
      payload: { name: 'script' },
    });
    const bearer = { authorization: `Bearer ${created.json<{ token: string }>().token}` };
    expect((await t.app.inject({ url: '/api/auth/me', headers: bearer })).statusCode).toBe(200);

    const disable = await t.app.inject({
      method: 'PATCH',
      url: `/api/users/${researcher.userId}`,
      headers: admin.headers,
      payload: { disabled: true },
    });
    expect(disable.statusCode).toBe(200);
    expect(disable.json()).toMatchObject({ disabled: true });
    expect((await t.app.inject({ url: '/api/auth/me', headers: researcher.headers })).statusCode).toBe(401);
    expect((await t.app.inject({ url: '/api/auth/me', headers: bearer })).statusCode).toBe(401);
    await expect(signIn(t, researcher.email)).rejects.toThrow(/401/);

    await t.app.inject({
      method: 'PATCH',
      url: `/api/users/${researcher.userId}`,
      headers: admin.headers,
      payload: { disabled: false },
    });
    await signIn(t, researcher.email);
  });

  it('changes roles (ending the user’s sessions) and protects the admins themselves', async () => {
    const admin = await createAndSignIn(t, 'ADMIN');
    const rater = await createAndSignIn(t, 'RATER');
    const promote = await t.app.inject({
      method: 'PATCH',
      url: `/api/users/${rater.userId}`,
      headers: admin.headers,
      payload: { role: 'RESEARCHER' },
    });
    expect(promote.json()).toMatchObject({ role: 'RESEARCHER' });
    expect((await t.app.inject({ url: '/api/auth/me', headers: rater.headers })).statusCode).toBe(401);

    const self = await t.app.inject({
      method: 'PATCH',
      url: `/api/users/${admin.userId}`,
      headers: admin.headers,
      payload: { disabled: true },
    });
    expect(self.statusCode).toBe(409);
    const demoteSelf = await t.app.inject({
      method: 'PATCH',
      url: `/api/users/${admin.userId}`,
      headers: admin.headers,
      payload: { role: 'RATER' },
    });
    expect(demoteSelf.statusCode).toBe(409);
    expect((await t.prisma.user.findUniqueOrThrow({ where: { id: admin.userId } })).role).toBe('ADMIN');
  });

  it('a role change revokes the user’s API tokens at once; they still see and revoke their own', async () => {
    const admin = await createAndSignIn(t, 'ADMIN');
    const demoted = await createAndSignIn(t, 'ADMIN');
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/tokens',
      headers: demoted.headers,
      payload: { name: 'admin script' },
    });
    const { token, apiToken } = created.json<{ token: string; apiToken: { id: string } }>();
    const bearer = { authorization: `Bearer ${token}` };
    // Used once, so the server knows it from memory.
    expect((await t.app.inject({ url: '/api/users', headers: bearer })).statusCode).toBe(200);
    const demote = await t.app.inject({
      method: 'PATCH',
      url: `/api/users/${demoted.userId}`,
      headers: admin.headers,
      payload: { role: 'RATER' },
    });
    expect(demote.statusCode, demote.body).toBe(200);
    // Not even with the new role's rights: the token was made under the old one.
    expect((await t.app.inject({ url: '/api/auth/me', headers: bearer })).statusCode).toBe(401);
    expect((await t.app.inject({ url: '/api/users', headers: bearer })).statusCode).toBe(401);

    const again = await signIn(t, demoted.email);
    const list = await t.app.inject({ url: '/api/tokens', headers: again.headers });
    expect(list.statusCode, list.body).toBe(200);
    expect(list.json()).toEqual([
      expect.objectContaining({ id: apiToken.id, revokedAt: expect.any(String) }),
    ]);
    // A rater creates none, but revokes their own (here one that predates the role change).
    expect(
      (
        await t.app.inject({
          method: 'POST',
          url: '/api/tokens',
          headers: again.headers,
          payload: { name: 'rater script' },
        })
      ).statusCode,
    ).toBe(403);
    const kept = await t.prisma.apiToken.create({
      data: { userId: demoted.userId, name: 'old', prefix: 'loom_at_old', tokenHash: `h-${randomUUID()}` },
    });
    const revoke = await t.app.inject({
      method: 'DELETE',
      url: `/api/tokens/${kept.id}`,
      headers: again.headers,
    });
    expect(revoke.statusCode, revoke.body).toBe(204);
    expect((await t.prisma.apiToken.findUniqueOrThrow({ where: { id: kept.id } })).revokedAt).not.toBeNull();
  });

  it('creates users with a password and refuses duplicates', async () => {
    const admin = await createAndSignIn(t, 'ADMIN');
    const payload = { email: 'Created@Example.com', name: 'Created', role: 'RESEARCHER', password: PASSWORD };
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/users',
      headers: admin.headers,
      payload,
    });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({
      email: 'created@example.com',
      role: 'RESEARCHER',
      disabled: false,
    });
    const again = await t.app.inject({ method: 'POST', url: '/api/users', headers: admin.headers, payload });
    expect(again.statusCode).toBe(409);
    const weak = await t.app.inject({
      method: 'POST',
      url: '/api/users',
      headers: admin.headers,
      payload: { ...payload, email: 'w@example.com', password: 'short' },
    });
    expect(weak.statusCode).toBe(400);
    expect(weak.json().message).toMatch(/password/);
  });

  it('records what admins do in the audit log', async () => {
    const admin = await createAndSignIn(t, 'ADMIN');
    await t.app.inject({
      method: 'POST',
      url: '/api/invites',
      headers: admin.headers,
      payload: { email: 'audited@example.com', role: 'RATER' },
    });
    const page = await t.app.inject({ url: '/api/audit?limit=5', headers: admin.headers });
    const entries = page.json<{ entries: { action: string; actorEmail: string | null }[] }>().entries;
    expect(entries[0]).toMatchObject({ action: 'invite.create', actorEmail: admin.email });
  });
});

describe('the last active admin', () => {
  /** Two admins acting on each other at the same moment, in a database where they are the only ones. */
  async function race(
    first: (a: SignedIn, b: SignedIn) => Record<string, unknown>,
    second: (a: SignedIn, b: SignedIn) => Record<string, unknown>,
  ) {
    const app = await createTestApp();
    try {
      for (let round = 0; round < 8; round++) {
        await app.prisma.user.updateMany({ data: { role: 'RATER' } });
        const a = await createAndSignIn(app, 'ADMIN');
        const b = await createAndSignIn(app, 'ADMIN');
        const patch = (actor: SignedIn, target: SignedIn, payload: Record<string, unknown>) =>
          app.app.inject({
            method: 'PATCH',
            url: `/api/users/${target.userId}`,
            headers: actor.headers,
            payload,
          });
        const answers = await Promise.all([patch(a, b, first(a, b)), patch(b, a, second(a, b))]);
        const codes = answers.map((answer) => answer.statusCode).sort();
        expect(codes[0], answers.map((answer) => answer.body).join('\n')).toBe(200);
        // 401: the other request came after the first had ended its session.
        expect([401, 403, 409]).toContain(codes[1]);
        expect(await app.prisma.user.count({ where: { role: 'ADMIN', disabledAt: null } })).toBe(1);
      }
    } finally {
      await app.close();
    }
  }

  it('stays when two admins demote each other at once', async () => {
    await race(
      () => ({ role: 'RESEARCHER' }),
      () => ({ role: 'RESEARCHER' }),
    );
  });

  it('stays when one admin disables the other while being demoted', async () => {
    await race(
      () => ({ disabled: true }),
      () => ({ role: 'RATER' }),
    );
  });

  it('stays when two admins disable each other at once', async () => {
    await race(
      () => ({ disabled: true }),
      () => ({ disabled: true }),
    );
  });
});

describe('API tokens', () => {
  it('are shown once, stored hashed, and stop working the moment they are revoked', async () => {
    const researcher = await createAndSignIn(t, 'RESEARCHER');
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/tokens',
      headers: researcher.headers,
      payload: { name: 'nightly export', expiresInDays: 30 },
    });
    expect(created.statusCode).toBe(201);
    const { token, apiToken } = created.json<{ token: string; apiToken: { id: string; prefix: string } }>();
    expect(token.startsWith(apiToken.prefix)).toBe(true);
    const row = await t.prisma.apiToken.findUniqueOrThrow({ where: { id: apiToken.id } });
    expect(row.tokenHash).not.toBe(token);
    const list = await t.app.inject({ url: '/api/tokens', headers: researcher.headers });
    expect(list.body).not.toContain(token);

    const bearer = { authorization: `Bearer ${token}` };
    expect((await t.app.inject({ url: '/api/auth/me', headers: bearer })).json()).toMatchObject({
      csrfToken: null,
    });
    expect(
      (await t.app.inject({ method: 'DELETE', url: `/api/tokens/${apiToken.id}`, headers: bearer }))
        .statusCode,
    ).toBe(204);
    expect((await t.app.inject({ url: '/api/auth/me', headers: bearer })).statusCode).toBe(401);
  });

  it('refuses malformed and expired tokens', async () => {
    expect(
      (await t.app.inject({ url: '/api/auth/me', headers: { authorization: 'Basic abc' } })).statusCode,
    ).toBe(401);
    expect(
      (await t.app.inject({ url: '/api/auth/me', headers: { authorization: 'Bearer loom_at_nope' } }))
        .statusCode,
    ).toBe(401);
    const researcher = await createAndSignIn(t, 'RESEARCHER');
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/tokens',
      headers: researcher.headers,
      payload: { name: 'short-lived' },
    });
    const { token, apiToken } = created.json<{ token: string; apiToken: { id: string } }>();
    await t.prisma.apiToken.update({
      where: { id: apiToken.id },
      data: { expiresAt: new Date(Date.now() - 1000) },
    });
    await t.app.services.auth.credentialsCurrent();
    expect(
      (await t.app.inject({ url: '/api/auth/me', headers: { authorization: `Bearer ${token}` } })).statusCode,
    ).toBe(401);
  });
});

describe('credentials kept between requests', () => {
  const me = (headers: Record<string, string>) => t.app.inject({ url: '/api/auth/me', headers });

  it('are forgotten when another process revokes a session or disables a user', async () => {
    const rater = await createAndSignIn(t, 'RATER');
    const other = await createAndSignIn(t, 'RATER');
    expect((await me(rater.headers)).statusCode).toBe(200);
    expect((await me(other.headers)).statusCode).toBe(200);
    // As the CLI or another server would: plain SQL on another connection.
    await t.prisma
      .$executeRaw`UPDATE "Session" SET "revokedAt" = now() WHERE "userId" = ${rater.userId}::uuid`;
    await t.prisma.$executeRaw`UPDATE "User" SET "disabledAt" = now() WHERE id = ${other.userId}::uuid`;
    await t.app.services.auth.credentialsCurrent();
    expect((await me(rater.headers)).statusCode).toBe(401);
    expect((await me(other.headers)).statusCode).toBe(401);
  });

  it('are not kept while the connection that hears of changes is down', async () => {
    const rater = await createAndSignIn(t, 'RATER');
    expect((await me(rater.headers)).statusCode).toBe(200);
    const listeners = () => t.prisma.$queryRaw<{ pid: number }[]>`
      SELECT pid FROM pg_stat_activity WHERE application_name = 'loom-credentials' AND datname = current_database()`;
    const [listener] = await listeners();
    expect(listener).toBeDefined();
    await t.prisma.$queryRaw`SELECT pg_terminate_backend(${listener!.pid}::int)`;
    // A change while nobody listens is never announced; the cache, emptied, reads it.
    await expect.poll(listeners, { timeout: 2_000 }).toEqual([]);
    await t.prisma
      .$executeRaw`UPDATE "Session" SET "revokedAt" = now() WHERE "userId" = ${rater.userId}::uuid`;
    expect((await me(rater.headers)).statusCode).toBe(401);
    // The connection comes back by itself.
    await expect.poll(async () => (await listeners()).length, { timeout: 10_000 }).toBe(1);
    const again = await signIn(t, rater.email);
    expect((await me(again.headers)).statusCode).toBe(200);
  });
});

describe('sign-in rate limit', () => {
  it('answers 429 after too many attempts from one address', async () => {
    const limited = await createTestApp({ LOGIN_RATE_LIMIT_PER_MINUTE: '3' });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const response = await limited.app.inject({
          method: 'POST',
          url: '/api/auth/login',
          payload: { email: 'someone@example.com', password: 'guess' },
        });
        statuses.push(response.statusCode);
      }
      expect(statuses).toEqual([401, 401, 401, 429, 429]);
    } finally {
      await limited.close();
    }
  });
});

describe('security headers', () => {
  it('come with every response: answers, errors and signed-in requests alike', async () => {
    const rater = await createAndSignIn(t, 'RATER');
    const responses = [
      await t.app.inject({ method: 'GET', url: '/api/health' }),
      await t.app.inject({ method: 'GET', url: '/api/no-such-route' }),
      await t.app.inject({ method: 'GET', url: '/api/auth/me', headers: rater.headers }),
    ];
    expect(responses.map((response) => response.statusCode)).toEqual([200, 404, 200]);
    for (const response of responses) {
      const csp = String(response.headers['content-security-policy']);
      expect(csp).toContain("default-src 'self'");
      expect(csp).toMatch(/script-src 'self'( 'sha256-[^']+')*;/);
      expect(csp).toContain("object-src 'none'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain('unsafe-eval');
      expect(response.headers).toMatchObject({
        'x-content-type-options': 'nosniff',
        'x-frame-options': 'SAMEORIGIN',
        'referrer-policy': 'no-referrer',
        'cross-origin-opener-policy': 'same-origin',
        'strict-transport-security': expect.stringContaining('max-age='),
      });
      expect(response.headers['cross-origin-embedder-policy']).toBeUndefined();
    }
  });
});
