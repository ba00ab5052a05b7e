// The rating service's statements (rating.ts), with named parameters compiled once at load
// (core/db/sql-params.ts). Each hot path is one statement: it locks what it changes, checks its
// conditions on the locked rows, and writes everything or nothing.
import type { Prisma } from '../db/client.js';
import { sql } from '../db/sql-params.js';

/** Leases one rater may hold in one project at once (the one on screen and a prefetched one). */
export const MAX_ACTIVE_LEASES = 3;

/** SQL: the rater (SQL) may judge in project `pj` (admin, SQL boolean: any project) while it is active. */
function mayJudge(rater: string, admin: string): string {
  return `pj."archivedAt" IS NULL
    AND (${admin} OR EXISTS (SELECT 1 FROM "ProjectMember" m WHERE m."projectId" = pj.id AND m."userId" = ${rater}))`;
}

/**
 * The rater's view of a lease: sides as shown, nothing about sources; a ranking's texts in stored
 * order (the server puts them in the lease's shown order), null for a pair.
 */
const VIEW_COLUMNS = `p.messages,
  CASE WHEN a.swapped THEN rb.text ELSE ra.text END AS "left",
  CASE WHEN a.swapped THEN ra.text ELSE rb.text END AS "right",
  CASE WHEN cardinality(c."responseIds") > 0 THEN ARRAY(
    SELECT r.text FROM unnest(c."responseIds") WITH ORDINALITY u(id, n) JOIN "Response" r ON r.id = u.id
    ORDER BY u.n) END AS ranked`;

/** A lease `a` with its view and what checking a submission of it needs (kept by the server only). */
export const LEASE_COLUMNS = `a.id, c.id AS "comparisonId", c."projectId", a."expiresAt", a.swapped, pj."labelSchema", pj."goldRate",
  pj."leaseSeconds", ${VIEW_COLUMNS}`;
export const LEASE_JOINS = `JOIN "Comparison" c ON c.id = a."comparisonId"
  JOIN "Project" pj ON pj.id = c."projectId"
  JOIN "Prompt" p ON p.id = c."promptId"
  JOIN "Response" ra ON ra.id = c."responseAId"
  JOIN "Response" rb ON rb.id = c."responseBId"`;

/** A row of LEASE_COLUMNS. */
export interface LeaseRow {
  id: string;
  comparisonId: string;
  projectId: string;
  expiresAt: Date;
  swapped: boolean;
  labelSchema: Prisma.JsonValue;
  goldRate: number;
  leaseSeconds: number;
  messages: unknown;
  left: string;
  right: string;
  /** A ranking's response texts in stored order; null for a pair. */
  ranked: string[] | null;
}

/**
 * The CTEs that lease the rater's next comparison, ending in `next_lease` (id, comparisonId,
 * expiresAt, swapped): a lease the rater holds and did not exclude (oldest first); else, while they
 * hold fewer than `:maxLeases` (the lease `submitted` in this same statement not counted), the first
 * comparison in priority order with a free slot that they have not seen, locked (others skip it),
 * its slot taken and the lease written; nothing unless `when` holds. Parameters: `:project`,
 * `:gold`, `:rater`, `:exclude` (their leases not to hand back), `:maxLeases`; `swapped`, `seconds`,
 * `submitted` and `when` are SQL expressions.
 */
