// Exports of judgments: which preferences the filters select (export-selection.ts: SQL, every value
// bound), read through two server-side cursors in one REPEATABLE READ transaction and merged
// (export-merge.ts), and encoded batch by batch into a sink (export-encoders.ts), so memory stays
// flat for millions of rows and the file is a consistent picture of one moment. The API, the CLI
// and snapshots import all of it from here.
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { poolOf, Prisma, READ_TIMEOUT_MARGIN_MS, type Choice, type PrismaClient } from '../db/client.js';
import { fitReliability, labelOf, type Label } from '../ranking/reliability.js';
import {
  encoderFor,
  isPairwise,
  pseudonym,
  type Context,
  type ExportSpec,
  type Sink,
} from './export-encoders.js';
import { mergeJudgments } from './export-merge.js';
import {
  comparisonsSql,
  judgmentsSql,
  selectionSql,
  type ComparisonTuple,
  type JudgmentTuple,
  type Selection,
} from './export-selection.js';

export {
  aggregate,
  CONTENT_TYPES,
  CURRENT_ENCODING,
  extensionOf,
  isPairwise,
  pseudonym,
  safeFileName,
  specOf,
  type ExportSpec,
  type Sink,
} from './export-encoders.js';
export type { JudgmentRow } from './export-merge.js';
export {
  chosenIdsSql,
  countIdentical,
  countJudgments,
  countSelection,
  selectionSql,
  type Selection,
} from './export-selection.js';

export interface ExportResult {
  rows: number;
  /** Pairwise formats: pairs left out because both responses have the same text. */
  identical: number;
  judgments: number;
  bytes: number;
  sha256: string;
}

export interface RunOptions {
  /** Keys the rater pseudonyms (the server's session secret); pairwise formats name no rater. */
  secret?: string;
  /** Strength levels of the project's scale (for margins). */
  levels: number;
  /** Called after each batch with the judgments read so far. */
  progress?: (judgments: number) => void;
  /** Checked between batches; true stops the export (the client went away). */
  aborted?: () => boolean;
  /** Estimated judgments from which whole tables are read (default BULK_ROWS); tests lower it. */
  bulkRows?: number;
}

/** Rows per FETCH: large enough that round trips are few, small enough that a batch stays young. */
const BATCH = 1_000;
/** An export's statements (the first FETCH sorts the whole selection) may run this long. */
const EXPORT_STATEMENT_TIMEOUT_MS = 15 * 60_000;
const COMPARISON_BATCH = 1_000;
/** From this many (estimated) judgments on, an export reads whole tables instead of probing indexes. */
const BULK_ROWS = 50_000;

export class ExportAborted extends Error {}

/** The planner's estimate of a query's rows (EXPLAIN, nothing is run). */
/**
 * Each selected comparison's posterior outcome under the raters' estimated reliabilities, fitted
 * on the selected judgments alone (in id order), so that a snapshot's download repeats its bytes.
 */
async function reliabilityOutcomes(client: pg.PoolClient, selection: Selection) {
  const query = Prisma.sql`SELECT p."comparisonId", p."raterId", p.choice::text AS choice, c."isGold",
      c."goldChoice"::text AS "goldChoice"
    ${selectionSql(selection)} ORDER BY p.id`;
  const { rows } = await client.query<{
    comparisonId: string;
    raterId: string | null;
    choice: Choice;
    isGold: boolean;
    goldChoice: Choice | null;
  }>({ text: query.text, values: query.values });
  const gold = new Map<string, Label>();
  for (const row of rows)
    if (row.isGold && row.goldChoice) gold.set(row.comparisonId, labelOf(row.goldChoice));
  const rated = rows.flatMap((row) =>
    row.raterId === null
      ? []
      : [{ comparisonId: row.comparisonId, raterId: row.raterId, label: labelOf(row.choice) }],
  );
  return fitReliability(rated, gold).outcomes;
}

async function estimatedRows(client: pg.PoolClient, query: Prisma.Sql): Promise<number> {
  const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>({
    text: `EXPLAIN (FORMAT JSON) ${query.text}`,
    values: query.values,
  });
  return rows[0]?.['QUERY PLAN'][0].Plan['Plan Rows'] ?? 0;
}

/**
 * Streams the selected judgments, encoded, into `sink`; returns row count, size and sha256. Both
 * cursors live in one REPEATABLE READ transaction, so concurrent ratings never tear the file. Rows
 * come straight from node-postgres as arrays: at millions of rows, per-row object mapping is most
 * of the cost.
 */
