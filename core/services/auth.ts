// Sign-in, server-side sessions and API tokens: who is calling, and whether they still may.
import type { Config } from '../config.js';
import { poolOf, statementName, type PrismaClient, type User } from '../db/client.js';
import { conflict, notFound, unauthorized } from '../errors.js';
import { recordAudit } from './audit.js';
import type { CredentialCache } from './credential-cache.js';
import { hashPassword, verifyPassword } from './passwords.js';
import { hashSecret, newSecret } from './secrets.js';
import { normalizeEmail } from './users.js';

export const SESSION_PREFIX = 'loom_s_';
export const API_TOKEN_PREFIX = 'loom_at_';
/** lastSeenAt is written at most this often, so reads do not each cost a write. */
const TOUCH_INTERVAL_MS = 60_000;

export interface Principal {
  user: User;
  /** Set for cookie sessions; writes then need the CSRF token. */
  sessionId: string | null;
  csrfToken: string | null;
  apiTokenId: string | null;
  /** An API token's scope: "training" tokens reach only external training engines' routes. */
  tokenScope: 'user' | 'training' | null;
}

/** Every column of User, for raw queries that return a user (the mapping below names each one). */
const USER_COLUMNS = `u.id, u.email, u.name, u.role, u.simulated, u."disabledAt", u."lastLoginAt",
  u."createdAt", u."updatedAt"`;

export type CredentialRow = User & {
  credentialId: string;
  csrfToken: string | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
  usedAt: Date | null;
  scope: string | null;
};

