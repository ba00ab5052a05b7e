// The comparison queue: leases ("assignments") handed to raters with SELECT ... FOR UPDATE SKIP
// LOCKED in single-statement transactions, and judgments stored exactly once (idempotency keys),
// never more per comparison than its overlap, never twice by one rater.
import { createHash, randomInt } from 'node:crypto';
import type pg from 'pg';
import {
  isRetryable,
  poolOf,
  statementName,
  type Choice,
  type Prisma,
  type PrismaClient,
  type Project,
} from '../db/client.js';
import { badRequest, conflict, HttpError, notFound } from '../errors.js';
import type { ShownChoice, SubmitBody } from '../schemas/rating.js';
import type { Principal } from './auth.js';
import { labelSchemaOf } from './projects.js';
import { SubmitBatcher, type BatchItem, type BatchResult, type StoredJudgment } from './submit-batch.js';

/** How long after a submission U (undo) still works. */
export const UNDO_WINDOW_MS = 60_000;
/** Leases one rater may hold in one project at once (the one on screen and a prefetched one). */
const MAX_ACTIVE_LEASES = 3;

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

/** SQL: the rater (SQL) may judge in project `pj` (admin, SQL boolean: any project) while it is active. */
function mayJudge(rater: string, admin: string): string {
  return `pj."archivedAt" IS NULL
    AND (${admin} OR EXISTS (SELECT 1 FROM "ProjectMember" m WHERE m."projectId" = pj.id AND m."userId" = ${rater}))`;
}

interface SubmitState {
  status: string | null;
  archived: boolean | null;
  swapped: boolean | null;
  labelSchema: unknown;
  projectId: string | null;
  goldRate: number | null;
  leaseSeconds: number | null;
  mayRate: boolean | null;
  replayId: string | null;
  replayHash: string | null;
  replayAt: Date | null;
}

/** A judgment as stored: the shown sides turned into A/B, checked against the label schema. */
interface Judgment {
  choice: Choice;
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
    strength: judgment.strength,
    criteria: judgment.criteria,
    flags: body.flags ?? [],
    rationale: body.rationale?.trim() || null,
    timeSpentMs: body.timeSpentMs,
    idempotencyKey,
    requestHash,
  };
}

/** $1..$11 of the statement that stores a judgment (storeCtes). */
function judgmentValues(row: StoredJudgment): unknown[] {
  return [
    row.assignmentId,
    row.raterId,
    row.source,
    row.choice,
    row.strength,
    JSON.stringify(row.criteria),
    row.flags,
    row.rationale,
    row.timeSpentMs,
    row.idempotencyKey,
    row.requestHash,
  ];
}

/** A project's expired leases are swept (their slots freed) at most this often per process. */
const SWEEP_INTERVAL_MS = 5_000;

/** The rater's view of a lease: sides as shown, nothing about sources. */
const VIEW_COLUMNS = `p.messages,
  CASE WHEN a.swapped THEN rb.text ELSE ra.text END AS "left",
  CASE WHEN a.swapped THEN ra.text ELSE rb.text END AS "right"`;

/** A lease `a` with its view and what checking a submission of it needs (kept by the server only). */
const LEASE_COLUMNS = `a.id, c.id AS "comparisonId", c."projectId", a."expiresAt", a.swapped, pj."labelSchema", pj."goldRate",
  pj."leaseSeconds", ${VIEW_COLUMNS}`;
const LEASE_JOINS = `JOIN "Comparison" c ON c.id = a."comparisonId"
  JOIN "Project" pj ON pj.id = c."projectId"
  JOIN "Prompt" p ON p.id = c."promptId"
  JOIN "Response" ra ON ra.id = c."responseAId"
  JOIN "Response" rb ON rb.id = c."responseBId"`;

interface ViewRow {
  id: string;
  projectId: string;
  expiresAt: Date;
  messages: unknown;
  left: string;
  right: string;
}

/**
 * What a lease handed out by this process needs for its submission to be checked and stored (with
 * the next lease) in one statement: the statement re-checks the side order and label schema.
 */
interface LeaseMemo {
  comparisonId: string;
  projectId: string;
  swapped: boolean;
  labelSchema: Prisma.JsonValue;
  goldRate: number;
  leaseSeconds: number;
}

