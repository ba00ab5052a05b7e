// Projects: settings and label schema, membership (which raters work on which project), and the
// per-object access rule every project-scoped route goes through.
import type { PgBoss } from 'pg-boss';
import { poolOf, statementName, type Prisma, type PrismaClient, type Project } from '../db/client.js';
import { conflict, forbidden, notFound } from '../errors.js';
import { enqueue } from '../jobs.js';
import { defaultLabelSchema, type CreateProjectBody, type UpdateProjectBody } from '../schemas/projects.js';
import { recordAudit } from './audit.js';
import type { Principal } from './auth.js';
import { labelSchemaOf, preparingOf, queueOrderOf, scheduleOf } from './project-settings.js';
import type { RatingService } from './rating.js';
import type { Actor } from './users.js';

export function toProjectDto(
  project: Project,
  counts: {
    prompts: number;
    responses: number;
    comparisons: number;
    preferences: number;
    remainingJudgments: number;
    members: number;
  },
) {
  return {
    id: project.id,
    name: project.name,
    description: project.description,
    guidelines: project.guidelines,
    overlap: project.overlap,
    goldRate: project.goldRate,
    leaseSeconds: project.leaseSeconds,
    labelSchema: labelSchemaOf(project),
    schedule: scheduleOf(project),
    currentPolicyVersionId: project.currentPolicyVersionId,
    isDemo: project.isDemo,
    archived: project.archivedAt !== null,
    preparing: preparingOf(project),
    createdAt: project.createdAt.toISOString(),
    counts,
  };
}

