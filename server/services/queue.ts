// The comparison queue: leases ("assignments") handed to raters with SELECT ... FOR UPDATE SKIP
// LOCKED in short transactions, and judgments stored exactly once (idempotency keys), never more
// per comparison than its overlap, never twice by one rater.
import { createHash, randomInt } from 'node:crypto';
import type { Choice, PrismaClient, Project } from '../db/client.js';
import { Prisma } from '../db/client.js';
import { badRequest, conflict, HttpError, notFound } from '../errors.js';
import type { ShownChoice, SubmitBody } from '../schemas/rating.js';
import type { Principal } from './auth.js';
import { labelSchemaOf } from './projects.js';

/** How long after a submission U (undo) still works. */
export const UNDO_WINDOW_MS = 60_000;
/** Leases one rater may hold in one project at once (the one on screen and a prefetched one). */
const MAX_ACTIVE_LEASES = 3;
/** Comparisons locked per leasing attempt; the first with room is taken. */
const CANDIDATES = 4;

export interface AssignmentViewData {
  id: string;
  projectId: string;
  expiresAt: string;
  messages: { role: string; content: string }[];
  left: { text: string };
  right: { text: string };
}

/** The stored choice (in A/B terms) for what the rater picked on screen. */
export function unswap(choice: ShownChoice, swapped: boolean): Choice {
  if (choice === 'LEFT') return swapped ? 'B' : 'A';
  if (choice === 'RIGHT') return swapped ? 'A' : 'B';
  return choice;
}

function requestHash(assignmentId: string, body: SubmitBody): string {
  const canonical = JSON.stringify({
    assignmentId,
    choice: body.choice,
    strength: body.strength ?? null,
    criteria: Object.entries(body.criteria ?? {}).sort(([a], [b]) => a.localeCompare(b)),
    flags: [...(body.flags ?? [])].sort(),
    rationale: body.rationale ?? null,
    timeSpentMs: body.timeSpentMs,
  });
  return createHash('sha256').update(canonical).digest('hex');
}

function isUniqueViolation(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002';
}

export class QueueService {
  constructor(private readonly prisma: PrismaClient) {}

  /** The rater's view of a lease, in one query: sides as shown, nothing about sources. */
  private async view(assignmentId: string): Promise<AssignmentViewData> {
    const rows = await this.prisma.$queryRaw<
      { id: string; projectId: string; expiresAt: Date; messages: unknown; left: string; right: string }[]
    >`
      SELECT a.id, c."projectId", a."expiresAt", p.messages,
             CASE WHEN a.swapped THEN rb.text ELSE ra.text END AS "left",
             CASE WHEN a.swapped THEN ra.text ELSE rb.text END AS "right"
      FROM "Assignment" a
      JOIN "Comparison" c ON c.id = a."comparisonId"
      JOIN "Prompt" p ON p.id = c."promptId"
      JOIN "Response" ra ON ra.id = c."responseAId"
      JOIN "Response" rb ON rb.id = c."responseBId"
      WHERE a.id = ${assignmentId}::uuid`;
    const row = rows[0];
    if (!row) throw notFound('No such assignment.');
    return {
      id: row.id,
      projectId: row.projectId,
      expiresAt: row.expiresAt.toISOString(),
      messages: row.messages as { role: string; content: string }[],
      left: { text: row.left },
      right: { text: row.right },
    };
  }

  /** A lease the rater already holds (not excluded), or a new one; null when nothing is left. */
  async next(
    principal: Principal,
    project: Project,
    exclude: string[] = [],
  ): Promise<AssignmentViewData | null> {
    const raterId = principal.user.id;
    const held = await this.prisma.assignment.findMany({
      where: {
        raterId,
        status: 'LEASED',
        expiresAt: { gt: new Date() },
        comparison: { projectId: project.id },
      },
      orderBy: { leasedAt: 'asc' },
      select: { id: true },
    });
    const reusable = held.find((lease) => !exclude.includes(lease.id));
    if (reusable) return this.view(reusable.id);
    if (held.length >= MAX_ACTIVE_LEASES) return null;

    const preferGold = project.goldRate > 0 && Math.random() < project.goldRate;
    // Comparisons found fully leased by others (their leases may expire later): passed over.
    const full: string[] = [];
    for (let attempt = 0; attempt < 20; attempt++) {
      const leased = await this.lease(raterId, project, preferGold, full);
      if (leased === null) {
        // Nothing unlocked: either the queue is empty for this rater, or other raters hold row
        // locks for a moment. Only the first ends the search.
        if (!(await this.anyOpen(raterId, project.id, full))) return null;
        await new Promise((resolve) => setTimeout(resolve, 5 + randomInt(20)));
        continue;
      }
      if (typeof leased === 'string') return this.view(leased);
      full.push(...leased.full);
    }
    return null;
  }