export async function runExport(
  prisma: PrismaClient,
  selection: Selection,
  spec: ExportSpec,
  sink: Sink,
  run: RunOptions,
): Promise<ExportResult> {
  const hash = createHash('sha256');
  let bytes = 0;
  const counted: Sink = async (chunk) => {
    hash.update(chunk);
    bytes += chunk.length;
    await sink(chunk);
  };
  const pseudonyms = new Map<string, string>();
  const context: Context = {
    levels: run.levels,
    rater: (raterId) => {
      if (raterId === null) return null;
      if (spec.options.identifyRaters) return raterId;
      if (!run.secret) throw new Error('Rater pseudonyms need the server secret.');
      let name = pseudonyms.get(raterId);
      if (!name) pseudonyms.set(raterId, (name = pseudonym(run.secret, raterId)));
      return name;
    },
  };
  const encode = encoderFor(spec, context, counted);
  let judgments = 0;
  const client = await poolOf(prisma).connect();
  let failure: Error | undefined;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    // The first FETCH sorts the whole selection; give it and slow readers room. Sorts spill to
    // disk beyond work_mem; a little more keeps large exports off the disk longer.
    await client.query(`SET LOCAL statement_timeout = ${EXPORT_STATEMENT_TIMEOUT_MS};
      SET LOCAL idle_in_transaction_session_timeout = '15min'; SET LOCAL work_mem = '64MB';
      SET LOCAL cursor_tuple_fraction = 1.0`);
    if (spec.mode === 'aggregated' && spec.options.reliabilityWeights)
      context.outcomes = await reliabilityOutcomes(client, selection);
    // Most projects exclude nobody: then the export reads no exclusion filter (an anti-join over
    // every judgment). The transaction's snapshot keeps the answer true for the whole export.
    if ('projectId' in selection && /^[0-9a-f-]{36}$/i.test(selection.projectId)) {
      const { rows } = await client.query<{ any: boolean }>(
        'SELECT EXISTS (SELECT 1 FROM "RaterExclusion" WHERE "projectId" = $1::uuid) AS any',
        [selection.projectId],
      );
      if (!rows[0]!.any) selection = { ...selection, noExclusions: true };
    }
    const judgmentsQuery = judgmentsSql(selection, isPairwise(spec.format));
    // Read to the end, a large selection is cheapest as sequential scans, hash joins and one sort:
    // probing an index per row (the planner's favourite for cursors) costs several times more.
    const bulk = (await estimatedRows(client, judgmentsQuery)) >= (run.bulkRows ?? BULK_ROWS);
    if (bulk)
      await client.query(`SET LOCAL enable_nestloop = off; SET LOCAL enable_indexscan = off;
        SET LOCAL enable_bitmapscan = off`);
    const declare = (name: string, query: Prisma.Sql) =>
      client.query({ text: `DECLARE ${name} NO SCROLL CURSOR FOR ${query.text}`, values: query.values });
    await declare('loom_judgments', judgmentsQuery);
    await declare('loom_comparisons', comparisonsSql(selection, bulk));
    const fetch = async <T>(cursor: string, rows: number): Promise<T[]> => {
      // The first FETCH sorts the whole selection, within the statement timeout set above
      // (node-postgres reads query_timeout per query; its types leave it out).
      const config = {
        text: `FETCH ${rows} FROM ${cursor}`,
        rowMode: 'array' as const,
        query_timeout: EXPORT_STATEMENT_TIMEOUT_MS + READ_TIMEOUT_MARGIN_MS,
      };
      return (await client.query<T & unknown[]>(config)).rows;
    };
    const batches = mergeJudgments(
      () => fetch<JudgmentTuple>('loom_judgments', BATCH),
      () => fetch<ComparisonTuple>('loom_comparisons', COMPARISON_BATCH),
      BATCH,
      { rankingPairs: spec.format !== 'ranking' },
    );
    for await (const { groups, judgments: read } of batches) {
      if (run.aborted?.()) throw new ExportAborted('The export was cancelled.');
      judgments += read;
      // Raw rows go out one unit per judgment, aggregated ones one unit per comparison.
      const units = spec.mode === 'raw' ? groups.flatMap((group) => group.map((row) => [row])) : groups;
      if (units.length) await encode.push(units);
      run.progress?.(judgments);
    }
    await client.query('COMMIT');
  } catch (error) {
    failure = error instanceof Error ? error : new Error(String(error));
    // A connection whose transaction cannot be rolled back is not given back to the pool.
    await client.query('ROLLBACK').then(
      () => (failure = undefined),
      () => {},
    );
    throw error;
  } finally {
    client.release(failure);
  }
  await encode.end();
  return { rows: encode.rows, identical: encode.identical, judgments, bytes, sha256: hash.digest('hex') };
}