type LeaseRow = ViewRow & LeaseMemo;

type SubmitAndLeaseRow = { preferenceId: string; storedAt: Date; mayRate: boolean } & (
  LeaseRow | { [K in keyof LeaseRow]: null }
);

/** Leases remembered per process (oldest forgotten first); a forgotten one is read back on submit. */
const LEASE_MEMORY = 10_000;

/**
 * The CTEs that lease the rater's next comparison, ending in `next_lease` (id, comparisonId,
 * expiresAt, swapped): a lease the rater holds and did not exclude (oldest first); else, while they
 * hold fewer than `max` (the lease `submitted` in this same statement not counted), the first
 * comparison in priority order with a free slot that they have not seen, locked (others skip it),
 * its slot taken and the lease written; nothing unless `when` holds. Arguments are SQL expressions.
 */
function leaseCtes(p: {
  project: string;
  gold: string;
  rater: string;
  swapped: string;
  seconds: string;
  exclude: string;
  max: string;
  submitted?: string;
  when?: string;
}): string {
  const open = p.submitted ? `AND a.id <> ${p.submitted}` : '';
  const when = p.when ?? 'true';
  return `held AS (
      SELECT a.id, a."leasedAt" FROM "Assignment" a JOIN "Comparison" c ON c.id = a."comparisonId"
      WHERE a."raterId" = ${p.rater} AND a.status = 'LEASED' AND a."expiresAt" > now()
        AND c."projectId" = ${p.project} ${open}
    ), reuse AS (
      SELECT id FROM held WHERE ${when} AND id <> ALL(${p.exclude}) ORDER BY "leasedAt" LIMIT 1
    ), candidate AS (
      SELECT c.id FROM "Comparison" c
      WHERE ${when} AND NOT EXISTS (SELECT 1 FROM reuse) AND (SELECT count(*) FROM held) < ${p.max}
        AND c."projectId" = ${p.project} AND c."open" AND c."free" AND c."isGold" = ${p.gold}
        AND NOT EXISTS (SELECT 1 FROM "Assignment" x WHERE x."comparisonId" = c.id AND x."raterId" = ${p.rater})
      ORDER BY c.priority DESC, c.id
      LIMIT 1
      FOR UPDATE OF c SKIP LOCKED
    ), taken AS (
      UPDATE "Comparison" c SET "leaseCount" = c."leaseCount" + 1
      FROM candidate WHERE c.id = candidate.id
      RETURNING c.id
    ), leased AS (
      -- Lease times come from the database's clock, the one every expiry check uses.
      INSERT INTO "Assignment" ("comparisonId", "raterId", swapped, "expiresAt")
      SELECT id, ${p.rater}, ${p.swapped}, now() + make_interval(secs => ${p.seconds}) FROM taken
      RETURNING id, "comparisonId", "expiresAt", swapped
    ), next_lease AS (
      SELECT a.id, a."comparisonId", a."expiresAt", a.swapped FROM "Assignment" a JOIN reuse ON reuse.id = a.id
      UNION ALL
      SELECT id, "comparisonId", "expiresAt", swapped FROM leased
    )`;
}

/**
 * Stores a judgment: both rows locked, the lease still open and the comparison not full re-checked
 * on their latest versions; then the vote is counted, the lease closed and the judgment stored
 * (`stored`), or (a unique key taken) none of it. $1 assignment, $2 rater, $3..$11 the judgment;
 * `guard` adds conditions on the lease (\`lease\`), comparison (\`c\`) and project (\`pj\`).
 */