  private async anyOpen(raterId: string, projectId: string, full: string[]): Promise<boolean> {
    const rows = await this.prisma.$queryRaw<{ open: boolean }[]>`
      SELECT EXISTS (
        SELECT 1 FROM "Comparison" c
        WHERE c."projectId" = ${projectId}::uuid AND c."open"
          AND NOT EXISTS (SELECT 1 FROM "Assignment" a WHERE a."comparisonId" = c.id AND a."raterId" = ${raterId}::uuid)
          AND c.id <> ALL(${full}::uuid[])
      ) AS open`;
    return rows[0]?.open ?? false;
  }

  private async lease(raterId: string, project: Project, preferGold: boolean, full: string[]) {
    // Gold is mixed in at the project's rate: tried first when drawn, else after the rest.
    const order = preferGold ? [true, false] : [false, true];
    for (const gold of order) {
      const result = await this.leaseFrom(raterId, project, gold, full);
      if (result !== null) return result;
    }
    return null;
  }

  private leaseFrom(raterId: string, project: Project, gold: boolean, full: string[]) {
    return this.prisma.$transaction(
      async (tx) => {
        const candidates = await tx.$queryRaw<{ id: string; requiredVotes: number; voteCount: number }[]>`
          SELECT c.id, c."requiredVotes", c."voteCount"
          FROM "Comparison" c
          WHERE c."projectId" = ${project.id}::uuid
            AND c."open"
            AND c."isGold" = ${gold}
            AND NOT EXISTS (SELECT 1 FROM "Assignment" a WHERE a."comparisonId" = c.id AND a."raterId" = ${raterId}::uuid)
            AND c.id <> ALL(${full}::uuid[])
            -- Leases seen by this statement's snapshot: a filter only; the recount below decides.
            AND c."voteCount" + (
              SELECT count(*) FROM "Assignment" l
              WHERE l."comparisonId" = c.id AND l.status = 'LEASED' AND l."expiresAt" > now()
            ) < c."requiredVotes"
          ORDER BY c.priority DESC, c.id
          LIMIT ${CANDIDATES}
          FOR UPDATE OF c SKIP LOCKED`;
        if (candidates.length === 0) return null;
        // A new statement sees every lease committed by whoever held these rows before us.
        const active = await tx.$queryRaw<{ comparisonId: string; n: bigint }[]>`
          SELECT "comparisonId", count(*) AS n FROM "Assignment"
          WHERE "comparisonId" = ANY(${candidates.map((c) => c.id)}::uuid[])
            AND status = 'LEASED' AND "expiresAt" > now()
          GROUP BY "comparisonId"`;
        const leases = new Map(active.map((row) => [row.comparisonId, Number(row.n)]));
        const chosen = candidates.find((c) => c.voteCount + (leases.get(c.id) ?? 0) < c.requiredVotes);
        if (!chosen) return { full: candidates.map((c) => c.id) };
        // Lease times come from the database's clock, the one every expiry check uses.
        const created = await tx.$queryRaw<{ id: string }[]>`
          INSERT INTO "Assignment" ("comparisonId", "raterId", swapped, "expiresAt")
          VALUES (${chosen.id}::uuid, ${raterId}::uuid, ${randomInt(2) === 1}, now() + make_interval(secs => ${project.leaseSeconds}))
          RETURNING id`;
        return created[0]!.id;
      },
      { timeout: 10_000 },
    );
  }

