// Group commit for the rating hot path: the judgments that arrive while batches are in the
// database are stored, and their raters' next comparisons leased, together in the next batch: one
// transaction of three set-based statements for all of them (store, candidates, leases), instead of
// one transaction and one twenty-node statement each. Under load this divides what PostgreSQL
// spends per judgment (executor set-up, commit, round trips, lock waits among a comparison's
// raters); a lone judgment still takes the single statement, the quickest way when nothing waits.
import pg from 'pg';
import { isRetryable, statementName } from '../db/client.js';

/** A judgment as it is written (checked and turned into A/B terms), by whom, under which key. */
export interface StoredJudgment {
  assignmentId: string;
  raterId: string;
  source: 'HUMAN' | 'SIMULATED';
  choice: string;
  strength: number | null;
  criteria: Record<string, string>;
  flags: string[];
  rationale: string | null;
  timeSpentMs: number;
  idempotencyKey: string;
  requestHash: string;
}

/** One judgment for the batch, with what its lease was handed out with and what comes next. */
export interface BatchItem extends StoredJudgment {
  /** What the server handed out with the lease; the batch re-checks them on the locked rows. */
  comparisonId: string;
  projectId: string;
  swapped: boolean;
  labelSchema: unknown;
  leaseSeconds: number;
  admin: boolean;
  /** Whether the rater wants their next comparison, and which of their leases not to hand back. */
  next: boolean;
  exclude: string[];
  /** Gold drawn for the next comparison; the side order of a new lease. */
  gold: boolean;
  nextSwapped: boolean;
}

/**
 * What became of an item: not stored (`null`: the lease changed, the schema was edited, a key was
 * taken, ...; the caller answers it on the general path), or stored with the rater's next lease
 * (`lease`, a row of the caller's lease columns), `'search'` when this batch found none for them
 * (the caller searches further) and `null` when they may not go on or did not ask.
 */
export type BatchResult = {
  preferenceId: string;
  storedAt: Date;
  mayRate: boolean;
  lease: pg.QueryResultRow | 'search' | null;
} | null;

interface Pending {
  item: BatchItem;
  resolve(result: BatchResult): void;
  reject(error: unknown): void;
}

/** Judgments in one batch at most; more wait for the next. */
const MAX_BATCH = 128;
/**
 * Batches in the database at once (each is one connection's transaction). Two keep PostgreSQL busy
 * while the server reads a batch's answers and writes the next; more only wait on each other's
 * row locks (three gave the same throughput, one a worse latency).
 */
const MAX_IN_FLIGHT = 2;

const ITEM_COLUMNS = `idx int, "assignmentId" uuid, "raterId" uuid, source "PreferenceSource", choice "Choice",
  strength int, criteria jsonb, flags jsonb, rationale text, "timeSpentMs" int, "idempotencyKey" text,
  "requestHash" text, "projectId" uuid, swapped boolean, "labelSchema" jsonb, admin boolean, next boolean`;

/**
 * Stores every judgment whose lease is still open, of the project, side order and label schema it
 * was handed out with, on a comparison not yet full: leases locked first, then comparisons, each
 * in id order (so that concurrent batches cannot deadlock on them); a comparison judged by several
 * raters of the batch takes as many votes as it has room for, in arrival order. For each rater who
 * goes on, also the other leases they hold in the project (`held`, oldest first; none that this
 * batch closes).
 */