function storeCtes(guard = ''): string {
  return `lease AS MATERIALIZED (
      -- By primary key alone, then checked: the planner has no other index to pick.
      SELECT a.id, a."comparisonId", a.swapped, a."raterId", a.status FROM "Assignment" a
      WHERE a.id = $1 FOR UPDATE
    ), target AS (
      SELECT lease.id, lease."comparisonId", lease.swapped, c."projectId"
      FROM lease JOIN "Comparison" c ON c.id = lease."comparisonId" JOIN "Project" pj ON pj.id = c."projectId"
      WHERE lease."raterId" = $2 AND lease.status = 'LEASED' AND c."voteCount" < c."requiredVotes" ${guard}
      FOR UPDATE OF c
    ), counted AS (
      UPDATE "Comparison" c SET "voteCount" = c."voteCount" + 1, "leaseCount" = c."leaseCount" - 1
      FROM target WHERE c.id = target."comparisonId"
      RETURNING c.id
    ), claimed AS (
      UPDATE "Assignment" a SET status = 'SUBMITTED', "completedAt" = now()
      FROM target WHERE a.id = target.id
      RETURNING a.id
    ), stored AS (
      INSERT INTO "Preference" ("comparisonId", "raterId", "assignmentId", source, choice, strength,
        criteria, flags, rationale, "shownSwapped", "timeSpentMs", "idempotencyKey", "requestHash")
      SELECT target."comparisonId", $2, target.id, $3::"PreferenceSource", $4::"Choice", $5, $6::jsonb,
        $7::text[], $8, target.swapped, $9, $10, $11
      FROM target JOIN counted ON counted.id = target."comparisonId" JOIN claimed ON claimed.id = target.id
      RETURNING id, "createdAt", "comparisonId"
    )`;
}

/**
 * The submitted judgment (while the rater may judge in the project) and, when they asked, their next
 * lease, in one statement.
 */
const SUBMIT_AND_LEASE = `WITH ${storeCtes(
  `AND c."projectId" = $12 AND lease.swapped = $13 AND pj."labelSchema" = $14::jsonb AND ${mayJudge('$2', '$15')}`,
)}, allowed AS (
    SELECT pj.id, pj."leaseSeconds" FROM stored JOIN "Project" pj ON pj.id = $12 WHERE $20
  ), ${leaseCtes({
    project: '$12',
    gold: '$16',
    rater: '$2',
    swapped: '$17',
    seconds: '(SELECT "leaseSeconds" FROM allowed)',
    exclude: '$18::uuid[]',
    max: '$19',
    submitted: '$1',
    when: 'EXISTS (SELECT 1 FROM allowed)',
  })}
  SELECT s.id AS "preferenceId", s."createdAt" AS "storedAt", EXISTS (SELECT 1 FROM allowed) AS "mayRate", n.*
  FROM stored s LEFT JOIN (SELECT ${LEASE_COLUMNS} FROM next_lease a ${LEASE_JOINS}) n ON true`;

function viewOf(row: ViewRow): AssignmentViewData {
  return {
    id: row.id,
    projectId: row.projectId,
    expiresAt: row.expiresAt.toISOString(),
    messages: row.messages as { role: string; content: string }[],
    left: { text: row.left },
    right: { text: row.right },
  };
}

/**
 * The hot paths (next, submit, skip) are single SQL statements on node-postgres: each locks what
 * it changes, checks its conditions on the locked rows, and writes everything or nothing. A
 * comparison's free slots live on its own row (voteCount + leaseCount < requiredVotes), so taking
 * one is one locked row, not a count of leases.
 */
export class QueueService {
  private readonly db: pg.Pool;
  private readonly sweptAt = new Map<string, number>();
  private readonly leases = new Map<string, LeaseMemo>();
  private readonly batcher: SubmitBatcher;

  constructor(private readonly prisma: PrismaClient) {
    this.db = poolOf(prisma);
    this.batcher = new SubmitBatcher(this.db, LEASE_COLUMNS, LEASE_JOINS, MAX_ACTIVE_LEASES, (item) =>
      this.submitOne(item),
    );
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
    let row: SubmitAndLeaseRow | undefined;
    try {
      [row] = await this.query<SubmitAndLeaseRow>(SUBMIT_AND_LEASE, [
        ...judgmentValues(item),
        item.projectId,
        item.swapped,
        JSON.stringify(item.labelSchema),
        item.admin,
        item.gold,
        item.nextSwapped,
        item.exclude,
        MAX_ACTIVE_LEASES,
        item.next,
      ]);
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
  private async query<T extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<T[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return (await this.db.query<T>({ name: statementName(text), text, values })).rows;
      } catch (error) {
        if (attempt >= 5 || !isRetryable(error)) throw error;
        await new Promise((resolve) => setTimeout(resolve, randomInt(5, 25) * attempt));
      }
    }
  }

