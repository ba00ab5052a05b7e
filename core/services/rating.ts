// The rating service: leases ("assignments") of the comparison queue handed to raters with
// SELECT ... FOR UPDATE SKIP LOCKED in single-statement transactions, and judgments stored exactly
// once (idempotency keys), never more per comparison than its overlap, never twice by one rater.
// Its statements are in rating-sql.ts.
import { createHash, randomInt } from 'node:crypto';
import type pg from 'pg';
import {
  isRetryable,
  poolOf,
  type Choice,
  type Prisma,
  type PrismaClient,
  type Project,
} from '../db/client.js';
import type { RowOf, Statement } from '../db/sql-params.js';
import { badRequest, conflict, HttpError, notFound } from '../errors.js';
import type { RaterProgress, ShownChoice, SubmitBody } from '../schemas/rating.js';
import { choiceBetween, competitionRanks, hasTies, shownOrder, storedRanks } from '../ranking/rankings.js';
import type { Principal } from './auth.js';
import { labelSchemaOf } from './project-settings.js';
import {
  ANY_FREE,
  EXPIRE_LEASES,
  HELD_LEASES,
  LEASE,
  LEASE_STATE,
  MAX_ACTIVE_LEASES,
  PROGRESS,
  REPLAY,
  SKIP,
  SKIP_STATE,
  STORE,
  SUBMIT_AND_LEASE,
  SUBMIT_STATE,
  VIEW,
  WITHDRAW,
  type JudgmentParams,
  type LeaseRow,
} from './rating-sql.js';
import { SubmitBatcher, type BatchItem, type BatchResult, type StoredJudgment } from './submit-batch.js';

/** How long after a submission U (undo) still works. */
export const UNDO_WINDOW_MS = 60_000;

export interface AssignmentViewData {
  id: string;
  projectId: string;
  expiresAt: string;
  messages: { role: string; content: string }[];
  left: { text: string };
  right: { text: string };
  /** A ranking item's responses as shown (left and right are the first two); absent for a pair. */
  ranked?: { text: string }[];
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
    choice: body.choice ?? null,
    ranking: body.ranking ? competitionRanks(body.ranking) : null,
    strength: body.strength ?? null,
    criteria: Object.entries(body.criteria ?? {}).sort(([a], [b]) => a.localeCompare(b)),
    flags: [...(body.flags ?? [])].sort(),
    rationale: body.rationale ?? null,
    timeSpentMs: body.timeSpentMs,
  });
  return createHash('sha256').update(canonical).digest('hex');
}

/** The answer to a stored submission: the judgment and until when U (undo) takes it back. */
function storedAnswer(preferenceId: string, createdAt: Date) {
  return { preferenceId, undoUntil: new Date(createdAt.getTime() + UNDO_WINDOW_MS).toISOString() };
}

/** The answer to a retried submission: the stored one, or a refusal when the body differs. */
function replayOf(id: string, storedHash: string | null, createdAt: Date, hash: string) {
  if (storedHash !== hash) {
    throw new HttpError(
      422,
      'This Idempotency-Key was already used with a different request.',
      'IDEMPOTENCY_MISMATCH',
    );
  }
  return storedAnswer(id, createdAt);
}

function isRawUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '23505';
}

/**
 * Why a rater may not judge (submit, skip or undo) in a project: it is archived, or they are not a
 * member (admins may rate any project that is not archived).
 */
function accessRefused(archived: boolean): HttpError {
  return archived
    ? new HttpError(
        403,
        'This project is archived: its comparisons can no longer be judged, skipped or taken back.',
        'PROJECT_ARCHIVED',
      )
    : new HttpError(403, 'You are not a member of this project (any more).', 'NOT_A_MEMBER');
}

/** A judgment as stored: the shown sides turned into A/B, checked against the label schema. */
interface Judgment {
  choice: Choice;
  /** A ranking's ranks in stored order; empty for a pair. */
  ranks: number[];
  strength: number | null;
  criteria: Record<string, Choice>;
}