function leaseCtes(p: { swapped: string; seconds: string; submitted?: string; when?: string }): string {
  const open = p.submitted ? `AND a.id <> ${p.submitted}` : '';
  const when = p.when ?? 'true';
  return `held AS (
      SELECT a.id, a."leasedAt" FROM "Assignment" a JOIN "Comparison" c ON c.id = a."comparisonId"
      WHERE a."raterId" = :rater AND a.status = 'LEASED' AND a."expiresAt" > now()
        AND c."projectId" = :project ${open}
    ), reuse AS (
      SELECT id FROM held WHERE ${when} AND id <> ALL(:exclude::uuid[]) ORDER BY "leasedAt" LIMIT 1
    ), candidate AS (
      SELECT c.id FROM "Comparison" c
      WHERE ${when} AND NOT EXISTS (SELECT 1 FROM reuse) AND (SELECT count(*) FROM held) < :maxLeases
        AND c."projectId" = :project AND c."open" AND c."free" AND c."isGold" = :gold
        AND NOT EXISTS (SELECT 1 FROM "Assignment" x WHERE x."comparisonId" = c.id AND x."raterId" = :rater)
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
      SELECT id, :rater, ${p.swapped}, now() + make_interval(secs => ${p.seconds}) FROM taken
      RETURNING id, "comparisonId", "expiresAt", swapped
    ), next_lease AS (
      SELECT a.id, a."comparisonId", a."expiresAt", a.swapped FROM "Assignment" a JOIN reuse ON reuse.id = a.id
      UNION ALL
      SELECT id, "comparisonId", "expiresAt", swapped FROM leased
    )`;
}

/** A judgment as the statements store it: `:assignment` judged by `:rater`, and what they said. */
export interface JudgmentParams {
  assignment: string;
  rater: string;
  source: 'HUMAN' | 'SIMULATED';
  choice: string;
  /** A ranking's ranks in stored order; empty for a pair. */
  ranks: number[];
  strength: number | null;
  /** JSON text. */
  criteria: string;
  flags: string[];
  rationale: string | null;
  timeSpentMs: number;
  idempotencyKey: string;
  requestHash: string;
}

/**
 * Stores a judgment: both rows locked, the lease still open and the comparison not full re-checked
 * on their latest versions; then the vote is counted, the lease closed and the judgment stored
 * (`stored`), or (a unique key taken) none of it. Parameters: JudgmentParams; `guard` adds
 * conditions on the lease (\`lease\`), comparison (\`c\`) and project (\`pj\`).
 */
function storeCtes(guard: string): string {
  return `lease AS MATERIALIZED (
      -- By primary key alone, then checked: the planner has no other index to pick.
      SELECT a.id, a."comparisonId", a.swapped, a."raterId", a.status FROM "Assignment" a
      WHERE a.id = :assignment FOR UPDATE
    ), target AS (
      SELECT lease.id, lease."comparisonId", lease.swapped, c."projectId"
      FROM lease JOIN "Comparison" c ON c.id = lease."comparisonId" JOIN "Project" pj ON pj.id = c."projectId"
      WHERE lease."raterId" = :rater AND lease.status = 'LEASED' AND c."voteCount" < c."requiredVotes" ${guard}
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
      INSERT INTO "Preference" ("comparisonId", "raterId", "assignmentId", source, choice, ranks, strength,
        criteria, flags, rationale, "shownSwapped", "timeSpentMs", "idempotencyKey", "requestHash")
      SELECT target."comparisonId", :rater, target.id, :source::"PreferenceSource", :choice::"Choice", :ranks::int[], :strength,
        :criteria::jsonb, :flags::text[], :rationale, target.swapped, :timeSpentMs, :idempotencyKey, :requestHash
      FROM target JOIN counted ON counted.id = target."comparisonId" JOIN claimed ON claimed.id = target.id
      RETURNING id, "createdAt", "comparisonId"
    )`;
}

/**
 * The submitted judgment of a lease this process handed out (while the rater may judge in the
 * project, and the lease's project, side order and label schema are still those it was handed out
 * with) and, when they asked (`:next`), their next lease, in one statement.
 */
export const SUBMIT_AND_LEASE = sql<
  JudgmentParams & {
    project: string;
    swapped: boolean;
    /** JSON text. */
    labelSchema: string;
    admin: boolean;
    gold: boolean;
    nextSwapped: boolean;
    exclude: string[];
    maxLeases: number;
    next: boolean;
  },
  { preferenceId: string; storedAt: Date; mayRate: boolean } & (LeaseRow | { [K in keyof LeaseRow]: null })