  private async view(assignmentId: string): Promise<AssignmentViewData> {
    const [row] = await this.query<LeaseRow>(
      `SELECT ${LEASE_COLUMNS} FROM "Assignment" a ${LEASE_JOINS} WHERE a.id = $1`,
      [assignmentId],
    );
    if (!row) throw notFound('No such assignment.');
    return this.remember(row);
  }

  /**
   * Frees the slots of leases past their expiry (status EXPIRED), in one project or for one rater
   * (whose leases end when they leave the project). Returns how many were freed.
   */
  async expireLeases(projectId: string, options: { raterId?: string; all?: boolean } = {}): Promise<number> {
    const rows = await this.query<{ n: number }>(
      `WITH expired AS (
         UPDATE "Assignment" a SET status = 'EXPIRED'
         FROM "Comparison" c
         WHERE c.id = a."comparisonId" AND c."projectId" = $1 AND a.status = 'LEASED'
           AND ($2::uuid IS NULL OR a."raterId" = $2::uuid) AND ($3 OR a."expiresAt" <= now())
         RETURNING a."comparisonId"
       ), freed AS (
         UPDATE "Comparison" c SET "leaseCount" = c."leaseCount" - n.n
         FROM (SELECT "comparisonId", count(*)::int AS n FROM expired GROUP BY 1) n
         WHERE c.id = n."comparisonId"
         RETURNING n.n
       )
       SELECT coalesce(sum(n), 0)::int AS n FROM freed`,
      [projectId, options.raterId ?? null, options.all ?? false],
    );
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
    const [row] = await this.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "Assignment" a JOIN "Comparison" c ON c.id = a."comparisonId"
       WHERE a."raterId" = $1 AND a.status = 'LEASED' AND a."expiresAt" > now() AND c."projectId" = $2`,
      [raterId, projectId],
    );
    return row?.n ?? 0;
  }

  private async anyFree(raterId: string, projectId: string): Promise<boolean> {
    const rows = await this.query<{ free: boolean }>(
      `SELECT EXISTS (
         SELECT 1 FROM "Comparison" c
         WHERE c."projectId" = $1 AND c."open" AND c."free"
           AND NOT EXISTS (SELECT 1 FROM "Assignment" a WHERE a."comparisonId" = c.id AND a."raterId" = $2)
       ) AS free`,
      [projectId, raterId],
    );
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
      const [row] = await this.query<LeaseRow>(
        `WITH ${leaseCtes({ project: '$1', gold: '$2', rater: '$3', swapped: '$4', seconds: '$5', exclude: '$6::uuid[]', max: '$7' })}
         SELECT ${LEASE_COLUMNS} FROM next_lease a ${LEASE_JOINS}`,
        [project.id, gold, raterId, randomInt(2) === 1, project.leaseSeconds, exclude, MAX_ACTIVE_LEASES],
      );
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
    const [state] = await this.query<SubmitState>(
      `SELECT a.status, a.swapped, pj."labelSchema", pj.id AS "projectId", pj."goldRate", pj."leaseSeconds",
         pj."archivedAt" IS NOT NULL AS archived, ${mayJudge('$2', '$4')} AS "mayRate",
         pr.id AS "replayId", pr."requestHash" AS "replayHash", pr."createdAt" AS "replayAt"
       FROM (SELECT 1) one
       LEFT JOIN "Assignment" a ON a.id = $1 AND a."raterId" = $2
       LEFT JOIN "Comparison" c ON c.id = a."comparisonId"
       LEFT JOIN "Project" pj ON pj.id = c."projectId"
       LEFT JOIN "Preference" pr ON pr."raterId" = $2 AND pr."idempotencyKey" = $3`,
      [assignmentId, raterId, idempotencyKey, principal.user.role === 'ADMIN'],
    );
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
      judgment = this.validate(body, memo, memo.swapped);
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
    state: SubmitState | undefined,
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
      state.swapped!,
    );

    let created: { id: string; createdAt: Date } | undefined;
    try {
      [created] = await this.query<{ id: string; createdAt: Date }>(
        `WITH ${storeCtes(`AND ${mayJudge('$2', '$12')}`)} SELECT id, "createdAt" FROM stored`,
        [
          ...judgmentValues(judgmentRow(principal, assignmentId, body, stored, idempotencyKey, hash)),
          principal.user.role === 'ADMIN',
        ],
      );
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
    const [now] = await this.query<{ status: string; full: boolean; archived: boolean; mayRate: boolean }>(
      `SELECT a.status, c."voteCount" >= c."requiredVotes" AS full, pj."archivedAt" IS NOT NULL AS archived,
         ${mayJudge('$2', '$3')} AS "mayRate"
       FROM "Assignment" a JOIN "Comparison" c ON c.id = a."comparisonId" JOIN "Project" pj ON pj.id = c."projectId"
       WHERE a.id = $1`,
      [assignmentId, raterId, principal.user.role === 'ADMIN'],
    );
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
    await this.query(
      `WITH lease AS MATERIALIZED (
         SELECT id, status FROM "Assignment" WHERE id = $1 FOR UPDATE
       ), ended AS (
         UPDATE "Assignment" a SET status = 'EXPIRED' FROM lease
         WHERE a.id = lease.id AND lease.status = 'LEASED' RETURNING a."comparisonId"
       )
       UPDATE "Comparison" c SET "leaseCount" = c."leaseCount" - 1 FROM ended WHERE c.id = ended."comparisonId"`,
      [assignmentId],
    );
  }

  private async replay(raterId: string, idempotencyKey: string, hash: string) {
    const [existing] = await this.query<{ id: string; requestHash: string | null; createdAt: Date }>(
      `SELECT id, "requestHash", "createdAt" FROM "Preference" WHERE "raterId" = $1 AND "idempotencyKey" = $2`,
      [raterId, idempotencyKey],
    );
    return existing ? replayOf(existing.id, existing.requestHash, existing.createdAt, hash) : null;
  }

  /** Checks a judgment against the project's label schema and turns shown sides into A/B. */
  private validate(body: SubmitBody, project: Pick<Project, 'labelSchema'>, swapped: boolean): Judgment {
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
    this.leases.delete(assignmentId);
    const admin = principal.user.role === 'ADMIN';
    const [skipped] = await this.query<{ id: string }>(
      `WITH lease AS MATERIALIZED (
         SELECT id, "raterId", status, "comparisonId" FROM "Assignment" WHERE id = $1 FOR UPDATE
       ), skipped AS (
         UPDATE "Assignment" a SET status = 'SKIPPED', "skipReason" = $3, "completedAt" = now()
         FROM lease JOIN "Comparison" c ON c.id = lease."comparisonId" JOIN "Project" pj ON pj.id = c."projectId"
         WHERE a.id = lease.id AND lease."raterId" = $2 AND lease.status = 'LEASED' AND ${mayJudge('$2', '$4')}
         RETURNING a."comparisonId"
       )
       UPDATE "Comparison" c SET "leaseCount" = c."leaseCount" - 1 FROM skipped
       WHERE c.id = skipped."comparisonId" RETURNING c.id`,
      [assignmentId, principal.user.id, reason.trim(), admin],
    );
    if (!skipped) {
      const [lease] = await this.query<{ status: string; archived: boolean; mayRate: boolean }>(
        `SELECT a.status, pj."archivedAt" IS NOT NULL AS archived, ${mayJudge('$2', '$3')} AS "mayRate"
         FROM "Assignment" a JOIN "Comparison" c ON c.id = a."comparisonId" JOIN "Project" pj ON pj.id = c."projectId"
         WHERE a.id = $1 AND a."raterId" = $2`,
        [assignmentId, principal.user.id, admin],
      );
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
          AND NOT EXISTS (
            SELECT 1 FROM "Assignment" a WHERE a."comparisonId" = c.id AND a."raterId" = ${raterId}::uuid
              -- The rater's own open leases (on screen, prefetched) are still theirs to judge.
              AND NOT (a.status = 'LEASED' AND a."expiresAt" > now()))`,
    ]);
    return {
      today,
      total,
      remaining: Number(remaining[0]?.n ?? 0),
      availableToMe: Number(available[0]?.n ?? 0),
    };
  }
}