/** A judgment as it is written, with who wrote it and under which key. */
function judgmentRow(
  principal: Principal,
  assignmentId: string,
  body: SubmitBody,
  judgment: Judgment,
  idempotencyKey: string,
  requestHash: string,
): StoredJudgment {
  return {
    assignmentId,
    raterId: principal.user.id,
    source: principal.user.simulated ? 'SIMULATED' : 'HUMAN',
    choice: judgment.choice,
    ranks: judgment.ranks,
    strength: judgment.strength,
    criteria: judgment.criteria,
    flags: body.flags ?? [],
    rationale: body.rationale?.trim() || null,
    timeSpentMs: body.timeSpentMs,
    idempotencyKey,
    requestHash,
  };
}

/** The parameters of the statements that store a judgment. */
function judgmentParams(row: StoredJudgment): JudgmentParams {
  return {
    assignment: row.assignmentId,
    rater: row.raterId,
    source: row.source,
    choice: row.choice,
    ranks: row.ranks,
    strength: row.strength,
    criteria: JSON.stringify(row.criteria),
    flags: row.flags,
    rationale: row.rationale,
    timeSpentMs: row.timeSpentMs,
    idempotencyKey: row.idempotencyKey,
    requestHash: row.requestHash,
  };
}

/** A project's expired leases are swept (their slots freed) at most this often per process. */
const SWEEP_INTERVAL_MS = 5_000;

/**
 * What a lease handed out by this process needs for its submission to be checked and stored (with
 * the next lease) in one statement: the statement re-checks the side order and label schema.
 */
type LeaseMemo = Pick<
  LeaseRow,
  'comparisonId' | 'projectId' | 'swapped' | 'labelSchema' | 'goldRate' | 'leaseSeconds'
> & {
  /** A ranking's K; 0 for a pair. */
  rankSize: number;
};

/** The progress in a project that is gone. */
const NO_PROGRESS: RaterProgress = { today: 0, total: 0, remaining: 0, availableToMe: 0 };

/** Leases remembered per process (oldest forgotten first); a forgotten one is read back on submit. */
const LEASE_MEMORY = 10_000;

function viewOf(row: LeaseRow): AssignmentViewData {
  const view: AssignmentViewData = {
    id: row.id,
    projectId: row.projectId,
    expiresAt: row.expiresAt.toISOString(),
    messages: row.messages as { role: string; content: string }[],
    left: { text: row.left },
    right: { text: row.right },
  };
  if (!row.ranked) return view;
  const ranked = shownOrder(row.id, row.ranked.length).map((stored) => ({ text: row.ranked![stored]! }));
  return { ...view, left: ranked[0]!, right: ranked[1]!, ranked };
}

/**
 * The hot paths (next, submit, skip) are single SQL statements on node-postgres: each locks what
 * it changes, checks its conditions on the locked rows, and writes everything or nothing. A
 * comparison's free slots live on its own row (voteCount + leaseCount < requiredVotes), so taking
 * one is one locked row, not a count of leases.
 */
export class RatingService {
  private readonly db: pg.Pool;
  private readonly sweptAt = new Map<string, number>();
  private readonly leases = new Map<string, LeaseMemo>();
  private readonly batcher: SubmitBatcher;

  constructor(private readonly prisma: PrismaClient) {
    this.db = poolOf(prisma);
    this.batcher = new SubmitBatcher(this.db, MAX_ACTIVE_LEASES, (item) => this.submitOne(item));
  }

  /**
   * The batches of judgments this process has run (more than one judgment each), the judgments in
   * them, the batches that failed (and went one by one), and how many wait for a batch now.
   */
  batchStats(): SubmitBatcher['stats'] & { queued: number } {
    return { ...this.batcher.stats, queued: this.batcher.queued };
  }

  /** A lone judgment and, when the rater may go on here, their next lease, in one statement. */
  private async submitOne(item: BatchItem): Promise<BatchResult> {
    let row: RowOf<typeof SUBMIT_AND_LEASE> | undefined;
    try {
      [row] = await this.query(SUBMIT_AND_LEASE, {
        ...judgmentParams(item),
        project: item.projectId,
        swapped: item.swapped,
        labelSchema: JSON.stringify(item.labelSchema),
        admin: item.admin,
        gold: item.gold,
        nextSwapped: item.nextSwapped,
        exclude: item.exclude,
        maxLeases: MAX_ACTIVE_LEASES,
        next: item.next,
      });
    } catch (error) {
      if (isRawUniqueViolation(error)) return null;
      throw error;
    }
    if (!row) return null;
    const { preferenceId, storedAt, mayRate } = row;
    const lease = row.id !== null ? row : mayRate ? 'search' : null;
    return { preferenceId, storedAt, mayRate, lease };
  }