>(`WITH ${storeCtes(
  `AND c."projectId" = :project AND lease.swapped = :swapped AND pj."labelSchema" = :labelSchema::jsonb
    AND ${mayJudge(':rater', ':admin')}`,
)}, allowed AS (
    SELECT pj.id, pj."leaseSeconds" FROM stored JOIN "Project" pj ON pj.id = :project WHERE :next
  ), ${leaseCtes({
    swapped: ':nextSwapped',
    seconds: '(SELECT "leaseSeconds" FROM allowed)',
    submitted: ':assignment',
    when: 'EXISTS (SELECT 1 FROM allowed)',
  })}
  SELECT s.id AS "preferenceId", s."createdAt" AS "storedAt", EXISTS (SELECT 1 FROM allowed) AS "mayRate", n.*
  FROM stored s LEFT JOIN (SELECT ${LEASE_COLUMNS} FROM next_lease a ${LEASE_JOINS}) n ON true`);

/** A judgment, while the rater may judge in the project (the general path, after reading the state). */
export const STORE = sql<JudgmentParams & { admin: boolean }, { id: string; createdAt: Date }>(
  `WITH ${storeCtes(`AND ${mayJudge(':rater', ':admin')}`)} SELECT id, "createdAt" FROM stored`,
);

/**
 * A lease the rater holds (not excluded), or, holding fewer than `:maxLeases`, a new one of gold
 * or not (`:gold`); with its view.
 */
export const LEASE = sql<
  {
    project: string;
    gold: boolean;
    rater: string;
    swapped: boolean;
    seconds: number;
    exclude: string[];
    maxLeases: number;
  },
  LeaseRow
>(
  `WITH ${leaseCtes({ swapped: ':swapped', seconds: ':seconds' })}
   SELECT ${LEASE_COLUMNS} FROM next_lease a ${LEASE_JOINS}`,
);

/** A lease with its view. */
export const VIEW = sql<{ assignment: string }, LeaseRow>(
  `SELECT ${LEASE_COLUMNS} FROM "Assignment" a ${LEASE_JOINS} WHERE a.id = :assignment`,
);

/**
 * What answering a submission needs, at once: the rater's lease, its project (label schema, lease
 * settings, whether the rater may go on) and a judgment already stored under the key.
 */
export const SUBMIT_STATE = sql<
  { assignment: string; rater: string; key: string; admin: boolean },
  {
    status: string | null;
    archived: boolean | null;
    swapped: boolean | null;
    labelSchema: unknown;
    projectId: string | null;
    goldRate: number | null;
    leaseSeconds: number | null;
    mayRate: boolean | null;
    /** A ranking's K; 0 for a pair (null: no such lease). */
    rankSize: number | null;
    replayId: string | null;
    replayHash: string | null;
    replayAt: Date | null;
  }
>(
  `SELECT a.status, a.swapped, pj."labelSchema", pj.id AS "projectId", pj."goldRate", pj."leaseSeconds",
     pj."archivedAt" IS NOT NULL AS archived, ${mayJudge(':rater', ':admin')} AS "mayRate",
     cardinality(c."responseIds") AS "rankSize", pr.id AS "replayId", pr."requestHash" AS "replayHash", pr."createdAt" AS "replayAt"
   FROM (SELECT 1) one
   LEFT JOIN "Assignment" a ON a.id = :assignment AND a."raterId" = :rater
   LEFT JOIN "Comparison" c ON c.id = a."comparisonId"
   LEFT JOIN "Project" pj ON pj.id = c."projectId"
   LEFT JOIN "Preference" pr ON pr."raterId" = :rater AND pr."idempotencyKey" = :key`,
);