  async submit(principal: Principal, assignmentId: string, body: SubmitBody, idempotencyKey: string) {
    const raterId = principal.user.id;
    const hash = requestHash(assignmentId, body);
    const replay = await this.replay(raterId, idempotencyKey, hash);
    if (replay) return replay;

    const assignment = await this.prisma.assignment.findFirst({
      where: { id: assignmentId, raterId },
      include: { comparison: { include: { project: true } } },
    });
    if (!assignment) throw notFound('No such assignment.');
    if (assignment.status === 'SUBMITTED') {
      // A concurrent request with this key may have just stored it.
      const again = await this.replay(raterId, idempotencyKey, hash);
      if (again) return again;
      throw conflict('You have already judged this comparison.');
    }
    if (assignment.status === 'SKIPPED') throw conflict('You skipped this comparison.');
    if (assignment.status === 'EXPIRED') throw conflict('This assignment was withdrawn; take the next one.');
    const stored = this.validate(body, assignment.comparison.project, assignment.swapped);

    try {
      const preference = await this.prisma.$transaction(
        async (tx) => {
          // Counting the vote under the comparison's row lock keeps it at or below its overlap.
          const counted = await tx.$executeRaw`
            UPDATE "Comparison" SET "voteCount" = "voteCount" + 1, "open" = "voteCount" + 1 < "requiredVotes"
            WHERE id = ${assignment.comparisonId}::uuid AND "voteCount" < "requiredVotes"`;
          if (counted !== 1)
            throw new HttpError(
              409,
              'This comparison already has all the judgments it needs; take the next one.',
              'FULL',
            );
          const created = await tx.preference.create({
            data: {
              comparisonId: assignment.comparisonId,
              raterId,
              assignmentId,
              source: principal.user.simulated ? 'SIMULATED' : 'HUMAN',
              choice: stored.choice,
              strength: stored.strength,
              criteria: stored.criteria,
              flags: body.flags ?? [],
              rationale: body.rationale?.trim() || null,
              shownSwapped: assignment.swapped,
              timeSpentMs: body.timeSpentMs,
              idempotencyKey,
              requestHash: hash,
            },
          });
          await tx.assignment.update({
            where: { id: assignmentId },
            data: { status: 'SUBMITTED', completedAt: new Date() },
          });
          return created;
        },
        { timeout: 10_000 },
      );
      return {
        preferenceId: preference.id,
        undoUntil: new Date(preference.createdAt.getTime() + UNDO_WINDOW_MS).toISOString(),
      };
    } catch (error) {
      // A concurrent request with the same key won the race: answer as it did.
      if (isUniqueViolation(error) || (error instanceof HttpError && error.code === 'FULL')) {
        const again = await this.replay(raterId, idempotencyKey, hash);
        if (again) return again;
      }
      if (isUniqueViolation(error)) throw conflict('You have already judged this comparison.');
      if (error instanceof HttpError && error.code === 'FULL') {
        await this.prisma.assignment.update({ where: { id: assignmentId }, data: { status: 'EXPIRED' } });
      }
      throw error;
    }
  }

  private async replay(raterId: string, idempotencyKey: string, hash: string) {
    const existing = await this.prisma.preference.findUnique({
      where: { raterId_idempotencyKey: { raterId, idempotencyKey } },
    });
    if (!existing) return null;
    if (existing.requestHash !== hash) {
      throw new HttpError(
        422,
        'This Idempotency-Key was already used with a different request.',
        'IDEMPOTENCY_MISMATCH',
      );
    }
    return {
      preferenceId: existing.id,
      undoUntil: new Date(existing.createdAt.getTime() + UNDO_WINDOW_MS).toISOString(),
    };
  }