  /** Runs one statement, again after a deadlock or serialization failure (both roll it back). */
  private async query<P extends object, R>(statement: Statement<P, R>, params: P): Promise<R[]> {
    const { name, text } = statement;
    const values = statement.values(params);
    for (let attempt = 1; ; attempt++) {
      try {
        return (await this.db.query({ name, text, values })).rows as R[];
      } catch (error) {
        if (attempt >= 5 || !isRetryable(error)) throw error;
        await new Promise((resolve) => setTimeout(resolve, randomInt(5, 25) * attempt));
      }
    }
  }

  private async view(assignmentId: string): Promise<AssignmentViewData> {
    const [row] = await this.query(VIEW, { assignment: assignmentId });
    if (!row) throw notFound('No such assignment.');
    return this.remember(row);
  }

  /**
   * Frees the slots of leases past their expiry (status EXPIRED), in one project or for one rater
   * (whose leases end when they leave the project). Returns how many were freed.
   */
  async expireLeases(projectId: string, options: { raterId?: string; all?: boolean } = {}): Promise<number> {
    const rows = await this.query(EXPIRE_LEASES, {
      project: projectId,
      rater: options.raterId ?? null,
      all: options.all ?? false,
    });
    return rows[0]?.n ?? 0;
  }

  private async sweepIfDue(projectId: string): Promise<void> {
    const now = Date.now();
    if (now - (this.sweptAt.get(projectId) ?? 0) < SWEEP_INTERVAL_MS) return;
    this.sweptAt.set(projectId, now);
    await this.expireLeases(projectId);
  }

  /** A lease the rater already holds (not excluded), or a new one; null when nothing is left. */
  async next(
    principal: Principal,
    project: Pick<Project, 'id' | 'goldRate' | 'leaseSeconds'>,
    exclude: string[] = [],
  ): Promise<AssignmentViewData | null> {
    const raterId = principal.user.id;
    await this.sweepIfDue(project.id);
    // Gold is mixed in at the project's rate: tried first when drawn, else after the rest.
    const preferGold = project.goldRate > 0 && Math.random() < project.goldRate;
    const order = preferGold ? [true, false] : [false, true];
    for (let attempt = 0; attempt < 20; attempt++) {
      for (const gold of order) {
        const leased = await this.lease(raterId, project, gold, exclude);
        if (leased) return leased;
      }
      if ((await this.heldLeases(raterId, project.id)) >= MAX_ACTIVE_LEASES) return null;
      // Nothing with a free slot and no lock: expired leases may still hold slots, or other raters
      // lock the last free rows for a moment. Only an empty queue ends the search.
      if ((await this.expireLeases(project.id)) > 0) continue;
      if (!(await this.anyFree(raterId, project.id))) return null;
      await new Promise((resolve) => setTimeout(resolve, randomInt(5, 25)));
    }
    return null;
  }

  private async heldLeases(raterId: string, projectId: string): Promise<number> {
    const [row] = await this.query(HELD_LEASES, { rater: raterId, project: projectId });
    return row?.n ?? 0;
  }

  private async anyFree(raterId: string, projectId: string): Promise<boolean> {
    const rows = await this.query(ANY_FREE, { project: projectId, rater: raterId });
    return rows[0]?.free ?? false;
  }

  /**
   * One statement: a lease the rater holds and did not exclude (oldest first); else, while they
   * hold fewer than MAX_ACTIVE_LEASES, the first comparison in priority order with a free slot that
   * they have not seen, locked (others skip it), its slot taken and the lease written. Under the
   * row lock PostgreSQL re-checks the slot on the row's latest version. Returns the rater's view.
   */
  private async lease(
    raterId: string,
    project: Pick<Project, 'id' | 'leaseSeconds'>,
    gold: boolean,
    exclude: string[],
  ): Promise<AssignmentViewData | null> {
    try {
      const [row] = await this.query(LEASE, {
        project: project.id,
        gold,
        rater: raterId,
        swapped: randomInt(2) === 1,
        seconds: project.leaseSeconds,
        exclude,
        maxLeases: MAX_ACTIVE_LEASES,
      });
      return row ? this.remember(row) : null;
    } catch (error) {
      // The same rater leased this comparison in a concurrent request: look again.
      if (isRawUniqueViolation(error)) return null;
      throw error;
    }
  }

