// Group commit for the rating hot path: the judgments that arrive while batches are in the
// database are stored, and their raters' next comparisons leased, together in the next batch: one
// statement (so one transaction and one round trip) for all of them, instead of one transaction and
// one twenty-node statement each. Under load this divides what PostgreSQL spends per judgment
// (executor set-up, commit, lock waits among a comparison's raters) and what the server spends on
// round trips; a lone judgment still takes the single statement, the quickest way when nothing waits.
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

/**
 * A row of the batch statement: a stored judgment (whether its rater had room for a new lease), or
 * a lease handed back (no \`preferenceId\`; \`handedTo\` the item, the caller's lease columns).
 */
type BatchRow = pg.QueryResultRow & {
  idx: number;
  preferenceId: string | null;
  storedAt: Date;
  mayRate: boolean;
  room: boolean;
  handedTo: number | null;
};

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
  "requestHash" text, swapped boolean, "labelSchema" jsonb, admin boolean, next boolean,
  exclude jsonb, gold boolean, "nextSwapped" boolean, "leaseSeconds" int`;

/**
 * The first comparisons in priority order with a free slot, gold or not, locked (other batches and
 * requests skip them), as many as `limit` (SQL, at most `most`) says, with their free slots. The
 * outer limit only tells the planner how few rows to expect: it would guess a tenth of the table
 * for the inner one, and then scan the whole table rather than look rows up.
 */
function candidatesCte(name: string, isGold: boolean, limit: string, most: number): string {
  return `${name} AS MATERIALIZED (
    SELECT * FROM (
      SELECT c.id, c.priority, c."requiredVotes" - c."voteCount" - c."leaseCount" AS slots
      FROM "Comparison" c
      WHERE c."projectId" = $3 AND c."open" AND c."free" AND c."isGold" = ${isGold}
      ORDER BY c.priority DESC, c.id
      LIMIT ${limit}
      FOR UPDATE OF c SKIP LOCKED
    ) locked LIMIT ${most}
  )`;
}

/** True when the rater (SQL) was never handed the comparison (SQL): one lookup in a unique index. */
function neverHanded(comparison: string, rater: string): string {
  return `(SELECT true FROM "Assignment" x WHERE x."comparisonId" = ${comparison} AND x."raterId" = ${rater}) IS NULL`;
}

/**
 * New leases for the raters of \`gold_want\` and \`plain_want\` (numbered \`n\` in arrival order),
 * ending in \`matched\`. Gold comparisons want a judgment from every rater: each rater takes the
 * first they have not been handed before (those left go on with the plain ones). Plain comparisons
 * have a few slots each: their free slots are listed in queue order and rater n takes slot n; a
 * rater who was handed that comparison before takes one of the slots after everyone's, in turn.
 * Most comparisons at the head of the queue have all their slots free, so about a third as many
 * comparisons as raters are read and locked. Raters left over search on their own.
 *
 * Every step is linear in the batch: the planner expects a row or two from each of these CTEs, and
 * would join two of them in a nested loop (each row of one against every row of the other), so
 * slots are taken by position in an array, and the anti-joins are hashed \`NOT IN\` filters.
 */
const MATCH_CTES = `${candidatesCte('gold_cand', true, '(SELECT CASE WHEN count(*) = 0 THEN 0 ELSE count(*) + 8 END FROM gold_want)', MAX_BATCH + 8)},
  gold_pick AS MATERIALIZED (
    SELECT w.idx, w."raterId", w."nextSwapped", w."leaseSeconds", p.id AS "comparisonId", p.slots
    FROM gold_want w CROSS JOIN LATERAL (
      SELECT c.id, c.slots FROM gold_cand c WHERE ${neverHanded('c.id', 'w."raterId"')}
      ORDER BY c.priority DESC, c.id LIMIT 1
    ) p
  ), gold_match AS MATERIALIZED (
    SELECT idx, "raterId", "nextSwapped", "leaseSeconds", "comparisonId" FROM (
      SELECT g.*, row_number() OVER (PARTITION BY "comparisonId" ORDER BY idx) AS taken FROM gold_pick g
    ) ranked WHERE taken <= slots
  ), plain_want AS MATERIALIZED (
    -- Gold is mixed in at the project's rate: tried first when drawn, else after the rest.
    SELECT w.*, row_number() OVER (ORDER BY w.idx) AS n FROM want w
    WHERE w.idx NOT IN (SELECT idx FROM gold_match)
  ), ${candidatesCte('plain_cand', false, '(SELECT CASE WHEN count(*) = 0 THEN 0 ELSE count(*) / 2 + 8 END FROM plain_want)', MAX_BATCH / 2 + 8)},
  plain_slots AS MATERIALIZED (
    -- One entry per free slot, in queue order (a comparison's slots side by side).
    SELECT coalesce(array_agg(c.id ORDER BY c.priority DESC, c.id), '{}') AS ids
    FROM plain_cand c CROSS JOIN generate_series(1, c.slots)
  ), plain_try AS MATERIALIZED (
    SELECT w.idx, w."raterId", w."nextSwapped", w."leaseSeconds", s.ids[w.n] AS "comparisonId",
      s.ids[w.n] IS NOT NULL AND ${neverHanded('s.ids[w.n]', 'w."raterId"')} AS fresh
    FROM plain_want w CROSS JOIN plain_slots s
  ), plain_again AS MATERIALIZED (
    SELECT t.idx, t."raterId", t."nextSwapped", t."leaseSeconds",
      (SELECT count(*) FROM plain_want) + row_number() OVER (ORDER BY t.idx) AS slot
    FROM plain_try t WHERE NOT t.fresh
  ), matched AS MATERIALIZED (
    -- Lease times come from the database's clock, the one every expiry check uses.
    SELECT m.*, gen_random_uuid() AS id, now() + make_interval(secs => m."leaseSeconds") AS "expiresAt"
    FROM (
      SELECT * FROM gold_match
      UNION ALL
      SELECT idx, "raterId", "nextSwapped", "leaseSeconds", "comparisonId" FROM plain_try WHERE fresh
      UNION ALL
      SELECT a.idx, a."raterId", a."nextSwapped", a."leaseSeconds", s.ids[a.slot]
      FROM plain_again a CROSS JOIN plain_slots s
      WHERE s.ids[a.slot] IS NOT NULL AND ${neverHanded('s.ids[a.slot]', 'a."raterId"')}
    ) m
  )`;

/**
 * A batch in one statement (its own transaction): every judgment whose lease is still open, of the
 * project, side order and label schema it was handed out with, on a comparison not yet full, by a
 * rater who may still judge in the project (not archived; a member, or an admin), is stored: leases locked first, then comparisons, each in id order (so that concurrent batches
 * cannot deadlock on them); a comparison judged by several raters of the batch takes as many votes
 * as it has room for, in arrival order. Then each rater who goes on gets a lease they hold and did
 * not exclude (oldest first), or, holding fewer than $4, a new one (gold first for those who drew
 * it); a comparison's counts take its votes and new leases in one update. Rows of three kinds: a
 * stored judgment whose rater has no room for a new lease (\`room\` false) or has (\`room\` true),
 * and a lease handed back (\`preferenceId\` null, \`handedTo\` the item, \`LEASE_COLUMNS\` of \`a\`);
 * a rater with room and no lease should look further on their own. $1 items (all of project $3),
 * $2 their leases, $3 the project, $4 leases a rater may hold.
 */
function batchStatement(leaseColumns: string, leaseJoins: string): string {
  return `WITH i AS MATERIALIZED (
    -- In lease order: each item's lease is locked in turn below (every writer locks them in id order).
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(${ITEM_COLUMNS}) ORDER BY "assignmentId"
  ), lease AS MATERIALIZED (
    -- By primary key, item by item (a join of leases and items would be planned as a nested loop of
    -- every item against every lease, or as a scan of all leases).
    SELECT i.*, a."comparisonId", a.status, a."raterId" AS "leaseRater", a.swapped AS "leaseSwapped"
    FROM i CROSS JOIN LATERAL (
      SELECT x."comparisonId", x.status, x."raterId", x.swapped FROM "Assignment" x
      WHERE x.id = i."assignmentId" FOR UPDATE
    ) a
  ), target AS MATERIALIZED (
    -- Only raters who may still judge here: the project not archived, a member (admins: any project).
    SELECT lease.*, c."voteCount", c."requiredVotes", true AS "mayRate"
    FROM lease JOIN "Comparison" c ON c.id = lease."comparisonId" JOIN "Project" pj ON pj.id = c."projectId"
    WHERE lease."leaseRater" = lease."raterId" AND lease.status = 'LEASED' AND lease."leaseSwapped" = lease.swapped
      AND c."projectId" = $3 AND pj."labelSchema" = lease."labelSchema" AND pj."archivedAt" IS NULL
      AND (lease.admin OR EXISTS (
        SELECT 1 FROM "ProjectMember" m WHERE m."projectId" = pj.id AND m."userId" = lease."raterId"))
    ORDER BY c.id FOR UPDATE OF c
  ), eligible AS MATERIALIZED (
    SELECT ranked.*, gen_random_uuid() AS "preferenceId" FROM (
      SELECT target.*, row_number() OVER (PARTITION BY "comparisonId" ORDER BY idx) AS rank FROM target
    ) ranked WHERE "voteCount" + rank <= "requiredVotes"
  ), claimed AS (
    UPDATE "Assignment" a SET status = 'SUBMITTED', "completedAt" = now()
    FROM eligible e WHERE a.id = e."assignmentId"
  ), stored AS (
    INSERT INTO "Preference" (id, "comparisonId", "raterId", "assignmentId", source, choice, strength,
      criteria, flags, rationale, "shownSwapped", "timeSpentMs", "idempotencyKey", "requestHash")
    SELECT e."preferenceId", e."comparisonId", e."raterId", e."assignmentId", e.source, e.choice, e.strength,
      e.criteria, ARRAY(SELECT jsonb_array_elements_text(e.flags)), e.rationale, e.swapped, e."timeSpentMs",
      e."idempotencyKey", e."requestHash"
    FROM eligible e
  ), held AS MATERIALIZED (
    -- The other open leases of the raters who go on.
    SELECT e.idx, a.id, a."leasedAt", e.exclude ? a.id::text AS excluded
    FROM eligible e JOIN "Assignment" a ON a."raterId" = e."raterId" AND a.status = 'LEASED'
      AND a."expiresAt" > now() AND a.id <> ALL($2::uuid[])
    JOIN "Comparison" c ON c.id = a."comparisonId" AND c."projectId" = $3
    WHERE e.next AND e."mayRate"
  ), reuse AS MATERIALIZED (
    SELECT DISTINCT ON (idx) idx, id FROM held WHERE NOT excluded ORDER BY idx, "leasedAt"
  ), room AS MATERIALIZED (
    -- Who goes on and may take a new lease (none to hand back, fewer than the most they may hold).
    SELECT e.idx, e."preferenceId", e."raterId", e.gold, e."nextSwapped", e."leaseSeconds" FROM eligible e
    WHERE e.next AND e."mayRate" AND e.idx NOT IN (SELECT idx FROM reuse)
      AND e.idx NOT IN (SELECT idx FROM held GROUP BY idx HAVING count(*) >= $4)
  ), want AS MATERIALIZED (
    -- One new lease per rater in a batch (their first judgment in it; any other searches).
    SELECT * FROM (SELECT DISTINCT ON ("raterId") * FROM room ORDER BY "raterId", idx) first
  ), gold_want AS MATERIALIZED (
    SELECT w.*, row_number() OVER (ORDER BY w.idx) AS n FROM want w WHERE w.gold
  ), ${MATCH_CTES}, leased AS (
    INSERT INTO "Assignment" (id, "comparisonId", "raterId", swapped, "expiresAt")
    SELECT id, "comparisonId", "raterId", "nextSwapped", "expiresAt" FROM matched
  ), deltas AS MATERIALIZED (
    SELECT "comparisonId", sum(votes)::int AS votes, sum(leases)::int AS leases FROM (
      SELECT "comparisonId", 1 AS votes, 0 AS leases FROM eligible
      UNION ALL
      SELECT "comparisonId", 0, 1 FROM matched
    ) d GROUP BY 1
  ), counted AS (
    UPDATE "Comparison" c
    SET "voteCount" = c."voteCount" + g.votes, "leaseCount" = c."leaseCount" - g.votes + g.leases
    FROM deltas g
    -- Looked up by primary key, however many rows the planner expects.
    WHERE c.id = g."comparisonId" AND c.id = ANY(ARRAY(SELECT "comparisonId" FROM deltas))
  ), handed AS (
    SELECT r.idx, a.id, a."comparisonId", a.swapped, a."expiresAt" FROM reuse r JOIN "Assignment" a ON a.id = r.id
    UNION ALL
    SELECT idx, id, "comparisonId", "nextSwapped", "expiresAt" FROM matched
  ), shown AS MATERIALIZED (
    SELECT a.idx AS "handedTo", ${leaseColumns} FROM handed a ${leaseJoins}
    WHERE c.id = ANY(ARRAY(SELECT "comparisonId" FROM handed))
  )
  -- Three kinds of rows rather than judgments joined to their leases (a nested loop again); the
  -- join with nothing gives the first two the leases' columns, null.
  SELECT e.idx, e."preferenceId", now()::timestamptz(3) AS "storedAt", e."mayRate", false AS room, n.*
  FROM eligible e LEFT JOIN shown n ON false WHERE e.idx NOT IN (SELECT idx FROM room)
  UNION ALL
  SELECT r.idx, r."preferenceId", now()::timestamptz(3), true, true, n.* FROM room r LEFT JOIN shown n ON false
  UNION ALL
  SELECT n."handedTo", NULL, NULL, NULL, NULL, n.* FROM shown n`;
}

export class SubmitBatcher {
  /**
   * Batches of more than one judgment run so far, the judgments they held, the batches that stored
   * nothing because their statement failed (their judgments went one by one), and the raters the
   * batches left to search for their next comparison on their own.
   */
  readonly stats = { batches: 0, judgments: 0, failed: 0, searches: 0 };
  private pending: Pending[] = [];
  private inFlight = 0;
  /** The comparisons judged in the batches in the database. */
  private readonly judging = new Set<string>();
  private readonly sql: string;

  /** Judgments waiting for a place in a batch. */
  get queued(): number {
    return this.pending.length;
  }

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
    this.sql = batchStatement(leaseColumns, leaseJoins);
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
      // too: a repeated one (a retry racing its original) waits for the next. One project per
      // batch: the judgments of others wait for the next.
      const batch: Pending[] = [];
      const rest: Pending[] = [];
      const leases = new Set<string>();
      let projectId: string | null = null;
      for (const entry of this.pending) {
        const { assignmentId, comparisonId } = entry.item;
        if (
          batch.length < MAX_BATCH &&
          !leases.has(assignmentId) &&
          !this.judging.has(comparisonId) &&
          (projectId ??= entry.item.projectId) === entry.item.projectId
        ) {
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
    const items = batch.map((entry) => entry.item);
    const values = [
      // The statement reads the columns it names (ITEM_COLUMNS) and ignores the rest.
      JSON.stringify(items.map((item, idx) => ({ ...item, idx }))),
      items.map((item) => item.assignmentId),
      items[0]!.projectId,
      this.maxLeases,
    ];
    for (let attempt = 1; ; attempt++) {
      let rows: BatchRow[];
      try {
        // One statement, so one transaction and one round trip; a connection that fails meanwhile
        // is dropped by the pool, which ends the transaction in the database.
        rows = (await this.db.query<BatchRow>({ name: statementName(this.sql), text: this.sql, values }))
          .rows;
      } catch (error) {
        if (isRetryable(error) && attempt < 5) continue;
        // Nothing of the batch was stored: each judgment is answered on the general path.
        this.stats.failed++;
        for (const entry of batch) entry.resolve(null);
        return;
      }
      const results: BatchResult[] = batch.map(() => null);
      const stored: BatchRow[] = [];
      const handed = new Map<number, BatchRow>();
      for (const row of rows) {
        if (row.preferenceId === null) handed.set(row.handedTo!, row);
        else stored.push(row);
      }
      for (const row of stored) {
        const lease = handed.get(row.idx) ?? (row.room ? 'search' : null);
        if (lease === 'search') this.stats.searches++;
        results[row.idx] = {
          preferenceId: row.preferenceId!,
          storedAt: row.storedAt,
          mayRate: row.mayRate,
          lease,
        };
      }
      batch.forEach((entry, index) => entry.resolve(results[index] ?? null));
      return;
    }
  }
}