  /** Checks a judgment against the project's label schema and turns shown sides into A/B. */
  private validate(body: SubmitBody, project: Project, swapped: boolean) {
    const schema = labelSchemaOf(project);
    const allowed = (choice: ShownChoice) =>
      (choice !== 'TIE' || schema.allowTie) && (choice !== 'BOTH_BAD' || schema.allowBothBad);
    if (!allowed(body.choice))
      throw badRequest(`This project does not allow ${body.choice === 'TIE' ? 'ties' : '"both bad"'}.`);
    const side = body.choice === 'LEFT' || body.choice === 'RIGHT';
    let strength: number | null = null;
    if (side && schema.strengths.length > 0) {
      if (body.strength === undefined)
        throw badRequest('strength is required: how much better is the chosen response?');
      if (body.strength >= schema.strengths.length)
        throw badRequest(`strength must be below ${schema.strengths.length}.`);
      strength = body.strength;
    } else if (body.strength !== undefined) {
      throw badRequest(
        side ? 'This project has no strength scale.' : 'strength applies only when one side is chosen.',
      );
    }
    const criteria: Record<string, Choice> = {};
    const keys = new Set(schema.criteria.map((criterion) => criterion.key));
    for (const [key, choice] of Object.entries(body.criteria ?? {})) {
      if (!keys.has(key)) throw badRequest(`Unknown criterion "${key}".`);
      if (!allowed(choice)) throw badRequest(`Criterion "${key}": this project does not allow ${choice}.`);
      criteria[key] = unswap(choice, swapped);
    }
    const flags = new Set(schema.flags.map((flag) => flag.key));
    for (const flag of body.flags ?? []) if (!flags.has(flag)) throw badRequest(`Unknown flag "${flag}".`);
    return { choice: unswap(body.choice, swapped), strength, criteria };
  }

  async skip(principal: Principal, assignmentId: string, reason: string): Promise<void> {
    const result = await this.prisma.assignment.updateMany({
      where: { id: assignmentId, raterId: principal.user.id, status: 'LEASED' },
      data: { status: 'SKIPPED', skipReason: reason.trim(), completedAt: new Date() },
    });
    if (result.count === 0) {
      const exists = await this.prisma.assignment.count({
        where: { id: assignmentId, raterId: principal.user.id },
      });
      throw exists ? conflict('This assignment is already closed.') : notFound('No such assignment.');
    }
  }

  /** Takes back the rater's judgment within the undo window; the same comparison is leased again. */
  async undo(principal: Principal, preferenceId: string): Promise<AssignmentViewData> {
    const preference = await this.prisma.preference.findFirst({
      where: { id: preferenceId, raterId: principal.user.id },
      include: { comparison: { include: { project: true } } },
    });
    if (!preference || !preference.assignmentId) throw notFound('No such judgment.');
    if (Date.now() > preference.createdAt.getTime() + UNDO_WINDOW_MS)
      throw conflict('Too late to undo this judgment.');
    const assignmentId = preference.assignmentId;
    await this.prisma.$transaction(async (tx) => {
      const deleted = await tx.preference.deleteMany({ where: { id: preferenceId } });
      if (deleted.count !== 1) throw notFound('No such judgment.');
      await tx.$executeRaw`
        UPDATE "Comparison" SET "voteCount" = "voteCount" - 1, "open" = "voteCount" - 1 < "requiredVotes"
        WHERE id = ${preference.comparisonId}::uuid AND "voteCount" > 0`;
      await tx.assignment.update({
        where: { id: assignmentId },
        data: {
          status: 'LEASED',
          completedAt: null,
          expiresAt: new Date(Date.now() + preference.comparison.project.leaseSeconds * 1000),
        },
      });
    });
    return this.view(assignmentId);
  }

  async progress(principal: Principal, projectId: string) {
    const raterId = principal.user.id;
    const startOfDay = new Date();
    startOfDay.setUTCHours(0, 0, 0, 0);
    const [today, total, remaining, available] = await Promise.all([
      this.prisma.preference.count({
        where: { raterId, createdAt: { gte: startOfDay }, comparison: { projectId } },
      }),
      this.prisma.preference.count({ where: { raterId, comparison: { projectId } } }),
      this.prisma.$queryRaw<{ n: bigint | null }[]>`
        SELECT sum("requiredVotes" - "voteCount") AS n FROM "Comparison"
        WHERE "projectId" = ${projectId}::uuid AND "open" AND NOT "isGold"`,
      this.prisma.$queryRaw<{ n: bigint }[]>`
        SELECT count(*) AS n FROM "Comparison" c
        WHERE c."projectId" = ${projectId}::uuid AND c."open" AND NOT c."isGold"
          AND NOT EXISTS (SELECT 1 FROM "Assignment" a WHERE a."comparisonId" = c.id AND a."raterId" = ${raterId}::uuid)`,
    ]);
    return {
      today,
      total,
      remaining: Number(remaining[0]?.n ?? 0),
      availableToMe: Number(available[0]?.n ?? 0),
    };
  }
}