  /** Keeps what a submission of this lease needs to be checked without reading it back first. */
  private remember(row: LeaseRow): AssignmentViewData {
    this.leases.delete(row.id);
    this.leases.set(row.id, {
      comparisonId: row.comparisonId,
      projectId: row.projectId,
      swapped: row.swapped,
      labelSchema: row.labelSchema,
      goldRate: row.goldRate,
      leaseSeconds: row.leaseSeconds,
      rankSize: row.ranked?.length ?? 0,
    });
    if (this.leases.size > LEASE_MEMORY) this.leases.delete(this.leases.keys().next().value!);
    return viewOf(row);
  }

  /**
   * Stores a judgment once per idempotency key. With `body.next`, also answers with the rater's next
   * comparison (as `next`), so that rating takes one request per judgment.
   */
  async submit(
    principal: Principal,
    assignmentId: string,
    body: SubmitBody,
    idempotencyKey: string,
  ): Promise<{ preferenceId: string; undoUntil: string; next?: AssignmentViewData | null }> {
    const raterId = principal.user.id;
    const hash = requestHash(assignmentId, body);
    const memo = this.leases.get(assignmentId);
    if (memo) {
      const done = await this.submitAndLease(principal, assignmentId, body, idempotencyKey, hash, memo);
      if (done) return done;
    }
    // The assignment, its project (label schema, lease settings, whether the rater may go on) and a
    // judgment stored with this key, at once.
    const [state] = await this.query(SUBMIT_STATE, {
      assignment: assignmentId,
      rater: raterId,
      key: idempotencyKey,
      admin: principal.user.role === 'ADMIN',
    });
    const stored = await this.store(principal, assignmentId, body, idempotencyKey, hash, state);
    if (!body.next) return stored;
    // A replayed judgment is answered whatever happens next; a rater who may no longer rate here gets null.
    const next =
      state?.projectId && state.mayRate
        ? await this.next(
            principal,
            { id: state.projectId, goldRate: state.goldRate!, leaseSeconds: state.leaseSeconds! },
            body.next.exclude ?? [],
          )
        : null;
    return { ...stored, next };
  }

  /**
   * The common case, batched with the judgments that arrive meanwhile: a lease this process handed
   * out, judged as its label schema allows, stored together with the rater's next lease. Null when
   * nothing was written (the lease changed, a key was taken, the schema was edited, ...): the
   * caller then takes the general path, which reads the state and answers each case.
   */
  private async submitAndLease(
    principal: Principal,
    assignmentId: string,
    body: SubmitBody,
    idempotencyKey: string,
    hash: string,
    memo: LeaseMemo,
  ): Promise<{ preferenceId: string; undoUntil: string; next?: AssignmentViewData | null } | null> {
    let judgment: Judgment;
    try {
      judgment = this.validate(body, memo, { swapped: memo.swapped, assignmentId, rankSize: memo.rankSize });
    } catch {
      return null;
    }
    await this.sweepIfDue(memo.projectId);
    const exclude = body.next?.exclude ?? [];
    const result = await this.batcher.submit({
      ...judgmentRow(principal, assignmentId, body, judgment, idempotencyKey, hash),
      comparisonId: memo.comparisonId,
      projectId: memo.projectId,
      swapped: memo.swapped,
      labelSchema: memo.labelSchema,
      leaseSeconds: memo.leaseSeconds,
      admin: principal.user.role === 'ADMIN',
      next: Boolean(body.next),
      exclude,
      gold: memo.goldRate > 0 && Math.random() < memo.goldRate,
      nextSwapped: randomInt(2) === 1,
    });
    if (!result) return null;
    this.leases.delete(assignmentId);
    const stored = storedAnswer(result.preferenceId, result.storedAt);
    if (!body.next) return stored;
    if (result.lease === 'search') {
      // Nothing free in this batch's draw (or only gold, or rows locked for a moment): the full search.
      return { ...stored, next: await this.next(principal, { id: memo.projectId, ...memo }, exclude) };
    }
    return { ...stored, next: result.lease ? this.remember(result.lease as LeaseRow) : null };
  }