const STORE = `WITH i AS MATERIALIZED (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(${ITEM_COLUMNS})
  ), lease AS MATERIALIZED (
    -- By primary key (the same leases as an array): a join with the items would be planned as a
    -- scan of all leases whenever the table's statistics call it small, and stay so in the cached plan.
    SELECT a.id, a."comparisonId", a.swapped, a."raterId", a.status FROM "Assignment" a
    WHERE a.id = ANY($2::uuid[]) ORDER BY a.id FOR UPDATE
  ), target AS MATERIALIZED (
    SELECT i.*, lease."comparisonId", c."voteCount", c."requiredVotes",
      pj."archivedAt" IS NULL AND (i.admin OR EXISTS (
        SELECT 1 FROM "ProjectMember" m WHERE m."projectId" = pj.id AND m."userId" = i."raterId")) AS "mayRate"
    FROM i JOIN lease ON lease.id = i."assignmentId"
    JOIN "Comparison" c ON c.id = lease."comparisonId" JOIN "Project" pj ON pj.id = c."projectId"
    WHERE lease."raterId" = i."raterId" AND lease.status = 'LEASED' AND lease.swapped = i.swapped
      AND c."projectId" = i."projectId" AND pj."labelSchema" = i."labelSchema"
    ORDER BY c.id FOR UPDATE OF c
  ), eligible AS MATERIALIZED (
    SELECT * FROM (
      SELECT target.*, row_number() OVER (PARTITION BY "comparisonId" ORDER BY idx) AS rank FROM target
    ) ranked WHERE "voteCount" + rank <= "requiredVotes"
  ), counted AS (
    UPDATE "Comparison" c SET "voteCount" = c."voteCount" + g.n, "leaseCount" = c."leaseCount" - g.n
    FROM (SELECT "comparisonId", count(*)::int AS n FROM eligible GROUP BY 1) g
    WHERE c.id = g."comparisonId"
  ), claimed AS (
    UPDATE "Assignment" a SET status = 'SUBMITTED', "completedAt" = now()
    FROM eligible e WHERE a.id = e."assignmentId"
  ), stored AS (
    INSERT INTO "Preference" ("comparisonId", "raterId", "assignmentId", source, choice, strength,
      criteria, flags, rationale, "shownSwapped", "timeSpentMs", "idempotencyKey", "requestHash")
    SELECT e."comparisonId", e."raterId", e."assignmentId", e.source, e.choice, e.strength, e.criteria,
      ARRAY(SELECT jsonb_array_elements_text(e.flags)), e.rationale, e.swapped, e."timeSpentMs",
      e."idempotencyKey", e."requestHash"
    FROM eligible e
    RETURNING id, "createdAt", "assignmentId"
  ), held AS (
    SELECT e.idx, array_agg(a.id ORDER BY a."leasedAt") AS ids
    FROM eligible e JOIN "Assignment" a ON a."raterId" = e."raterId" AND a.status = 'LEASED' AND a."expiresAt" > now()
      AND a.id <> ALL($2::uuid[])
    JOIN "Comparison" c ON c.id = a."comparisonId" AND c."projectId" = e."projectId"
    WHERE e.next AND e."mayRate"
    GROUP BY e.idx
  )
  SELECT e.idx, s.id AS "preferenceId", s."createdAt" AS "storedAt", e."mayRate", coalesce(h.ids, '{}') AS held
  FROM stored s JOIN eligible e ON e."assignmentId" = s."assignmentId" LEFT JOIN held h ON h.idx = e.idx`;

/**
 * The first `limit` comparisons in priority order with a free slot, locked (other batches and
 * requests skip them), with how many slots each has and who has ever been handed it. The limit is
 * part of the text (a few sizes, each its own prepared statement): with a parameter there,
 * PostgreSQL would plan the statement anew on every run.
 */
const candidatesSql = (
  limit: number,
) => `SELECT c.id, c."requiredVotes" - c."voteCount" - c."leaseCount" AS slots,
    ARRAY(SELECT x."raterId" FROM "Assignment" x WHERE x."comparisonId" = c.id) AS seen
  FROM "Comparison" c
  WHERE c."projectId" = $1 AND c."open" AND c."free" AND c."isGold" = $2
  ORDER BY c.priority DESC, c.id
  LIMIT ${limit}
  FOR UPDATE OF c SKIP LOCKED`;

/**
 * Candidates for `raters` new leases: a quarter more and a few, in steps of 8 (each size its own
 * prepared statement). Most comparisons at the head of the queue have a slot for more than one
 * rater, so few raters go without; those the batch leaves without a lease search on their own.
 * Each candidate costs a row lock (a WAL record) and a read of its raters.
 */
function candidateLimit(raters: number): number {
  return Math.ceil((raters * 1.25 + 8) / 8) * 8;
}

/**
 * The new leases written and their comparisons' slots taken; answers every lease handed back (the
 * new ones and, with `reused`, those in `$2` that raters hold already) with `columns` of the lease
 * `a`, joined by `joins`. Two statements, as most batches reuse none: with the array of reused
 * leases in it, PostgreSQL judged each run's own plan cheaper than the cached one (an empty array
 * selects nothing) and planned the six-table statement anew every time, a millisecond per batch.
 */
