// Accounts: users, roles, disabling, invitations and the first admin's one-time setup link.
import type { Config } from '../config.js';
import type { PrismaClient, User } from '../db/client.js';
import { badRequest, conflict, forbidden, notFound } from '../errors.js';
import type { Role } from '../schemas/common.js';
import { recordAudit } from './audit.js';
import type { CredentialCache } from './credential-cache.js';
import { hashPassword } from './passwords.js';
import { hashSecret, newSecret } from './secrets.js';

export const INVITE_PREFIX = 'loom_inv_';
const SETUP_LINK_HOURS = 24;

export interface Actor {
  id: string | null;
  ip?: string | null;
}

/**
 * The origin of the links Loom hands out: PUBLIC_URL, else this server on localhost and the port it
 * listens on. Never the request's Host header, which the caller chooses.
 */
export function publicOrigin(configured: string | undefined, port: number): string {
  return configured ?? `http://localhost:${port}`;
}

/**
 * A one-time link: the token rides in the fragment, which browsers never send to a server, so it
 * reaches no request log (the page reads it and posts it in a body).
 */
export function oneTimeLink(origin: string, page: 'setup' | 'invite', token: string): string {
  return `${origin}/${page}#token=${encodeURIComponent(token)}`;
}

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

export function toUserDto(user: User) {
  return {
    id: user.id,
    email: user.email,
    name: user.name,
    role: user.role,
    simulated: user.simulated,
    disabled: user.disabledAt !== null,
    lastLoginAt: user.lastLoginAt?.toISOString() ?? null,
    createdAt: user.createdAt.toISOString(),
  };
}

/** An invitation's projects as read with it (INVITE_PROJECTS). */
const INVITE_PROJECTS = {
  projects: {
    select: { project: { select: { id: true, name: true } } },
    orderBy: { project: { name: 'asc' } },
  },
} as const;

export function toInviteDto(invite: {
  id: string;
  email: string | null;
  role: Role;
  createdAt: Date;
  expiresAt: Date;
  acceptedAt: Date | null;
  revokedAt: Date | null;
  projects: { project: { id: string; name: string } }[];
}) {
  return {
    id: invite.id,
    email: invite.email,
    role: invite.role,
    projects: invite.projects.map(({ project }) => ({ id: project.id, name: project.name })),
    createdAt: invite.createdAt.toISOString(),
    expiresAt: invite.expiresAt.toISOString(),
    acceptedAt: invite.acceptedAt?.toISOString() ?? null,
    revokedAt: invite.revokedAt?.toISOString() ?? null,
  };
}

/** Ends every pending first-start setup link (they only create the first admin). */
async function revokeSetupLinks(tx: Pick<PrismaClient, 'invite'>): Promise<void> {
  await tx.invite.updateMany({
    where: { email: null, acceptedAt: null, revokedAt: null },
    data: { revokedAt: new Date() },
  });
}