export class ProjectService {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly queue: RatingService,
    /** The job queue, where it runs: switching the uncertainty order on re-orders the queue at once. */
    private readonly boss: () => PgBoss | undefined = () => undefined,
  ) {}

  /**
   * The project, if the caller may see it: admins and researchers see every project, raters only
   * those they are members of. A project the caller may not see answers 404, like a missing one.
   */
  async visible(principal: Principal, projectId: string): Promise<Project> {
    const project = await this.prisma.project.findUnique({ where: { id: projectId } });
    if (!project) throw notFound('No such project.');
    if (principal.user.role === 'ADMIN' || principal.user.role === 'RESEARCHER') return project;
    if (await this.isMember(projectId, principal.user.id)) return project;
    throw notFound('No such project.');
  }

  /** For rating: members and admins, and only while the project is not archived. */
  /**
   * A project the caller may rate in (members; admins everywhere), in one statement: raters ask on
   * every next comparison. Project has no column node-postgres reads differently from Prisma
   * (no BigInt or Decimal), so its row is the Prisma type.
   */
  async ratable(principal: Principal, projectId: string): Promise<Project> {
    const text = `SELECT p.*, EXISTS (SELECT 1 FROM "ProjectMember" m WHERE m."projectId" = p.id AND m."userId" = $2) AS member
       FROM "Project" p WHERE p.id = $1`;
    const { rows } = await poolOf(this.prisma).query<Project & { member: boolean }>({
      name: statementName(text),
      text,
      values: [projectId, principal.user.id],
    });
    const row = rows[0];
    if (!row || (principal.user.role !== 'ADMIN' && !row.member)) throw notFound('No such project.');
    const { member: _member, ...project } = row;
    if (project.archivedAt) throw forbidden('This project is archived.');
    return project;
  }

  async isMember(projectId: string, userId: string): Promise<boolean> {
    return (await this.prisma.projectMember.count({ where: { projectId, userId } })) > 0;
  }

  async list(principal: Principal) {
    const where: Prisma.ProjectWhereInput =
      principal.user.role === 'RATER'
        ? { members: { some: { userId: principal.user.id } }, archivedAt: null }
        : {};
    const projects = await this.prisma.project.findMany({ where, orderBy: { createdAt: 'asc' } });
    return Promise.all(projects.map(async (project) => toProjectDto(project, await this.counts(project.id))));
  }

  async dto(project: Project) {
    return toProjectDto(project, await this.counts(project.id));
  }

  async counts(projectId: string) {
    const [prompts, responses, comparisons, preferences, members, remaining] = await Promise.all([
      this.prisma.prompt.count({ where: { projectId } }),
      this.prisma.response.count({ where: { prompt: { projectId } } }),
      this.prisma.comparison.count({ where: { projectId } }),
      this.prisma.preference.count({ where: { comparison: { projectId } } }),
      this.prisma.projectMember.count({ where: { projectId } }),
      this.prisma.$queryRaw<{ remaining: bigint | null }[]>`
        SELECT sum("requiredVotes" - "voteCount") AS remaining FROM "Comparison"
        WHERE "projectId" = ${projectId}::uuid AND "open" AND NOT "isGold"`,
    ]);
    return {
      prompts,
      responses,
      comparisons,
      preferences,
      members,
      remainingJudgments: Number(remaining[0]?.remaining ?? 0),
    };
  }

  async create(input: CreateProjectBody, actor: Actor): Promise<Project> {
    if (await this.prisma.project.findUnique({ where: { name: input.name.trim() } })) {
      throw conflict(`A project named "${input.name.trim()}" already exists.`);
    }
    return this.prisma.$transaction(async (tx) => {
      const project = await tx.project.create({
        data: {
          name: input.name.trim(),
          description: input.description ?? '',
          guidelines: input.guidelines ?? '',
          overlap: input.overlap ?? 3,
          goldRate: input.goldRate ?? 0,
          leaseSeconds: input.leaseSeconds ?? 600,
          labelSchema: input.labelSchema ?? defaultLabelSchema(),
          createdById: actor.id,
        },
      });
      await recordAudit(tx, {
        actorId: actor.id,
        action: 'project.create',
        targetType: 'project',
        targetId: project.id,
        details: { name: project.name },
        ip: actor.ip ?? null,
      });
      return project;
    });
  }

  async update(id: string, patch: UpdateProjectBody, actor: Actor): Promise<Project> {
    const existing = await this.prisma.project.findUnique({ where: { id } });
    if (!existing) throw notFound('No such project.');
    if (patch.name && patch.name.trim() !== existing.name) {
      if (await this.prisma.project.findUnique({ where: { name: patch.name.trim() } })) {
        throw conflict(`A project named "${patch.name.trim()}" already exists.`);
      }
    }
    const { archived, ...fields } = patch;
    // Switched to the uncertainty order: the trainer re-orders the queue now with the newest
    // reward model (if a round has trained one), not only after the next round.
    const reorder =
      fields.schedule !== undefined &&
      queueOrderOf({ schedule: fields.schedule }) === 'uncertainty' &&
      queueOrderOf(existing) !== 'uncertainty';
    const boss = reorder ? this.boss() : undefined;
    return this.prisma.$transaction(async (tx) => {
      const project = await tx.project.update({
        where: { id },
        data: {
          ...fields,
          ...(fields.name !== undefined ? { name: fields.name.trim() } : {}),
          ...(archived !== undefined
            ? { archivedAt: archived ? (existing.archivedAt ?? new Date()) : null }
            : {}),
        },
      });
      if (boss) await enqueue(boss, tx, 'queue-order', { projectId: id }, id);
      await recordAudit(tx, {
        actorId: actor.id,
        action: 'project.update',
        targetType: 'project',
        targetId: id,
        details: {
          fields: Object.keys(patch),
          ...(fields.schedule ? { queueOrder: queueOrderOf({ schedule: fields.schedule }) } : {}),
        },
        ip: actor.ip ?? null,
      });
      return project;
    });
  }

  async members(projectId: string) {
    const rows = await this.prisma.projectMember.findMany({
      where: { projectId },
      include: { user: true },
      orderBy: { createdAt: 'asc' },
    });
    return rows.map((row) => ({
      userId: row.userId,
      email: row.user.email,
      name: row.user.name,
      role: row.user.role,
      simulated: row.user.simulated,
      addedAt: row.createdAt.toISOString(),
    }));
  }

  async addMembers(projectId: string, userIds: string[], actor: Actor) {
    const found = await this.prisma.user.findMany({ where: { id: { in: userIds } }, select: { id: true } });
    if (found.length !== new Set(userIds).size) throw notFound('Some of these users do not exist.');
    await this.prisma.projectMember.createMany({
      data: userIds.map((userId) => ({ projectId, userId })),
      skipDuplicates: true,
    });
    await recordAudit(this.prisma, {
      actorId: actor.id,
      action: 'project.members-add',
      targetType: 'project',
      targetId: projectId,
      details: { userIds },
      ip: actor.ip ?? null,
    });
    return this.members(projectId);
  }

  async removeMember(projectId: string, userId: string, actor: Actor): Promise<void> {
    const result = await this.prisma.projectMember.deleteMany({ where: { projectId, userId } });
    if (result.count === 0) throw notFound('This user is not a member of the project.');
    // Their open leases go back to the queue at once.
    await this.queue.expireLeases(projectId, { raterId: userId, all: true });
    await recordAudit(this.prisma, {
      actorId: actor.id,
      action: 'project.members-remove',
      targetType: 'project',
      targetId: projectId,
      details: { userId },
      ip: actor.ip ?? null,
    });
  }
}