function leaseStatement(columns: string, joins: string, reused: boolean): string {
  const handedBack = reused
    ? `(
      SELECT id, "comparisonId", "raterId", swapped, "expiresAt" FROM leased
      UNION ALL
      SELECT id, "comparisonId", "raterId", swapped, "expiresAt" FROM "Assignment" WHERE id = ANY($2::uuid[])
    )`
    : 'leased';
  return `WITH n AS (
      SELECT * FROM jsonb_to_recordset($1::jsonb) AS n("comparisonId" uuid, "raterId" uuid, swapped boolean, seconds int)
    ), leased AS (
      -- Lease times come from the database's clock, the one every expiry check uses.
      INSERT INTO "Assignment" ("comparisonId", "raterId", swapped, "expiresAt")
      SELECT "comparisonId", "raterId", swapped, now() + make_interval(secs => seconds) FROM n
      RETURNING id, "comparisonId", "raterId", swapped, "expiresAt"
    ), taken AS (
      UPDATE "Comparison" c SET "leaseCount" = c."leaseCount" + g.k
      FROM (SELECT "comparisonId", count(*)::int AS k FROM n GROUP BY 1) g WHERE c.id = g."comparisonId"
      RETURNING c.id
    )
    SELECT a."raterId", ${columns} FROM ${handedBack} a ${joins}`;
}

export class SubmitBatcher {
  /**
   * Batches of more than one judgment run so far, the judgments they held, and the batches that
   * stored nothing because one of their statements failed (their judgments went one by one).
   */
  readonly stats = { batches: 0, judgments: 0, failed: 0 };
  private pending: Pending[] = [];
  private inFlight = 0;
  /** The comparisons judged in the batches in the database. */
  private readonly judging = new Set<string>();

  /** Judgments waiting for a place in a batch. */
  get queued(): number {
    return this.pending.length;
  }
  /** The lease statement without and with leases handed back that raters hold already. */
  private readonly leaseSql: { fresh: string; reused: string };

  /**
   * `leaseColumns` and `leaseJoins` give the rows handed back for leases (the caller's view of a
   * lease `a`); `maxLeases` is how many open leases a rater may hold in a project; `one` stores a
   * lone judgment (a batch of one) in a single statement, the quickest way when nothing waits.
   */
  constructor(
    private readonly db: pg.Pool,
    leaseColumns: string,
    leaseJoins: string,
    private readonly maxLeases: number,
    private readonly one: (item: BatchItem) => Promise<BatchResult>,
  ) {
    this.leaseSql = {
      fresh: leaseStatement(leaseColumns, leaseJoins, false),
      reused: leaseStatement(leaseColumns, leaseJoins, true),
    };
  }

  submit(item: BatchItem): Promise<BatchResult> {
    return new Promise((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.flush();
    });
  }

  private flush(): void {
    while (this.inFlight < MAX_IN_FLIGHT && this.pending.length > 0) {
      // A comparison whose judgment is in a batch in the database now waits for that batch: its
      // row is locked there until commit (its raters tend to judge together). One lease per batch
      // too: a repeated one (a retry racing its original) waits for the next.
      const batch: Pending[] = [];
      const rest: Pending[] = [];
      const leases = new Set<string>();
      for (const entry of this.pending) {
        const { assignmentId, comparisonId } = entry.item;
        if (batch.length < MAX_BATCH && !leases.has(assignmentId) && !this.judging.has(comparisonId)) {
          leases.add(assignmentId);
          batch.push(entry);
        } else rest.push(entry);
      }
      if (batch.length === 0) return;
      this.pending = rest;
      this.inFlight++;
      const comparisons = [...new Set(batch.map((entry) => entry.item.comparisonId))];
      for (const id of comparisons) this.judging.add(id);
      void this.run(batch).finally(() => {
        for (const id of comparisons) this.judging.delete(id);
        this.inFlight--;
        this.flush();
      });
    }
  }

  private async run(batch: Pending[]): Promise<void> {
    if (batch.length === 1) {
      const [{ item, resolve, reject }] = batch as [Pending];
      return this.one(item).then(resolve, reject);
    }
    this.stats.batches++;
    this.stats.judgments += batch.length;
    for (let attempt = 1; ; attempt++) {
      const client = await this.db.connect().catch((error: unknown) => {
        for (const entry of batch) entry.reject(error);
        return null;
      });
      if (!client) return;
      let results: BatchResult[];
      try {
        results = await this.transaction(
          client,
          batch.map((entry) => entry.item),
        );
        client.release();
      } catch (error) {
        // An SQL error leaves the connection usable once rolled back; any other (a broken or
        // hanging link) drops it, which ends the transaction in the database.
        const sqlError = error instanceof pg.DatabaseError;
        const rolledBack =
          sqlError &&
          (await client.query('ROLLBACK').then(
            () => true,
            () => false,
          ));
        client.release(rolledBack ? undefined : (error as Error));
        if (isRetryable(error) && attempt < 5) continue;
        // Nothing of the batch was stored: each judgment is answered on the general path.
        this.stats.failed++;
        for (const entry of batch) entry.resolve(null);
        return;
      }
      batch.forEach((entry, index) => entry.resolve(results[index] ?? null));
      return;
    }
  }

