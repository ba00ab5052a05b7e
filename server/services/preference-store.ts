// Stores an imported preference file in set-based statements: parsed rows are copied into a
// temporary table in batches as they are read (a COPY of each batch), then prompts,
// responses, comparisons and judgments are matched and written by SQL, all in the import's one
// transaction. The server holds one batch of rows at a time, whatever the file's size.
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { PrismaClient } from '../db/client.js';
import { poolOf } from '../db/client.js';

export interface StagedPair {
  line: number;
  messages: { role: string; content: string }[];
  chosen: string;
  rejected: string;
  strength: number | null;
}

/** The longest a statement of an import may take. */
const IMPORT_STATEMENT_MS = 10 * 60_000;

/** Rows per COPY into the staging table. */
const BATCH = 2_000;

/**
 * Runs `work` in one transaction on a connection of its own (the pool's settings), which it says
 * whether to commit (a dry run rolls back). Staging tables and their joins get memory for a file
 * at the limit (temp_buffers can only be set before a session's first temporary table, hence the
 * fresh session); a large file needs longer than the pool's statement and idle limits.
 */
export async function inImportTransaction<T>(
  prisma: PrismaClient,
  work: (client: pg.ClientBase) => Promise<{ value: T; commit: boolean }>,
): Promise<T> {
  // Statements on a whole file may run for minutes: the pool's limits (30 s) are raised for this
  // connection, on both sides (the server's statement_timeout, the client's wait for an answer).
  const client = new pg.Client({
    ...poolOf(prisma).options,
    statement_timeout: IMPORT_STATEMENT_MS,
    query_timeout: IMPORT_STATEMENT_MS + 5_000,
  });
  client.on('error', () => undefined); // a broken link also fails the statement in progress
  await client.connect();
  try {
    await client.query("SET temp_buffers = '256MB'");
    // Matching joins a file's rows on their texts: hash joins held in memory (a sort of texts goes
    // through the collation, and spilled to disk at 64 MB); JIT only adds compile time to them.
    await client.query("SET work_mem = '256MB'");
    await client.query('SET jit = off');
    await client.query('BEGIN');
    await client.query("SET LOCAL idle_in_transaction_session_timeout = '10min'");
    const { value, commit } = await work(client);
    await client.query(commit ? 'COMMIT' : 'ROLLBACK');
    return value;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A value in COPY's text format: backslash, tab, line feed and carriage return escaped. */
function copyText(value: string): string {
  return /[\\\t\n\r]/.test(value)
    ? value.replace(/[\\\t\n\r]/g, (c) =>
        c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r',
      )
    : value;
}

/** The staging table of one import: rows go in as they are read, in batches. */
export class PreferenceStaging {
  private batch: StagedPair[] = [];
  private created = false;

  constructor(private readonly client: pg.ClientBase) {}

  async add(pair: StagedPair): Promise<void> {
    this.batch.push(pair);
    if (this.batch.length >= BATCH) await this.flush();
  }

  async flush(): Promise<void> {
    if (!this.created) {
      await this.client.query(`CREATE TEMP TABLE import_pair (
        line int NOT NULL, messages jsonb NOT NULL, chosen text NOT NULL, rejected text NOT NULL, strength int
      ) ON COMMIT DROP`);
      this.created = true;
    }
    if (!this.batch.length) return;
    const rows = this.batch;
    this.batch = [];
    // One COPY (text format) per batch: a batch is a whole statement, so a file refused midway
    // leaves no COPY open on the connection.
    const lines = rows.map(
      (row) =>
        `${row.line}\t${copyText(JSON.stringify(row.messages))}\t${copyText(row.chosen)}\t` +
        `${copyText(row.rejected)}\t${row.strength ?? '\\N'}\n`,
    );
    await pipeline(
      Readable.from([Buffer.from(lines.join(''))]),
      this.client.query(copyFrom('COPY import_pair (line, messages, chosen, rejected, strength) FROM STDIN')),
    );
  }

  /** Distinct prompts among the staged rows. */
  async promptCount(): Promise<number> {
    await this.flush();
    const { rows } = await this.client.query<{ n: number }>(
      'SELECT count(DISTINCT messages)::int AS n FROM import_pair',
    );
    return rows[0]!.n;
  }

  /**
   * Matches the staged rows with the project's prompts (same messages), responses (same prompt
   * and text) and comparisons (the same two responses, in either order), and counts what is new.
   * Nothing is written to the project's tables yet.
   */
  async match(projectId: string): Promise<{ prompts: number; newPrompts: number; comparisons: number }> {
    await this.flush();
    const q = (sql: string, values: unknown[] = []) => this.client.query(sql, values);
    // A temporary table has no statistics until analyzed: the planner would take 118,000 rows
    // for 550,000 of 200 distinct prompts and sort the texts for merge joins.
    await q('ANALYZE import_pair');
    // Prompts: an existing one with the same messages (the oldest), or a new id.
    await q(
      `CREATE TEMP TABLE import_prompt ON COMMIT DROP AS
       SELECT t.messages, coalesce(x.id, gen_random_uuid()) AS id, x.id IS NULL AS is_new
       FROM (SELECT DISTINCT messages FROM import_pair) t
       LEFT JOIN (
         SELECT DISTINCT ON (messages) id, messages FROM "Prompt" WHERE "projectId" = $1
         ORDER BY messages, "createdAt", id
       ) x ON x.messages = t.messages`,
      [projectId],
    );
    await q('ANALYZE import_prompt');
    // Each row with its prompt, so that the responses are matched on (prompt id, text).
    await q(
      `CREATE TEMP TABLE import_keyed ON COMMIT DROP AS
       SELECT s.line, p.id AS prompt_id, s.chosen, s.rejected, s.strength
       FROM import_pair s JOIN import_prompt p USING (messages)`,
    );
    await q('ANALYZE import_keyed');
    // Responses: one per (prompt, text); an existing one with that text is reused.
    await q(
      `CREATE TEMP TABLE import_response ON COMMIT DROP AS
       SELECT t.prompt_id, t.text, coalesce(x.id, gen_random_uuid()) AS id, x.id IS NULL AS is_new
       FROM (
         SELECT prompt_id, chosen AS text FROM import_keyed
         UNION
         SELECT prompt_id, rejected FROM import_keyed
       ) t
       LEFT JOIN (
         SELECT DISTINCT ON (r."promptId", r.text) r.id, r."promptId", r.text FROM "Response" r
         WHERE r."promptId" IN (SELECT id FROM import_prompt WHERE NOT is_new)
         ORDER BY r."promptId", r.text, r."createdAt", r.id
       ) x ON x."promptId" = t.prompt_id AND x.text = t.text`,
    );
    await q('ANALYZE import_response');
    // Each row with its ids; the pair of responses in a fixed order (lo, hi) finds its comparison.
    await q(
      `CREATE TEMP TABLE import_row ON COMMIT DROP AS
       SELECT s.line, s.prompt_id, c.id AS chosen_id, r.id AS rejected_id, s.strength,
         least(c.id, r.id) AS lo, greatest(c.id, r.id) AS hi
       FROM import_keyed s
       JOIN import_response c ON c.prompt_id = s.prompt_id AND c.text = s.chosen
       JOIN import_response r ON r.prompt_id = s.prompt_id AND r.text = s.rejected`,
    );
    await q('ANALYZE import_row');
    // Comparisons: an existing one of the two responses in either order (the oldest), or a new one
    // whose A is the chosen response of the pair's first row. Its imported votes are counted.
    await q(
      `CREATE TEMP TABLE import_comparison ON COMMIT DROP AS
       SELECT g.prompt_id, g.lo, g.hi, g.votes,
         coalesce(x.id, gen_random_uuid()) AS id, x.id IS NULL AS is_new,
         coalesce(x."responseAId", g.first_chosen) AS a_id,
         coalesce(x."responseBId", CASE WHEN g.first_chosen = g.lo THEN g.hi ELSE g.lo END) AS b_id
       FROM (
         SELECT prompt_id, lo, hi, count(*)::int AS votes, (array_agg(chosen_id ORDER BY line))[1] AS first_chosen
         FROM import_row GROUP BY prompt_id, lo, hi
       ) g
       LEFT JOIN (
         SELECT DISTINCT ON (c."promptId", least(c."responseAId", c."responseBId"), greatest(c."responseAId", c."responseBId"))
           c.id, c."promptId", c."responseAId", c."responseBId",
           least(c."responseAId", c."responseBId") AS lo, greatest(c."responseAId", c."responseBId") AS hi
         FROM "Comparison" c
         WHERE c."promptId" IN (SELECT id FROM import_prompt WHERE NOT is_new)
         ORDER BY c."promptId", least(c."responseAId", c."responseBId"), greatest(c."responseAId", c."responseBId"), c."createdAt", c.id
       ) x ON x."promptId" = g.prompt_id AND x.lo = g.lo AND x.hi = g.hi`,
    );
    const { rows } = await q(
      `SELECT (SELECT count(*)::int FROM import_prompt) AS prompts,
         (SELECT count(*)::int FROM import_prompt WHERE is_new) AS "newPrompts",
         (SELECT count(*)::int FROM import_comparison WHERE is_new) AS comparisons`,
    );
    return rows[0] as { prompts: number; newPrompts: number; comparisons: number };
  }

  /**
   * Writes what `match` found: new prompts, responses and comparisons (imported votes complete a
   * new comparison: requiredVotes = votes, so raters are not asked), votes added to existing
   * comparisons (both counts rise, leaving their queue state), and one IMPORTED judgment a row.
   */
  async store(projectId: string, source: string): Promise<void> {
    const q = (sql: string, values: unknown[] = []) => this.client.query(sql, values);
    await q(
      `INSERT INTO "Prompt" (id, "projectId", messages)
       SELECT id, $1, messages FROM import_prompt WHERE is_new`,
      [projectId],
    );
    await q(
      `INSERT INTO "Response" (id, "promptId", text, source)
       SELECT id, prompt_id, text, $1 FROM import_response WHERE is_new ORDER BY prompt_id`,
      [source],
    );
    await q(
      `INSERT INTO "Comparison" (id, "projectId", "promptId", "responseAId", "responseBId", "requiredVotes", "voteCount")
       SELECT id, $1, prompt_id, a_id, b_id, votes, votes FROM import_comparison WHERE is_new ORDER BY prompt_id`,
      [projectId],
    );
    await q(
      `UPDATE "Comparison" c SET "requiredVotes" = c."requiredVotes" + i.votes, "voteCount" = c."voteCount" + i.votes
       FROM import_comparison i WHERE c.id = i.id AND NOT i.is_new`,
    );
    await q(
      `INSERT INTO "Preference" ("comparisonId", "raterId", source, "importSource", choice, strength)
       SELECT i.id, NULL, 'IMPORTED', $1, (CASE WHEN r.chosen_id = i.a_id THEN 'A' ELSE 'B' END)::"Choice", r.strength
       FROM import_row r JOIN import_comparison i ON i.prompt_id = r.prompt_id AND i.lo = r.lo AND i.hi = r.hi
       ORDER BY r.line`,
      [source],
    );
  }
}

/** The audit entry of an import, in the import's transaction. */
export async function auditInTransaction(
  client: pg.ClientBase,
  event: { actorId: string | null; action: string; targetId: string; details: object; ip: string | null },
): Promise<void> {
  await client.query(
    `INSERT INTO "AuditLog" ("actorId", action, "targetType", "targetId", details, ip)
     VALUES ($1, $2, 'project', $3, $4::jsonb, $5)`,
    [event.actorId, event.action, event.targetId, JSON.stringify(event.details), event.ip],
  );
}