/** Why nothing was stored: the lease's status, whether the comparison is full, the rater's access. */
export const LEASE_STATE = sql<
  { assignment: string; rater: string; admin: boolean },
  { status: string; full: boolean; archived: boolean; mayRate: boolean }
>(
  `SELECT a.status, c."voteCount" >= c."requiredVotes" AS full, pj."archivedAt" IS NOT NULL AS archived,
     ${mayJudge(':rater', ':admin')} AS "mayRate"
   FROM "Assignment" a JOIN "Comparison" c ON c.id = a."comparisonId" JOIN "Project" pj ON pj.id = c."projectId"
   WHERE a.id = :assignment`,
);

/** The judgment stored under the rater's key. */
export const REPLAY = sql<
  { rater: string; key: string },
  { id: string; requestHash: string | null; createdAt: Date }
>(
  `SELECT id, "requestHash", "createdAt" FROM "Preference" WHERE "raterId" = :rater AND "idempotencyKey" = :key`,
);

/** Ends a lease that can no longer be judged, freeing its slot. */
export const WITHDRAW = sql<{ assignment: string }>(
  `WITH lease AS MATERIALIZED (
     SELECT id, status FROM "Assignment" WHERE id = :assignment FOR UPDATE
   ), ended AS (
     UPDATE "Assignment" a SET status = 'EXPIRED' FROM lease
     WHERE a.id = lease.id AND lease.status = 'LEASED' RETURNING a."comparisonId"
   )
   UPDATE "Comparison" c SET "leaseCount" = c."leaseCount" - 1 FROM ended WHERE c.id = ended."comparisonId"`,
);

/** Skips the rater's open lease (while they may judge in the project), freeing its slot. */
export const SKIP = sql<
  { assignment: string; rater: string; reason: string; admin: boolean },
  { id: string }
>(
  `WITH lease AS MATERIALIZED (
     SELECT id, "raterId", status, "comparisonId" FROM "Assignment" WHERE id = :assignment FOR UPDATE
   ), skipped AS (
     UPDATE "Assignment" a SET status = 'SKIPPED', "skipReason" = :reason, "completedAt" = now()
     FROM lease JOIN "Comparison" c ON c.id = lease."comparisonId" JOIN "Project" pj ON pj.id = c."projectId"
     WHERE a.id = lease.id AND lease."raterId" = :rater AND lease.status = 'LEASED' AND ${mayJudge(':rater', ':admin')}
     RETURNING a."comparisonId"
   )
   UPDATE "Comparison" c SET "leaseCount" = c."leaseCount" - 1 FROM skipped
   WHERE c.id = skipped."comparisonId" RETURNING c.id`,
);

/** Why a skip did nothing: the rater's lease's status and their access. */
export const SKIP_STATE = sql<
  { assignment: string; rater: string; admin: boolean },
  { status: string; archived: boolean; mayRate: boolean }
>(
  `SELECT a.status, pj."archivedAt" IS NOT NULL AS archived, ${mayJudge(':rater', ':admin')} AS "mayRate"
   FROM "Assignment" a JOIN "Comparison" c ON c.id = a."comparisonId" JOIN "Project" pj ON pj.id = c."projectId"
   WHERE a.id = :assignment AND a."raterId" = :rater`,
);

/**
 * Frees the slots of a project's leases past their expiry (status EXPIRED), or of one rater's
 * (`:rater`, else null) or all (`:all`) of them; how many were freed.
 */
export const EXPIRE_LEASES = sql<{ project: string; rater: string | null; all: boolean }, { n: number }>(
  `WITH expired AS (
     UPDATE "Assignment" a SET status = 'EXPIRED'
     FROM "Comparison" c
     WHERE c.id = a."comparisonId" AND c."projectId" = :project AND a.status = 'LEASED'
       AND (:rater::uuid IS NULL OR a."raterId" = :rater::uuid) AND (:all OR a."expiresAt" <= now())
     RETURNING a."comparisonId"
   ), freed AS (
     UPDATE "Comparison" c SET "leaseCount" = c."leaseCount" - n.n
     FROM (SELECT "comparisonId", count(*)::int AS n FROM expired GROUP BY 1) n
     WHERE c.id = n."comparisonId"
     RETURNING n.n
   )
   SELECT coalesce(sum(n), 0)::int AS n FROM freed`,
);

