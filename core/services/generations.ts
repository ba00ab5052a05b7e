// Generation jobs as the app sees them: create (the job row and its queue job in one transaction),
// list, watch (counts, failures per prompt), cancel. The work itself is trainer/jobs/generation.ts.
import type { PgBoss } from 'pg-boss';
import { Prisma, type GenerationJob, type PrismaClient, type Project } from '../db/client.js';
import { badRequest, conflict, notFound } from '../errors.js';
import { enqueue } from '../jobs.js';
import {
  MAX_GENERATION_ITEMS,
  type CreateGenerationBody,
  type Generation,
  type GenerationDetail,
  type PromptSelection,
} from '../schemas/generations.js';
import { recordAudit } from './audit.js';
import type { Actor } from './users.js';

/**
 * The ids of the project's prompts a selection names, as SQL (one column, `id`). A random sample
 * orders by a hash of the seed and the id, so the same seed draws the same prompts every time.
 */
export function selectedPromptsSql(projectId: string, selection: PromptSelection): Prisma.Sql {
  const conditions: Prisma.Sql[] = [Prisma.sql`p."projectId" = ${projectId}::uuid`];
  if (selection.split) conditions.push(Prisma.sql`p.split = ${selection.split}::"PromptSplit"`);
  if (selection.textContains)
    conditions.push(Prisma.sql`EXISTS (
      SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(p.messages) = 'array' THEN p.messages ELSE '[]' END) m
      WHERE strpos(lower(m->>'content'), lower(${selection.textContains}::text)) > 0)`);
  if (selection.externalIdPrefix)
    conditions.push(Prisma.sql`starts_with(p."externalId", ${selection.externalIdPrefix}::text)`);
  // Compared as text, so "5" finds 5 and "true" finds true.
  if (selection.metadata)
    conditions.push(
      Prisma.sql`p.metadata ->> ${selection.metadata.key}::text = ${String(selection.metadata.value)}::text`,
    );
  const where = Prisma.join(conditions, ' AND ');
  if (!selection.random) return Prisma.sql`SELECT p.id FROM "Prompt" p WHERE ${where}`;
  return Prisma.sql`SELECT p.id FROM "Prompt" p WHERE ${where}
    ORDER BY md5(${String(selection.random.seed)}::text || ':' || p.id::text) LIMIT ${selection.random.count}`;
}

type JobWithVersions = GenerationJob & { versions: { id: string; name: string }[] };

export function toGenerationDto(job: JobWithVersions): Generation {
  return {
    id: job.id,
    projectId: job.projectId,
    status: job.status,
    selection: (job.selection ?? {}) as PromptSelection,
    versions: job.versions,
    samplesPerPrompt: job.samplesPerPrompt,
    total: job.total,
    done: job.done,
    failed: job.failed,
    error: job.error,
    attempt: job.attempt,
    cancelRequested: job.cancelRequestedAt !== null,
    createdById: job.createdById,
    createdAt: job.createdAt.toISOString(),
    startedAt: job.startedAt?.toISOString() ?? null,
    finishedAt: job.finishedAt?.toISOString() ?? null,
    updatedAt: job.updatedAt.toISOString(),
  };
}

function preview(messages: unknown): string {
  const list = Array.isArray(messages) ? (messages as { content?: unknown }[]) : [];
  const last = [...list].reverse().find((message) => typeof message?.content === 'string');
  return String(last?.content ?? '').slice(0, 160);
}

/** Prompts with failures shown in a job's detail. */
const FAILURE_PROMPTS = 100;