  private async store(
    principal: Principal,
    assignmentId: string,
    body: SubmitBody,
    idempotencyKey: string,
    hash: string,
    state: RowOf<typeof SUBMIT_STATE> | undefined,
  ): Promise<{ preferenceId: string; undoUntil: string }> {
    const raterId = principal.user.id;
    if (state?.replayId) return replayOf(state.replayId, state.replayHash, state.replayAt!, hash);
    if (!state?.status) throw notFound('No such assignment.');
    if (!state.mayRate) throw accessRefused(state.archived === true);
    if (state.status === 'SUBMITTED') throw conflict('You have already judged this comparison.');
    if (state.status === 'SKIPPED') throw conflict('You skipped this comparison.');
    if (state.status === 'EXPIRED') throw conflict('This assignment was withdrawn; take the next one.');
    const stored = this.validate(
      body,
      { labelSchema: state.labelSchema as Prisma.JsonValue },
      { swapped: state.swapped!, assignmentId, rankSize: state.rankSize ?? 0 },
    );

    let created: { id: string; createdAt: Date } | undefined;
    try {
      [created] = await this.query(STORE, {
        ...judgmentParams(judgmentRow(principal, assignmentId, body, stored, idempotencyKey, hash)),
        admin: principal.user.role === 'ADMIN',
      });
    } catch (error) {
      if (!isRawUniqueViolation(error)) throw error;
      // A concurrent request with the same key won the race: answer as it did.
      const again = await this.replay(raterId, idempotencyKey, hash);
      if (again) return again;
      throw conflict('You have already judged this comparison.');
    }
    if (created) {
      this.leases.delete(assignmentId);
      return storedAnswer(created.id, created.createdAt);
    }
    // Nothing written: a concurrent request changed the lease, or the comparison is full.
    const again = await this.replay(raterId, idempotencyKey, hash);
    if (again) return again;
    const [now] = await this.query(LEASE_STATE, {
      assignment: assignmentId,
      rater: raterId,
      admin: principal.user.role === 'ADMIN',
    });
    if (now && !now.mayRate) throw accessRefused(now.archived);
    if (now?.status === 'LEASED' && now.full) {
      await this.withdraw(assignmentId);
      throw new HttpError(
        409,
        'This comparison already has all the judgments it needs; take the next one.',
        'FULL',
      );
    }
    if (now?.status === 'SKIPPED') throw conflict('You skipped this comparison.');
    if (now?.status === 'EXPIRED') throw conflict('This assignment was withdrawn; take the next one.');
    throw conflict('You have already judged this comparison.');
  }

  /** Ends a lease that can no longer be judged, freeing its slot. */
  private async withdraw(assignmentId: string): Promise<void> {
    await this.query(WITHDRAW, { assignment: assignmentId });
  }

  private async replay(raterId: string, idempotencyKey: string, hash: string) {
    const [existing] = await this.query(REPLAY, { rater: raterId, key: idempotencyKey });
    return existing ? replayOf(existing.id, existing.requestHash, existing.createdAt, hash) : null;
  }