  private async query<T extends pg.QueryResultRow>(client: pg.PoolClient, text: string, values: unknown[]) {
    return (await client.query<T>({ name: statementName(text), text, values })).rows;
  }

  private async transaction(client: pg.PoolClient, items: BatchItem[]): Promise<BatchResult[]> {
    await client.query('BEGIN');
    const stored = await this.query<{
      idx: number;
      preferenceId: string;
      storedAt: Date;
      mayRate: boolean;
      held: string[];
    }>(client, STORE, [
      // The statement reads the columns it names (ITEM_COLUMNS) and ignores the rest.
      JSON.stringify(items.map((item, idx) => ({ ...item, idx }))),
      items.map((item) => item.assignmentId),
    ]);
    const results: BatchResult[] = items.map(() => null);
    for (const row of stored) {
      results[row.idx] = {
        preferenceId: row.preferenceId,
        storedAt: row.storedAt,
        mayRate: row.mayRate,
        lease: null,
      };
    }
    const going = stored.filter((row) => row.mayRate && items[row.idx]!.next);
    if (going.length > 0) await this.lease(client, items, going, results);
    await client.query('COMMIT');
    return results;
  }

  /** Hands each rater who goes on a lease they hold (not excluded) or a new one, greedily in order. */
  private async lease(
    client: pg.PoolClient,
    items: BatchItem[],
    going: { idx: number; held: string[] }[],
    results: BatchResult[],
  ): Promise<void> {
    const reused = new Map<string, number[]>();
    // Raters needing a new lease, per project: gold first for those who drew it.
    const wanting = new Map<string, { gold: number[]; plain: number[] }>();
    for (const { idx, held: mine } of going) {
      const item = items[idx]!;
      const reuse = mine.find((id) => !item.exclude.includes(id));
      results[idx]!.lease = 'search';
      if (reuse) {
        reused.set(reuse, [...(reused.get(reuse) ?? []), idx]);
        continue;
      }
      if (mine.length >= this.maxLeases) {
        results[idx]!.lease = null;
        continue;
      }
      const group = wanting.get(item.projectId) ?? { gold: [], plain: [] };
      (item.gold ? group.gold : group.plain).push(idx);
      wanting.set(item.projectId, group);
    }
    const fresh: { comparisonId: string; raterId: string; swapped: boolean; seconds: number }[] = [];
    const freshOf = new Map<string, number>();
    for (const [projectId, group] of wanting) {
      const draw = async (gold: boolean, raters: number[]): Promise<number[]> => {
        if (raters.length === 0) return [];
        const candidates = await this.query<{ id: string; slots: number; seen: string[] }>(
          client,
          candidatesSql(candidateLimit(raters.length)),
          [projectId, gold],
        );
        const left: number[] = [];
        for (const idx of raters) {
          const item = items[idx]!;
          const pick = candidates.find((c) => c.slots > 0 && !c.seen.includes(item.raterId));
          if (!pick) {
            left.push(idx);
            continue;
          }
          pick.slots--;
          pick.seen.push(item.raterId);
          freshOf.set(`${pick.id}/${item.raterId}`, idx);
          fresh.push({
            comparisonId: pick.id,
            raterId: item.raterId,
            swapped: item.nextSwapped,
            seconds: item.leaseSeconds,
          });
        }
        return left;
      };
      // Gold is mixed in at the project's rate: tried first when drawn, else after the rest (the
      // caller's search tries gold for those this batch leaves without a lease).
      const noGold = await draw(true, group.gold);
      await draw(
        false,
        [...noGold, ...group.plain].sort((a, b) => a - b),
      );
    }
    if (fresh.length === 0 && reused.size === 0) return;
    const [sql, values] =
      reused.size > 0
        ? [this.leaseSql.reused, [JSON.stringify(fresh), [...reused.keys()]]]
        : [this.leaseSql.fresh, [JSON.stringify(fresh)]];
    const rows = await this.query<pg.QueryResultRow & { raterId: string; id: string; comparisonId: string }>(
      client,
      sql,
      values,
    );
    for (const row of rows) {
      const fresh = freshOf.get(`${row.comparisonId}/${row.raterId}`);
      for (const idx of fresh !== undefined ? [fresh] : (reused.get(row.id) ?? [])) results[idx]!.lease = row;
    }
  }
}