export class UserService {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly config: Config,
    /** The signed-in principals to forget when a user changes (role, disabled). */
    private readonly credentials: Pick<CredentialCache<{ id: string }>, 'forgetUser'> | null = null,
  ) {}

  list() {
    return this.prisma.user.findMany({ orderBy: { createdAt: 'asc' } });
  }

  async create(
    input: { email: string; name: string; role: Role; password: string; simulated?: boolean },
    actor: Actor,
  ): Promise<User> {
    const email = normalizeEmail(input.email);
    const passwordHash = await hashPassword(input.password);
    return this.prisma.$transaction(async (tx) => {
      if (await tx.user.findUnique({ where: { email } }))
        throw conflict(`A user with email ${email} already exists.`);
      const user = await tx.user.create({
        data: {
          email,
          name: input.name.trim(),
          role: input.role,
          simulated: input.simulated ?? false,
          credential: { create: { passwordHash } },
        },
      });
      // The first-start setup link is for creating the first admin: it dies once one exists.
      if (input.role === 'ADMIN') await revokeSetupLinks(tx);
      await recordAudit(tx, {
        actorId: actor.id,
        action: 'user.create',
        targetType: 'user',
        targetId: user.id,
        details: { email, role: input.role },
        ip: actor.ip ?? null,
      });
      return user;
    });
  }

  /**
   * Name and role changes, disabling and enabling. A role change or disabling ends the user's
   * sessions and revokes their API tokens at once. The last active admin cannot be demoted or
   * disabled, also when two admins act at once: the active admins' rows are locked before they are
   * counted, so concurrent changes take turns and the second counts what the first left.
   */
  async update(
    id: string,
    patch: { name?: string; role?: Role; disabled?: boolean },
    actor: Actor,
  ): Promise<User> {
    const changed = await this.prisma.$transaction(async (tx) => {
      // Locked in id order (as every such change does), so concurrent changes cannot deadlock.
      const admins = await tx.$queryRaw<{ id: string }[]>`
        SELECT id FROM "User" WHERE role = 'ADMIN' AND "disabledAt" IS NULL ORDER BY id FOR UPDATE`;
      const user = await tx.user.findUnique({ where: { id } });
      if (!user) throw notFound('No such user.');
      // The actor may have lost the admin role (or been disabled) while this request waited.
      if (actor.id !== null && !admins.some((admin) => admin.id === actor.id)) {
        throw forbidden('You are no longer an active admin.');
      }
      const roleChanged = patch.role !== undefined && patch.role !== user.role;
      const demoting = roleChanged && user.role === 'ADMIN';
      const disabling = patch.disabled === true && user.disabledAt === null;
      if (id === actor.id && (demoting || disabling)) {
        throw conflict('You cannot remove your own admin role or disable yourself; ask another admin.');
      }
      const activeAdmin = admins.some((admin) => admin.id === id);
      if ((demoting || disabling) && activeAdmin && admins.length <= 1) {
        throw conflict('This is the last active admin; make another admin first.');
      }
      const updated = await tx.user.update({
        where: { id },
        data: {
          ...(patch.name !== undefined ? { name: patch.name.trim() } : {}),
          ...(patch.role !== undefined ? { role: patch.role } : {}),
          ...(patch.disabled !== undefined
            ? { disabledAt: patch.disabled ? (user.disabledAt ?? new Date()) : null }
            : {}),
        },
      });
      if (disabling || roleChanged) {
        const now = new Date();
        await tx.session.updateMany({ where: { userId: id, revokedAt: null }, data: { revokedAt: now } });
        // A token made under the old role must not act under the new one (nor outlive a disabling).
        await tx.apiToken.updateMany({ where: { userId: id, revokedAt: null }, data: { revokedAt: now } });
      }
      await recordAudit(tx, {
        actorId: actor.id,
        action: 'user.update',
        targetType: 'user',
        targetId: id,
        details: { ...patch },
        ip: actor.ip ?? null,
      });
      return updated;
    });
    this.credentials?.forgetUser(id);
    return changed;
  }

  listInvites() {
    return this.prisma.invite.findMany({
      where: { email: { not: null } },
      include: INVITE_PROJECTS,
      orderBy: { createdAt: 'desc' },
      take: 500,
    });
  }

  /**
   * A new invitation (its token returned once), naming the projects its user joins on acceptance.
   * A pending invitation for the same address is replaced: its link stops working (`replaced`).
   */
  async createInvite(
    input: { email: string; role: Role; expiresInHours?: number; projectIds?: string[] },
    actor: Actor,
  ) {
    const email = normalizeEmail(input.email);
    if (await this.prisma.user.findUnique({ where: { email } })) {
      throw conflict(`A user with email ${email} already exists.`);
    }
    const projectIds = [...new Set(input.projectIds ?? [])];
    const token = newSecret(INVITE_PREFIX);
    const { invite, replaced } = await this.prisma.$transaction(async (tx) => {
      // Invitations to one address take turns: each replaces the one before, none is left pending.
      await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${`invite:${email}`}::text, 0))`;
      if (projectIds.length > 0) {
        // Locked so that none is archived before the invitation names it.
        const projects = await tx.$queryRaw<{ id: string; name: string; archived: boolean }[]>`
          SELECT id, name, "archivedAt" IS NOT NULL AS archived FROM "Project"
          WHERE id = ANY(${projectIds}::uuid[]) FOR SHARE`;
        const missing = projectIds.filter((id) => !projects.some((project) => project.id === id));
        if (missing.length > 0) throw badRequest(`No such project: ${missing.join(', ')}.`);
        const archived = projects.filter((project) => project.archived).map((project) => project.name);
        if (archived.length > 0)
          throw badRequest(`Archived projects take no new members: ${archived.join(', ')}.`);
      }
      const revoked = await tx.invite.updateMany({
        where: { email, acceptedAt: null, revokedAt: null },
        data: { revokedAt: new Date() },
      });
      const created = await tx.invite.create({
        data: {
          email,
          role: input.role,
          tokenHash: hashSecret(this.config.sessionSecret, token),
          createdById: actor.id,
          expiresAt: new Date(Date.now() + (input.expiresInHours ?? 72) * 3_600_000),
          projects: { create: projectIds.map((projectId) => ({ projectId })) },
        },
        include: INVITE_PROJECTS,
      });
      await recordAudit(tx, {
        actorId: actor.id,
        action: 'invite.create',
        targetType: 'invite',
        targetId: created.id,
        details: { email, role: input.role, projectIds, replaced: revoked.count },
        ip: actor.ip ?? null,
      });
      return { invite: created, replaced: revoked.count > 0 };
    });
    return { invite, token, replaced };
  }

  async revokeInvite(id: string, actor: Actor): Promise<void> {
    const result = await this.prisma.invite.updateMany({
      where: { id, acceptedAt: null, revokedAt: null },
      data: { revokedAt: new Date() },
    });
    if (result.count === 0) throw notFound('No pending invitation with this id.');
    await recordAudit(this.prisma, {
      actorId: actor.id,
      action: 'invite.revoke',
      targetType: 'invite',
      targetId: id,
      ip: actor.ip ?? null,
    });
  }

  /**
   * A pending, unexpired invitation for this token, or a setup link while no admin exists; else null
   * (a setup link is dead once any admin exists, however that admin was made).
   */
  async findOpenInvite(token: string) {
    const invite = await this.prisma.invite.findUnique({
      where: { tokenHash: hashSecret(this.config.sessionSecret, token) },
      include: INVITE_PROJECTS,
    });
    if (!invite || invite.acceptedAt || invite.revokedAt || invite.expiresAt <= new Date()) return null;
    if (invite.email === null && !(await this.needsSetup())) return null;
    return invite;
  }

  /**
   * Turns an invitation into an account. Setup links (email null) may only create the first
   * admin: once an admin exists they stop working.
   */
  async acceptInvite(
    input: { token: string; email?: string; name: string; password: string },
    ip: string | null,
  ): Promise<User> {
    const passwordHash = await hashPassword(input.password);
    return this.prisma.$transaction(async (tx) => {
      const invite = await tx.invite.findUnique({
        where: { tokenHash: hashSecret(this.config.sessionSecret, input.token) },
      });
      if (!invite || invite.acceptedAt || invite.revokedAt || invite.expiresAt <= new Date()) {
        throw notFound('This link is invalid, expired or already used.');
      }
      const isSetup = invite.email === null;
      if (isSetup && (await tx.user.count({ where: { role: 'ADMIN' } })) > 0) {
        throw conflict('The first admin already exists; sign in instead.');
      }
      const email = normalizeEmail(invite.email ?? input.email ?? '');
      if (!email) throw badRequest('email is required for the setup link.');
      if (await tx.user.findUnique({ where: { email } }))
        throw conflict(`A user with email ${email} already exists.`);
      const user = await tx.user.create({
        data: { email, name: input.name.trim(), role: invite.role, credential: { create: { passwordHash } } },
      });
      // Claiming the invitation conditionally makes a concurrent second use fail.
      const claimed = await tx.invite.updateMany({
        where: { id: invite.id, acceptedAt: null },
        data: { acceptedAt: new Date(), acceptedById: user.id },
      });
      if (claimed.count !== 1) throw notFound('This link is invalid, expired or already used.');
      // The projects the invitation names (those that still exist) take the new user as a member.
      const joined = await tx.$executeRaw`
        INSERT INTO "ProjectMember" ("projectId", "userId")
        SELECT "projectId", ${user.id}::uuid FROM "InviteProject" WHERE "inviteId" = ${invite.id}::uuid
        ON CONFLICT DO NOTHING`;
      if (invite.role === 'ADMIN') await revokeSetupLinks(tx);
      await recordAudit(tx, {
        actorId: user.id,
        action: isSetup ? 'setup.admin-created' : 'invite.accept',
        targetType: 'user',
        targetId: user.id,
        details: { email, role: invite.role, ...(joined > 0 ? { projectsJoined: joined } : {}) },
        ip,
      });
      return user;
    });
  }

  async needsSetup(): Promise<boolean> {
    return (await this.prisma.user.count({ where: { role: 'ADMIN' } })) === 0;
  }

  /**
   * While no admin exists, issues a fresh one-time setup link (earlier ones stop working) and
   * returns its token; returns null once an admin exists.
   */
  async issueSetupToken(): Promise<string | null> {
    if (!(await this.needsSetup())) return null;
    const token = newSecret(INVITE_PREFIX);
    await this.prisma.$transaction([
      this.prisma.invite.updateMany({
        where: { email: null, acceptedAt: null, revokedAt: null },
        data: { revokedAt: new Date() },
      }),
      this.prisma.invite.create({
        data: {
          email: null,
          role: 'ADMIN',
          tokenHash: hashSecret(this.config.sessionSecret, token),
          expiresAt: new Date(Date.now() + SETUP_LINK_HOURS * 3_600_000),
        },
      }),
    ]);
    return token;
  }
}