function userOf(row: User): User {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    role: row.role,
    simulated: row.simulated,
    disabledAt: row.disabledAt,
    lastLoginAt: row.lastLoginAt,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

export interface ClientInfo {
  ip: string | null;
  userAgent: string | null;
}

/** Secrets whose hashes are remembered (oldest forgotten first). */
const HASHES_REMEMBERED = 10_000;

export class AuthService {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly config: Config,
    /** Resolved credentials between requests; without one every request reads them. */
    private readonly cache: CredentialCache<CredentialRow> | null = null,
  ) {}

  /**
   * Keyed hashes of the secrets seen lately: every signed-in request hashes its cookie or token to
   * look it up, and the HMAC was a twentieth of a cheap request's cost. A hash is a pure function
   * of the secret, so a remembered one is never stale; the credential it names is checked anew.
   */
  private readonly hashes = new Map<string, string>();

  private hash(secret: string): string {
    let hashed = this.hashes.get(secret);
    if (hashed === undefined) {
      hashed = hashSecret(this.config.sessionSecret, secret);
      this.hashes.set(secret, hashed);
      if (this.hashes.size > HASHES_REMEMBERED) this.hashes.delete(this.hashes.keys().next().value!);
    }
    return hashed;
  }

  async login(emailInput: string, password: string, client: ClientInfo) {
    const email = normalizeEmail(emailInput);
    const user = await this.prisma.user.findUnique({ where: { email }, include: { credential: true } });
    const ok = await verifyPassword(user?.credential?.passwordHash ?? null, password);
    if (!user || !ok || user.disabledAt) {
      await recordAudit(this.prisma, {
        actorId: user?.id ?? null,
        action: 'auth.login-failed',
        details: {
          email,
          reason: !user ? 'unknown-email' : user.disabledAt && ok ? 'disabled' : 'bad-password',
        },
        ip: client.ip,
      });
      // One message for every case, so the answer does not reveal which accounts exist.
      throw unauthorized('Wrong email or password, or the account is disabled.');
    }
    const { credential: _credential, ...plainUser } = user;
    return this.startSession(plainUser, client);
  }

  /** A fresh session (a new token at every sign-in, so a planted cookie cannot be reused). */
  async startSession(user: User, client: ClientInfo) {
    const token = newSecret(SESSION_PREFIX);
    const csrfToken = newSecret('');
    const now = new Date();
    const session = await this.prisma.session.create({
      data: {
        userId: user.id,
        tokenHash: this.hash(token),
        csrfToken,
        ip: client.ip,
        userAgent: client.userAgent?.slice(0, 300) ?? null,
        expiresAt: new Date(now.getTime() + this.config.sessionAbsoluteMs),
      },
    });
    const updated = await this.prisma.user.update({ where: { id: user.id }, data: { lastLoginAt: now } });
    await recordAudit(this.prisma, {
      actorId: user.id,
      action: 'auth.login',
      targetType: 'session',
      targetId: session.id,
      ip: client.ip,
    });
    return { token, session, user: updated };
  }

  /**
   * The credential and its user in one statement on node-postgres: it runs on every request, where
   * an ORM round trip per request is most of a cheap request's cost.
   */
  private async lookup(table: 'Session' | 'ApiToken', tokenHash: string): Promise<CredentialRow | null> {
    const key = `${table}:${tokenHash}`;
    const cached = this.cache?.get(key);
    if (cached) return cached;
    const mark = this.cache?.mark() ?? 0;
    const used = table === 'Session' ? 'k."lastSeenAt"' : 'k."lastUsedAt"';
    const csrf = table === 'Session' ? 'k."csrfToken"' : 'NULL';
    const scope = table === 'Session' ? 'NULL' : 'k.scope';
    const text = `SELECT k.id AS "credentialId", ${csrf} AS "csrfToken", k."expiresAt", k."revokedAt", ${used} AS "usedAt",
         ${scope} AS scope,
         ${USER_COLUMNS}
       FROM "${table}" k JOIN "User" u ON u.id = k."userId"
       WHERE k."tokenHash" = $1`;
    const { rows } = await poolOf(this.prisma).query<CredentialRow>({
      name: statementName(text),
      text,
      values: [tokenHash],
    });
    const row = rows[0] ?? null;
    if (row) this.cache?.set(key, row, mark);
    return row;
  }

  /**
   * Resolves once changes to sessions, tokens and users committed elsewhere (another process, SQL)
   * before the call take effect here; without it they do within moments.
   */
  credentialsCurrent(): Promise<void> {
    return this.cache?.sync() ?? Promise.resolve();
  }

  /** A request found the database unreachable: credentials are read again until it is back. */
  databaseTrouble(): void {
    this.cache?.suspect();
  }

  async resolveSession(token: string): Promise<Principal | null> {
    if (!token.startsWith(SESSION_PREFIX)) return null;
    const session = await this.lookup('Session', this.hash(token));
    if (!session || session.revokedAt || session.disabledAt) return null;
    const now = Date.now();
    const lastSeen = session.usedAt!.getTime();
    if (session.expiresAt!.getTime() <= now || lastSeen + this.config.sessionIdleMs <= now) return null;
    if (now - lastSeen > TOUCH_INTERVAL_MS) {
      await this.prisma.session.update({
        where: { id: session.credentialId },
        data: { lastSeenAt: new Date(now) },
      });
      this.cache?.forgetUser(session.id);
    }
    return {
      user: userOf(session),
      sessionId: session.credentialId,
      csrfToken: session.csrfToken,
      apiTokenId: null,
      tokenScope: null,
    };
  }

  async resolveApiToken(token: string): Promise<Principal | null> {
    if (!token.startsWith(API_TOKEN_PREFIX)) return null;
    const apiToken = await this.lookup('ApiToken', this.hash(token));
    if (!apiToken || apiToken.revokedAt || apiToken.disabledAt) return null;
    if (apiToken.expiresAt && apiToken.expiresAt.getTime() <= Date.now()) return null;
    if (!apiToken.usedAt || Date.now() - apiToken.usedAt.getTime() > TOUCH_INTERVAL_MS) {
      await this.prisma.apiToken.update({
        where: { id: apiToken.credentialId },
        data: { lastUsedAt: new Date() },
      });
      this.cache?.forgetUser(apiToken.id);
    }
    return {
      user: userOf(apiToken),
      sessionId: null,
      csrfToken: null,
      apiTokenId: apiToken.credentialId,
      tokenScope: apiToken.scope === 'training' ? 'training' : 'user',
    };
  }

  async endSession(sessionId: string): Promise<void> {
    await this.prisma.session.updateMany({
      where: { id: sessionId, revokedAt: null },
      data: { revokedAt: new Date() },
    });
    this.cache?.forgetAll();
  }

  listSessions(userId: string) {
    const now = new Date();
    return this.prisma.session.findMany({
      where: {
        userId,
        revokedAt: null,
        expiresAt: { gt: now },
        lastSeenAt: { gt: new Date(now.getTime() - this.config.sessionIdleMs) },
      },
      orderBy: { lastSeenAt: 'desc' },
    });
  }

  async revokeOwnSession(userId: string, sessionId: string, ip: string | null): Promise<void> {
    const result = await this.prisma.session.updateMany({
      where: { id: sessionId, userId, revokedAt: null },
      data: { revokedAt: new Date() },
    });
    this.cache?.forgetUser(userId);
    if (result.count === 0) throw notFound('No such session.');
    await recordAudit(this.prisma, {
      actorId: userId,
      action: 'session.revoke',
      targetType: 'session',
      targetId: sessionId,
      ip,
    });
  }

  /** Changes the password and ends every other session of the user. */
  async changePassword(
    principal: Principal,
    currentPassword: string,
    newPassword: string,
    ip: string | null,
  ) {
    const credential = await this.prisma.credential.findUnique({ where: { userId: principal.user.id } });
    if (!(await verifyPassword(credential?.passwordHash ?? null, currentPassword))) {
      throw conflict('The current password is wrong.');
    }
    const passwordHash = await hashPassword(newPassword);
    await this.prisma.$transaction([
      this.prisma.credential.upsert({
        where: { userId: principal.user.id },
        create: { userId: principal.user.id, passwordHash },
        update: { passwordHash },
      }),
      this.prisma.session.updateMany({
        where: {
          userId: principal.user.id,
          revokedAt: null,
          ...(principal.sessionId ? { id: { not: principal.sessionId } } : {}),
        },
        data: { revokedAt: new Date() },
      }),
    ]);
    this.cache?.forgetUser(principal.user.id);
    await recordAudit(this.prisma, {
      actorId: principal.user.id,
      action: 'auth.password-change',
      targetType: 'user',
      targetId: principal.user.id,
      ip,
    });
  }

  listApiTokens(userId: string) {
    return this.prisma.apiToken.findMany({ where: { userId }, orderBy: { createdAt: 'desc' } });
  }

  async createApiToken(
    userId: string,
    name: string,
    expiresInDays: number | undefined,
    ip: string | null,
    scope: 'user' | 'training' = 'user',
  ) {
    const token = newSecret(API_TOKEN_PREFIX);
    const apiToken = await this.prisma.apiToken.create({
      data: {
        userId,
        name: name.trim(),
        prefix: token.slice(0, API_TOKEN_PREFIX.length + 6),
        tokenHash: this.hash(token),
        expiresAt: expiresInDays ? new Date(Date.now() + expiresInDays * 86_400_000) : null,
        scope,
      },
    });
    await recordAudit(this.prisma, {
      actorId: userId,
      action: 'token.create',
      targetType: 'api-token',
      targetId: apiToken.id,
      details: { name, scope },
      ip,
    });
    return { apiToken, token };
  }

  /** Revokes one of the caller's own tokens; effective for the very next request. */
  async revokeApiToken(userId: string, id: string, ip: string | null): Promise<void> {
    const result = await this.prisma.apiToken.updateMany({
      where: { id, userId, revokedAt: null },
      data: { revokedAt: new Date() },
    });
    this.cache?.forgetUser(userId);
    if (result.count === 0) throw notFound('No such token.');
    await recordAudit(this.prisma, {
      actorId: userId,
      action: 'token.revoke',
      targetType: 'api-token',
      targetId: id,
      ip,
    });
  }
}

export function toApiTokenDto(token: {
  id: string;
  name: string;
  prefix: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
  scope: string;
}) {
  return {
    id: token.id,
    name: token.name,
    prefix: token.prefix,
    scope: token.scope === 'training' ? ('training' as const) : ('user' as const),
    createdAt: token.createdAt.toISOString(),
    lastUsedAt: token.lastUsedAt?.toISOString() ?? null,
    expiresAt: token.expiresAt?.toISOString() ?? null,
    revokedAt: token.revokedAt?.toISOString() ?? null,
  };
}