  /**
   * Checks a judgment against the project's label schema and the lease (a pair, or a ranking of
   * `rankSize` responses), and turns shown sides (or shown order) into stored terms.
   */
  private validate(
    body: SubmitBody,
    project: Pick<Project, 'labelSchema'>,
    lease: { swapped: boolean; assignmentId: string; rankSize: number },
  ): Judgment {
    const schema = labelSchemaOf(project);
    const flags = new Set(schema.flags.map((flag) => flag.key));
    for (const flag of body.flags ?? []) if (!flags.has(flag)) throw badRequest(`Unknown flag "${flag}".`);
    if (lease.rankSize > 0) return this.validateRanking(body, schema.allowTie, lease);
    if (body.ranking !== undefined)
      throw badRequest('This comparison is a pair: send a choice, not a ranking.');
    if (body.choice === undefined) throw badRequest('choice is required: LEFT, RIGHT, TIE or BOTH_BAD.');
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
      criteria[key] = unswap(choice, lease.swapped);
    }
    return { choice: unswap(body.choice, lease.swapped), ranks: [], strength, criteria };
  }

  /** A ranking: one rank per response shown, ties only where allowed; stored in stored order. */
  private validateRanking(
    body: SubmitBody,
    allowTie: boolean,
    lease: { assignmentId: string; rankSize: number },
  ): Judgment {
    const k = lease.rankSize;
    if (body.choice !== undefined)
      throw badRequest('This comparison is a ranking: send a ranking (one rank per response), not a choice.');
    if (body.ranking === undefined)
      throw badRequest(`ranking is required: the rank of each of the ${k} responses as shown (1 = best).`);
    if (body.ranking.length !== k)
      throw badRequest(
        `ranking must give a rank to each of the ${k} responses (got ${body.ranking.length}).`,
      );
    if (body.ranking.some((rank) => rank > k)) throw badRequest(`Ranks go from 1 (best) to ${k}.`);
    if (!allowTie && hasTies(body.ranking))
      throw badRequest('This project does not allow ties: give each response its own rank.');
    if (body.strength !== undefined || body.criteria !== undefined)
      throw badRequest('A ranking asks for the order only: strength and criteria apply to pairs.');
    const ranks = storedRanks(body.ranking, shownOrder(lease.assignmentId, k));
    return { choice: choiceBetween(ranks[0]!, ranks[1]!), ranks, strength: null, criteria: {} };
  }

  async skip(principal: Principal, assignmentId: string, reason: string): Promise<void> {
    this.leases.delete(assignmentId);
    const admin = principal.user.role === 'ADMIN';
    const [skipped] = await this.query(SKIP, {
      assignment: assignmentId,
      rater: principal.user.id,
      reason: reason.trim(),
      admin,
    });
    if (!skipped) {
      const [lease] = await this.query(SKIP_STATE, {
        assignment: assignmentId,
        rater: principal.user.id,
        admin,
      });
      if (!lease) throw notFound('No such assignment.');
      if (!lease.mayRate) throw accessRefused(lease.archived);
      throw conflict('This assignment is already closed.');
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
    const projectId = preference.comparison.projectId;
    await this.prisma.$transaction(async (tx) => {
      // Shared locks on the project and the membership: archiving the project or removing the rater
      // waits for this undo, and then ends the lease it gives back (or refuses it, on submit).
      const [project] = await tx.$queryRaw<{ archived: boolean }[]>`
        SELECT "archivedAt" IS NOT NULL AS archived FROM "Project" WHERE id = ${projectId}::uuid FOR SHARE`;
      if (!project || project.archived) throw accessRefused(true);
      if (principal.user.role !== 'ADMIN') {
        const member = await tx.$queryRaw<unknown[]>`
          SELECT 1 FROM "ProjectMember"
          WHERE "projectId" = ${projectId}::uuid AND "userId" = ${principal.user.id}::uuid FOR SHARE`;
        if (member.length === 0) throw accessRefused(false);
      }
      const deleted = await tx.preference.deleteMany({ where: { id: preferenceId } });
      if (deleted.count !== 1) throw notFound('No such judgment.');
      await tx.$executeRaw`
        UPDATE "Comparison" SET "voteCount" = "voteCount" - 1, "leaseCount" = "leaseCount" + 1
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

  /** The rater's progress in a project. */
  async progress(principal: Principal, projectId: string): Promise<RaterProgress> {
    return (await this.progressIn(principal, [projectId])).get(projectId) ?? NO_PROGRESS;
  }

  /** The projects the rater may rate (admins: every active project), oldest first, with their progress. */
  async projectsToRate(principal: Principal): Promise<{ project: Project; progress: RaterProgress }[]> {
    // Admins may rate any project (the demo one too, right after the first start).
    const projects = await this.prisma.project.findMany({
      where: {
        archivedAt: null,
        ...(principal.user.role === 'ADMIN' ? {} : { members: { some: { userId: principal.user.id } } }),
      },
      orderBy: { createdAt: 'asc' },
    });
    const progress = await this.progressIn(
      principal,
      projects.map((project) => project.id),
    );
    return projects.map((project) => ({ project, progress: progress.get(project.id) ?? NO_PROGRESS }));
  }

  /** The rater's progress in each of the projects, by project id: one statement for all of them. */
  private async progressIn(principal: Principal, projectIds: string[]): Promise<Map<string, RaterProgress>> {
    if (projectIds.length === 0) return new Map();
    const since = new Date();
    since.setUTCHours(0, 0, 0, 0);
    const rows = await this.query(PROGRESS, { projects: projectIds, rater: principal.user.id, since });
    return new Map(rows.map(({ projectId, ...progress }) => [projectId, progress]));
  }
}