export class GenerationService {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly boss: () => PgBoss,
  ) {}

  /** How many of the project's prompts a selection names. */
  async countPrompts(projectId: string, selection: PromptSelection): Promise<number> {
    const rows = await this.prisma.$queryRaw<{ n: bigint }[]>(
      Prisma.sql`SELECT count(*) AS n FROM (${selectedPromptsSql(projectId, selection)}) s`,
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** Checks the request, then creates the job and enqueues it atomically. */
  async create(project: Project, body: CreateGenerationBody, actor: Actor): Promise<Generation> {
    if (project.archivedAt) throw conflict('This project is archived.');
    const versions = await this.prisma.policyVersion.findMany({
      where: { id: { in: body.versionIds } },
      select: { id: true, name: true, projectId: true, kind: true, endpointUrl: true, status: true },
    });
    for (const id of body.versionIds) {
      const version = versions.find((v) => v.id === id);
      if (!version || version.projectId !== project.id)
        throw badRequest(`Policy version ${id} is not a version of this project.`);
      if (version.kind !== 'EXTERNAL' || !version.endpointUrl)
        throw badRequest(
          `Version "${version.name}" is ${version.kind.toLowerCase()}: generation jobs call the endpoints of external versions only (built-in versions are sampled by their training rounds).`,
        );
      if (version.status !== 'READY')
        throw badRequest(`Version "${version.name}" is ${version.status.toLowerCase()}, not ready.`);
    }
    const prompts = await this.countPrompts(project.id, body.selection);
    if (prompts === 0) throw badRequest('No prompt of this project matches the selection.');
    const total = prompts * body.versionIds.length * body.samplesPerPrompt;
    if (total > MAX_GENERATION_ITEMS)
      throw badRequest(
        `${prompts} prompts × ${body.versionIds.length} versions × ${body.samplesPerPrompt} samples = ${total} responses; a job asks for at most ${MAX_GENERATION_ITEMS}. Narrow the selection (a split, a filter or a random sample).`,
      );
    const boss = this.boss();
    const job = await this.prisma.$transaction(async (tx) => {
      const created = await tx.generationJob.create({
        data: {
          projectId: project.id,
          selection: body.selection as Prisma.InputJsonObject,
          versionIds: body.versionIds,
          samplesPerPrompt: body.samplesPerPrompt,
          total,
          createdById: actor.id,
        },
      });
      await enqueue(boss, tx, 'generation', { jobId: created.id }, created.id);
      await recordAudit(tx, {
        actorId: actor.id,
        action: 'generation.create',
        targetType: 'generation',
        targetId: created.id,
        details: {
          projectId: project.id,
          versions: versions.map((v) => v.name),
          samplesPerPrompt: body.samplesPerPrompt,
          prompts,
          total,
        },
        ip: actor.ip ?? null,
      });
      return created;
    });
    return this.dto(job);
  }

  private async dto(job: GenerationJob): Promise<Generation> {
    const versions = await this.prisma.policyVersion.findMany({
      where: { id: { in: job.versionIds } },
      select: { id: true, name: true },
    });
    const order = new Map(job.versionIds.map((id, index) => [id, index]));
    versions.sort((a, b) => (order.get(a.id) ?? 0) - (order.get(b.id) ?? 0));
    return toGenerationDto({ ...job, versions });
  }

  /** A project's jobs, newest first. */
  async list(projectId: string, limit = 50): Promise<Generation[]> {
    const jobs = await this.prisma.generationJob.findMany({
      where: { projectId },
      orderBy: { createdAt: 'desc' },
      take: limit,
    });
    const ids = [...new Set(jobs.flatMap((job) => job.versionIds))];
    const names = new Map(
      (
        await this.prisma.policyVersion.findMany({
          where: { id: { in: ids } },
          select: { id: true, name: true },
        })
      ).map((v) => [v.id, v.name]),
    );
    return jobs.map((job) =>
      toGenerationDto({
        ...job,
        versions: job.versionIds.map((id) => ({ id, name: names.get(id) ?? '(deleted)' })),
      }),
    );
  }

  async get(id: string): Promise<GenerationJob> {
    const job = await this.prisma.generationJob.findUnique({ where: { id } });
    if (!job) throw notFound('No such generation job.');
    return job;
  }

  /** A job with its failures grouped by prompt (the prompts with most failures first). */
  async detail(id: string): Promise<GenerationDetail> {
    const job = await this.get(id);
    const [{ n: failedPrompts } = { n: 0n }] = await this.prisma.$queryRaw<{ n: bigint }[]>`
      SELECT count(DISTINCT "promptId") AS n FROM "GenerationItem" WHERE "jobId" = ${id}::uuid AND status = 'FAILED'`;
    const top = await this.prisma.$queryRaw<{ promptId: string; n: bigint }[]>`
      SELECT "promptId", count(*) AS n FROM "GenerationItem"
      WHERE "jobId" = ${id}::uuid AND status = 'FAILED'
      GROUP BY "promptId" ORDER BY count(*) DESC, "promptId" LIMIT ${FAILURE_PROMPTS}`;
    const items = top.length
      ? await this.prisma.generationItem.findMany({
          where: { jobId: id, status: 'FAILED', promptId: { in: top.map((row) => row.promptId) } },
          orderBy: [{ policyVersionId: 'asc' }, { sampleIndex: 'asc' }],
          include: {
            prompt: { select: { messages: true, externalId: true } },
            policyVersion: { select: { name: true } },
          },
        })
      : [];
    const failures = top.map((row) => {
      const own = items.filter((item) => item.promptId === row.promptId);
      return {
        promptId: row.promptId,
        externalId: own[0]?.prompt.externalId ?? null,
        promptPreview: preview(own[0]?.prompt.messages),
        failed: Number(row.n),
        items: own.map((item) => ({
          versionId: item.policyVersionId,
          versionName: item.policyVersion.name,
          sampleIndex: item.sampleIndex,
          attempts: item.attempts,
          error: item.lastError,
        })),
      };
    });
    return { job: await this.dto(job), failures, failedPrompts: Number(failedPrompts) };
  }

  /** Asks the worker to stop (in-flight requests are aborted); a queued job ends at once. */
  async cancel(id: string, actor: Actor): Promise<Generation> {
    const job = await this.get(id);
    if (job.status !== 'QUEUED' && job.status !== 'RUNNING')
      throw conflict(`This generation job is already ${job.status.toLowerCase()}.`);
    const now = new Date();
    await this.prisma.$transaction(async (tx) => {
      await tx.generationJob.updateMany({
        where: { id, status: { in: ['QUEUED', 'RUNNING'] }, cancelRequestedAt: null },
        data: { cancelRequestedAt: now },
      });
      // Not started: nothing to stop (the worker skips a cancelled job).
      await tx.generationJob.updateMany({
        where: { id, status: 'QUEUED' },
        data: { status: 'CANCELLED', finishedAt: now },
      });
      await recordAudit(tx, {
        actorId: actor.id,
        action: 'generation.cancel',
        targetType: 'generation',
        targetId: id,
        details: { projectId: job.projectId, done: job.done, failed: job.failed, total: job.total },
        ip: actor.ip ?? null,
      });
    });
    return this.dto(await this.get(id));
  }
}