/** The rater's open leases in the project. */
export const HELD_LEASES = sql<{ rater: string; project: string }, { n: number }>(
  `SELECT count(*)::int AS n FROM "Assignment" a JOIN "Comparison" c ON c.id = a."comparisonId"
   WHERE a."raterId" = :rater AND a.status = 'LEASED' AND a."expiresAt" > now() AND c."projectId" = :project`,
);

/** Whether the project has a comparison with a free slot the rater was never handed. */
export const ANY_FREE = sql<{ project: string; rater: string }, { free: boolean }>(
  `SELECT EXISTS (
     SELECT 1 FROM "Comparison" c
     WHERE c."projectId" = :project AND c."open" AND c."free"
       AND NOT EXISTS (SELECT 1 FROM "Assignment" a WHERE a."comparisonId" = c.id AND a."raterId" = :rater)
   ) AS free`,
);

/**
 * The rater's progress in each of the projects: their judgments since `:since` and in all, the
 * judgments each project still needs (all raters), and the comparisons they could still judge
 * (ones they could be served and the ones they hold). A project without any comes back as zeros.
 */
export const PROGRESS = sql<
  { projects: string[]; rater: string; since: Date },
  { projectId: string; today: number; total: number; remaining: number; availableToMe: number }
>(
  `SELECT pj.id AS "projectId",
     (SELECT count(*)::int FROM "Preference" p JOIN "Comparison" c ON c.id = p."comparisonId"
      WHERE p."raterId" = :rater AND c."projectId" = pj.id AND p."createdAt" >= :since) AS today,
     (SELECT count(*)::int FROM "Preference" p JOIN "Comparison" c ON c.id = p."comparisonId"
      WHERE p."raterId" = :rater AND c."projectId" = pj.id) AS total,
     (SELECT coalesce(sum("requiredVotes" - "voteCount"), 0)::int FROM "Comparison"
      WHERE "projectId" = pj.id AND "open" AND NOT "isGold") AS remaining,
     (SELECT count(*)::int FROM "Comparison" c
      WHERE c."projectId" = pj.id AND c."open" AND NOT c."isGold"
        AND NOT EXISTS (
          SELECT 1 FROM "Assignment" a WHERE a."comparisonId" = c.id AND a."raterId" = :rater
            -- The rater's own open leases (on screen, prefetched) are still theirs to judge.
            AND NOT (a.status = 'LEASED' AND a."expiresAt" > now()))) AS "availableToMe"
   FROM "Project" pj WHERE pj.id = ANY(:projects::uuid[])`,
);

// --- Group commit (submit-batch.ts) ------------------------------------------------------------

/** Judgments in one batch at most; more wait for the next. */
export const MAX_BATCH = 128;

/** The columns of a batch's items (`:items`, JSON); other fields of the items are ignored. */
const ITEM_COLUMNS = `idx int, "assignmentId" uuid, "raterId" uuid, source "PreferenceSource", choice "Choice",
  ranks jsonb, strength int, criteria jsonb, flags jsonb, rationale text, "timeSpentMs" int, "idempotencyKey" text,
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
      WHERE c."projectId" = :project AND c."open" AND c."free" AND c."isGold" = ${isGold}
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
 * rater who may still judge in the project (not archived; a member, or an admin), is stored: leases
 * locked first, then comparisons, each in id order (so that concurrent batches cannot deadlock on
 * them); a comparison judged by several raters of the batch takes as many votes as it has room for,
 * in arrival order. Then each rater who goes on gets a lease they hold and did not exclude (oldest
 * first), or, holding fewer than `:maxLeases`, a new one (gold first for those who drew it); a
 * comparison's counts take its votes and new leases in one update. Rows of three kinds: a stored
 * judgment whose rater has no room for a new lease (`room` false) or has (`room` true), and a lease
 * handed back (`preferenceId` null, `handedTo` the item, `LEASE_COLUMNS` of `a`); a rater with room
 * and no lease should look further on their own. Parameters: `:items` (JSON, ITEM_COLUMNS; all of
 * `:project`), `:leases` their leases, `:maxLeases` leases a rater may hold.
 */
export const BATCH = sql<{ items: string; leases: string[]; project: string; maxLeases: number }>(
  `WITH i AS MATERIALIZED (
    -- In lease order: each item's lease is locked in turn below (every writer locks them in id order).
    SELECT * FROM jsonb_to_recordset(:items::jsonb) AS i(${ITEM_COLUMNS}) ORDER BY "assignmentId"
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
      AND c."projectId" = :project AND pj."labelSchema" = lease."labelSchema" AND pj."archivedAt" IS NULL
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
    INSERT INTO "Preference" (id, "comparisonId", "raterId", "assignmentId", source, choice, ranks, strength,
      criteria, flags, rationale, "shownSwapped", "timeSpentMs", "idempotencyKey", "requestHash")
    SELECT e."preferenceId", e."comparisonId", e."raterId", e."assignmentId", e.source, e.choice,
      ARRAY(SELECT jsonb_array_elements_text(coalesce(e.ranks, '[]'))::int), e.strength,
      e.criteria, ARRAY(SELECT jsonb_array_elements_text(e.flags)), e.rationale, e.swapped, e."timeSpentMs",
      e."idempotencyKey", e."requestHash"
    FROM eligible e
  ), held AS MATERIALIZED (
    -- The other open leases of the raters who go on.
    SELECT e.idx, a.id, a."leasedAt", e.exclude ? a.id::text AS excluded
    FROM eligible e JOIN "Assignment" a ON a."raterId" = e."raterId" AND a.status = 'LEASED'
      AND a."expiresAt" > now() AND a.id <> ALL(:leases::uuid[])
    JOIN "Comparison" c ON c.id = a."comparisonId" AND c."projectId" = :project
    WHERE e.next AND e."mayRate"
  ), reuse AS MATERIALIZED (
    SELECT DISTINCT ON (idx) idx, id FROM held WHERE NOT excluded ORDER BY idx, "leasedAt"
  ), room AS MATERIALIZED (
    -- Who goes on and may take a new lease (none to hand back, fewer than the most they may hold).
    SELECT e.idx, e."preferenceId", e."raterId", e.gold, e."nextSwapped", e."leaseSeconds" FROM eligible e
    WHERE e.next AND e."mayRate" AND e.idx NOT IN (SELECT idx FROM reuse)
      AND e.idx NOT IN (SELECT idx FROM held GROUP BY idx HAVING count(*) >= :maxLeases)
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
    SELECT a.idx AS "handedTo", ${LEASE_COLUMNS} FROM handed a ${LEASE_JOINS}
    WHERE c.id = ANY(ARRAY(SELECT "comparisonId" FROM handed))
  )
  -- Three kinds of rows rather than judgments joined to their leases (a nested loop again); the
  -- join with nothing gives the first two the leases' columns, null.
  SELECT e.idx, e."preferenceId", now()::timestamptz(3) AS "storedAt", e."mayRate", false AS room, n.*
  FROM eligible e LEFT JOIN shown n ON false WHERE e.idx NOT IN (SELECT idx FROM room)
  UNION ALL
  SELECT r.idx, r."preferenceId", now()::timestamptz(3), true, true, n.* FROM room r LEFT JOIN shown n ON false
  UNION ALL
  SELECT n."handedTo", NULL, NULL, NULL, NULL, n.* FROM shown n`,
);
