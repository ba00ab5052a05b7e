// Exports of judgments: which preferences the filters select (in SQL, parameterized), read through a
// server-side cursor in one REPEATABLE READ transaction, and encoded batch by batch into a sink, so
// memory stays flat for millions of rows and the file is a consistent picture of one moment.
import { createHash, createHmac } from 'node:crypto';
import { ByteWriter, ParquetWriter, type ColumnSource, type SchemaElement } from 'hyparquet-writer';
import pg from 'pg';
import { Prisma, poolOf, READ_TIMEOUT_MARGIN_MS, type Choice, type PrismaClient } from '../db/client.js';
import { badRequest } from '../errors.js';
import type { ExportBody, ExportFilters, ExportFormat, ExportOptions } from '../schemas/datasets.js';
import {
  csvField,
  csvLine,
  marginOf,
  pairOfChoice,
  pairRow,
  type Message,
  type Pair,
} from './export-formats.js';
import { majority } from './quality.js';

/** One judgment with everything an export can show about it. */
export interface JudgmentRow {
  id: string;
  comparisonId: string;
  promptId: string;
  raterId: string | null;
  source: string;
  importSource: string | null;
  choice: Choice;
  strength: number | null;
  criteria: unknown;
  flags: string[];
  rationale: string | null;
  shownSwapped: boolean;
  timeSpentMs: number | null;
  /** ISO 8601 in UTC, to the millisecond. */
  createdAt: string;
  messages: Message[];
  promptSplit: string;
  responseA: string;
  responseB: string;
  sourceA: string | null;
  sourceB: string | null;
  policyVersionA: string | null;
  policyVersionB: string | null;
  roundNumber: number | null;
  isGold: boolean;
  agreement: number;
  votes: number;
}

export interface ExportSpec {
  format: ExportFormat;
  mode: 'raw' | 'aggregated';
  filters: ExportFilters;
  options: ExportOptions;
  /**
   * How rows are written. 1: string prompts and completions glued together, pairs of identical
   * responses kept, CSV formulas kept unless asked; 2 (current): a separator before each
   * completion, identical pairs left out, spreadsheet-safe CSV unless turned off. Snapshots keep
   * the encoding they were hashed with, so every download repeats their bytes.
   */
  encoding: number;
}

/** The encoding of every new export and snapshot. */
export const CURRENT_ENCODING = 2;

/** A request's export, its defaults made explicit (a snapshot stores them as they were). */
export function specOf(body: ExportBody): ExportSpec {
  const options = { ...body.options };
  // Spreadsheet-safe CSV unless the request turns it off (pandas and other tools read raw text).
  if (body.format === 'csv' && options.spreadsheetSafe === undefined) options.spreadsheetSafe = true;
  return {
    format: body.format,
    mode: body.mode ?? 'raw',
    filters: body.filters ?? {},
    options,
    encoding: CURRENT_ENCODING,
  };
}

/** Which judgments: a project and its filters, or the frozen list of a snapshot. */
export type Selection = { projectId: string; filters: ExportFilters } | { snapshotId: string };

export const CONTENT_TYPES: Record<ExportFormat, string> = {
  trl: 'application/jsonl; charset=utf-8',
  'trl-conversational': 'application/jsonl; charset=utf-8',
  hh: 'application/jsonl; charset=utf-8',
  openrlhf: 'application/jsonl; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
  parquet: 'application/vnd.apache.parquet',
};

/** Formats with one chosen and one rejected response a row (ties and both-bad have no row). */
export function isPairwise(format: ExportFormat): boolean {
  return format !== 'csv' && format !== 'parquet';
}

export function extensionOf(format: ExportFormat): string {
  return format === 'csv' ? 'csv' : format === 'parquet' ? 'parquet' : 'jsonl';
}

/** A uuid that must be present: a missing id would otherwise select every project's rows. */
function requiredId(value: unknown, what: string): string {
  if (typeof value !== 'string' || !/^[0-9a-f-]{36}$/i.test(value)) throw new Error(`${what} is required`);
  return value;
}

const uuidList = (ids: readonly string[]) => Prisma.join(ids.map((id) => Prisma.sql`${id}::uuid`));

/** Only the joins the filters need: on millions of rows each unneeded join costs seconds. */
function fromSql(selection: Selection): Prisma.Sql {
  const f = 'filters' in selection ? selection.filters : {};
  const joins = [Prisma.sql`FROM "Preference" p JOIN "Comparison" c ON c.id = p."comparisonId"`];
  if (f.promptSplits?.length || f.split) joins.push(Prisma.sql`JOIN "Prompt" pr ON pr.id = c."promptId"`);
  if (f.policyVersionIds?.length)
    joins.push(Prisma.sql`JOIN "Response" ra ON ra.id = c."responseAId"
      JOIN "Response" rb ON rb.id = c."responseBId"`);
  if (f.excludeSimulated) joins.push(Prisma.sql`LEFT JOIN "User" u ON u.id = p."raterId"`);
  return Prisma.join(joins, ' ');
}

/** The WHERE conditions of a selection, before the agreement filter; every value is bound. */
function conditions(selection: Selection): Prisma.Sql[] {
  if ('snapshotId' in selection) {
    const snapshotId = requiredId(selection.snapshotId, 'snapshotId');
    return [
      Prisma.sql`p.id IN (SELECT "preferenceId" FROM "DatasetSnapshotItem" WHERE "snapshotId" = ${snapshotId}::uuid)`,
    ];
  }
  const projectId = requiredId(selection.projectId, 'projectId');
  const f = selection.filters;
  const where: Prisma.Sql[] = [Prisma.sql`c."projectId" = ${projectId}::uuid`];
  if (f.from !== undefined) where.push(Prisma.sql`p."createdAt" >= ${new Date(f.from)}`);
  if (f.to !== undefined) where.push(Prisma.sql`p."createdAt" < ${new Date(f.to)}`);
  if (f.roundIds?.length) where.push(Prisma.sql`c."roundId" IN (${uuidList(f.roundIds)})`);
  if (f.policyVersionIds?.length) {
    const ids = uuidList(f.policyVersionIds);
    where.push(Prisma.sql`(ra."policyVersionId" IN (${ids}) OR rb."policyVersionId" IN (${ids}))`);
  }
  if (f.excludeSimulated)
    where.push(Prisma.sql`p.source <> 'SIMULATED' AND NOT COALESCE(u.simulated, false)`);
  if (f.excludeImported) where.push(Prisma.sql`p.source <> 'IMPORTED'`);
  if (f.excludeGold) where.push(Prisma.sql`NOT c."isGold"`);
  if (f.promptSplits?.length) {
    where.push(
      Prisma.sql`pr.split::text IN (${Prisma.join(f.promptSplits.map((split) => Prisma.sql`${split}`))})`,
    );
  }
  if (f.minGoldAccuracy !== undefined) {
    // Raters below the bar on gold comparisons (raters who judged no gold stay in).
    where.push(Prisma.sql`(p."raterId" IS NULL OR p."raterId" NOT IN (
      SELECT gp."raterId" FROM "Preference" gp JOIN "Comparison" gc ON gc.id = gp."comparisonId"
      WHERE gc."projectId" = ${projectId}::uuid AND gc."isGold" AND gc."goldChoice" IS NOT NULL
        AND gp."raterId" IS NOT NULL
      GROUP BY gp."raterId"
      HAVING avg(CASE WHEN gp.choice = gc."goldChoice" THEN 1.0 ELSE 0.0 END) < ${f.minGoldAccuracy}))`);
  }
  if (f.split) {
    // A prompt's part depends only on the hash of its id (and the seed): no prompt is in both.
    const inValidation = Prisma.sql`(('x' || substr(md5(${f.split.seed ?? ''} || pr.id::text), 1, 8))::bit(32)::bigint / 4294967296.0) < ${f.split.validationFraction}`;
    where.push(f.split.part === 'validation' ? inValidation : Prisma.sql`NOT ${inValidation}`);
  }
  return where;
}

/**
 * FROM ... WHERE ... for the selected judgments. With minAgreement, only comparisons whose
 * majority share of the selected votes reaches it (whole comparisons in or out, so a snapshot
 * recomputes the same agreement from its frozen ids).
 */
export function selectionSql(selection: Selection): Prisma.Sql {
  const where = Prisma.join(conditions(selection), ' AND ');
  const from = fromSql(selection);
  const base = Prisma.sql`${from} WHERE ${where}`;
  const minAgreement = 'filters' in selection ? selection.filters.minAgreement : undefined;
  if (minAgreement === undefined) return base;
  return Prisma.sql`${base} AND p."comparisonId" IN (
    SELECT "comparisonId" FROM (SELECT p."comparisonId", p.choice, count(*) AS n ${base} GROUP BY 1, 2) votes
    GROUP BY 1 HAVING max(n)::float8 / sum(n) >= ${minAgreement})`;
}

/** The ids an export selects, for freezing into a snapshot. */
export function chosenIdsSql(selection: Selection): Prisma.Sql {
  return Prisma.sql`SELECT p.id ${selectionSql(selection)}`;
}

/**
 * Two ordered streams instead of one wide join: the judgments (narrow rows, by comparison) and
 * their comparisons with prompt and response texts (by id), merged in order. Texts cross the wire
 * once per comparison rather than once per vote, and PostgreSQL sorts narrow rows.
 */
function judgmentsSql(selection: Selection, pairwise: boolean): Prisma.Sql {
  // Pairwise formats (TRL, HH, OpenRLHF) show only the choice and its strength of each judgment;
  // the other columns come back empty rather than being read, formatted and parsed in vain.
  const detail = pairwise
    ? Prisma.sql`NULL, NULL, NULL, p.choice::text, p.strength, NULL, NULL, NULL, NULL, NULL, NULL`
    : Prisma.sql`p."raterId", p.source::text, p."importSource", p.choice::text, p.strength, p.criteria,
      p.flags, p.rationale, p."shownSwapped", p."timeSpentMs",
      to_char(p."createdAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
  return Prisma.sql`SELECT p.id, p."comparisonId", ${detail}
    ${selectionSql(selection)}
    ORDER BY p."comparisonId", p.id`;
}

/**
 * The comparisons of the selected judgments, in id order. For a large selection, every comparison
 * of the project instead (the merge passes over those without selected judgments): one scan
 * instead of a semi-join over all the judgments again.
 */
function comparisonsSql(selection: Selection, bulk: boolean): Prisma.Sql {
  let where = Prisma.sql`c.id IN (SELECT p."comparisonId" ${selectionSql(selection)})`;
  if (bulk)
    where =
      'projectId' in selection
        ? Prisma.sql`c."projectId" = ${requiredId(selection.projectId, 'projectId')}::uuid`
        : Prisma.sql`c."projectId" = (SELECT "projectId" FROM "DatasetSnapshot" WHERE id = ${requiredId(selection.snapshotId, 'snapshotId')}::uuid)`;
  return Prisma.sql`SELECT c.id, c."promptId", pr.messages, pr.split::text AS "promptSplit",
      ra.text AS "responseA", rb.text AS "responseB", ra.source AS "sourceA", rb.source AS "sourceB",
      pva.name AS "policyVersionA", pvb.name AS "policyVersionB", tr.number AS "roundNumber", c."isGold"
    FROM "Comparison" c
    JOIN "Prompt" pr ON pr.id = c."promptId"
    JOIN "Response" ra ON ra.id = c."responseAId"
    JOIN "Response" rb ON rb.id = c."responseBId"
    LEFT JOIN "PolicyVersion" pva ON pva.id = ra."policyVersionId"
    LEFT JOIN "PolicyVersion" pvb ON pvb.id = rb."policyVersionId"
    LEFT JOIN "TrainingRound" tr ON tr.id = c."roundId"
    WHERE ${where}
    ORDER BY c.id`;
}

/** Votes and the majority's share, set on every judgment of one comparison. */
function withVotes(group: JudgmentRow[]): JudgmentRow[] {
  const counts = new Map<Choice, number>();
  for (const row of group) counts.set(row.choice, (counts.get(row.choice) ?? 0) + 1);
  const agreement = Math.max(...counts.values()) / group.length;
  for (const row of group) {
    row.votes = group.length;
    row.agreement = agreement;
  }
  return group;
}

/** Just the number of judgments (for progress): no distinct counts, so no extra sorts. */
export async function countJudgments(prisma: PrismaClient, selection: Selection): Promise<number> {
  const [row] = await prisma.$queryRaw<{ n: number }[]>`SELECT count(*)::int AS n ${selectionSql(selection)}`;
  return row?.n ?? 0;
}

export async function countSelection(prisma: PrismaClient, selection: Selection) {
  const [row] = await prisma.$queryRaw<{ judgments: number; comparisons: number; prompts: number }[]>`
    SELECT count(*)::int AS judgments, count(DISTINCT p."comparisonId")::int AS comparisons,
      count(DISTINCT c."promptId")::int AS prompts
    ${selectionSql(selection)}`;
  return row ?? { judgments: 0, comparisons: 0, prompts: 0 };
}

/**
 * What pairwise files leave out because both responses of the comparison have the same text:
 * A and B judgments (raw rows), and comparisons whose majority is A or B (aggregated rows).
 */
export async function countIdentical(
  prisma: PrismaClient,
  selection: Selection,
): Promise<{ judgments: number; comparisons: number }> {
  // The project's comparisons of two equal texts first (one pass over its responses; usually
  // none), then the selected judgments of those alone: an empty list ends the query at once.
  const project =
    'projectId' in selection
      ? Prisma.sql`${requiredId(selection.projectId, 'projectId')}::uuid`
      : Prisma.sql`(SELECT "projectId" FROM "DatasetSnapshot" WHERE id = ${requiredId(selection.snapshotId, 'snapshotId')}::uuid)`;
  const rows = await prisma.$queryRaw<{ a: number; b: number; tie: number; bad: number }[]>`
    WITH twins AS MATERIALIZED (
      SELECT tc.id FROM "Comparison" tc
      JOIN "Response" xa ON xa.id = tc."responseAId"
      JOIN "Response" xb ON xb.id = tc."responseBId"
      WHERE tc."projectId" = ${project} AND xa.text = xb.text)
    SELECT count(*) FILTER (WHERE p.choice = 'A')::int AS a, count(*) FILTER (WHERE p.choice = 'B')::int AS b,
      count(*) FILTER (WHERE p.choice = 'TIE')::int AS tie,
      count(*) FILTER (WHERE p.choice = 'BOTH_BAD')::int AS bad
    ${selectionSql(selection)} AND p."comparisonId" IN (SELECT id FROM twins)
    GROUP BY p."comparisonId"`;
  let judgments = 0;
  let comparisons = 0;
  for (const row of rows) {
    judgments += row.a + row.b;
    const top = Math.max(row.a, row.b, row.tie, row.bad);
    const atTop = [row.a, row.b, row.tie, row.bad].filter((n) => n === top).length;
    if (atTop === 1 && (row.a === top || row.b === top)) comparisons++;
  }
  return { judgments, comparisons };
}

// --- Encoding ----------------------------------------------------------------------------------

/** Where the bytes go; resolves when the consumer can take more (backpressure). */
export type Sink = (chunk: Uint8Array) => Promise<void>;

interface Context {
  levels: number;
  rater: (raterId: string | null) => string | null;
}

const RAW_COLUMNS = [
  ['preference_id', 'STRING'],
  ['comparison_id', 'STRING'],
  ['prompt_id', 'STRING'],
  ['prompt', 'JSON'],
  ['prompt_split', 'STRING'],
  ['response_a', 'STRING'],
  ['response_b', 'STRING'],
  ['response_a_source', 'STRING'],
  ['response_b_source', 'STRING'],
  ['policy_version_a', 'STRING'],
  ['policy_version_b', 'STRING'],
  ['round', 'INT32'],
  ['is_gold', 'BOOLEAN'],
  ['rater', 'STRING'],
  ['source', 'STRING'],
  ['import_source', 'STRING'],
  ['choice', 'STRING'],
  ['chosen', 'STRING'],
  ['strength', 'INT32'],
  ['margin', 'INT32'],
  ['criteria', 'JSON'],
  ['flags', 'JSON'],
  ['rationale', 'STRING'],
  ['shown_swapped', 'BOOLEAN'],
  ['time_spent_ms', 'INT32'],
  ['created_at', 'STRING'],
  ['agreement', 'DOUBLE'],
  ['votes', 'INT32'],
] as const;

const AGGREGATED_COLUMNS = [
  ['comparison_id', 'STRING'],
  ['prompt_id', 'STRING'],
  ['prompt', 'JSON'],
  ['prompt_split', 'STRING'],
  ['response_a', 'STRING'],
  ['response_b', 'STRING'],
  ['response_a_source', 'STRING'],
  ['response_b_source', 'STRING'],
  ['policy_version_a', 'STRING'],
  ['policy_version_b', 'STRING'],
  ['round', 'INT32'],
  ['is_gold', 'BOOLEAN'],
  ['majority', 'STRING'],
  ['chosen', 'STRING'],
  ['votes', 'INT32'],
  ['votes_a', 'INT32'],
  ['votes_b', 'INT32'],
  ['votes_tie', 'INT32'],
  ['votes_both_bad', 'INT32'],
  ['agreement', 'DOUBLE'],
  ['margin', 'DOUBLE'],
  ['raters', 'JSON'],
] as const;

type Columns = typeof RAW_COLUMNS | typeof AGGREGATED_COLUMNS;

const chosenOf = (choice: Choice | null) => (choice === 'A' || choice === 'B' ? choice : null);

function rawRecord(row: JudgmentRow, context: Context): unknown[] {
  return [
    row.id,
    row.comparisonId,
    row.promptId,
    row.messages,
    row.promptSplit,
    row.responseA,
    row.responseB,
    row.sourceA,
    row.sourceB,
    row.policyVersionA,
    row.policyVersionB,
    row.roundNumber,
    row.isGold,
    context.rater(row.raterId),
    row.source,
    row.importSource,
    row.choice,
    chosenOf(row.choice),
    row.strength,
    marginOf(row.strength, context.levels),
    row.criteria,
    row.flags,
    row.rationale,
    row.shownSwapped,
    row.timeSpentMs,
    row.createdAt,
    row.agreement,
    row.votes,
  ];
}

/** One comparison's votes: the majority over all four choices (null when the top is shared). */
export function aggregate(group: readonly JudgmentRow[], context: Context) {
  const first = group[0]!;
  const verdict = majority(group.map((row) => row.choice));
  const counts = { A: 0, B: 0, TIE: 0, BOTH_BAD: 0 };
  for (const row of group) counts[row.choice]++;
  // The margin of the majority's own votes, averaged (unknown strengths left out).
  const margins = group
    .filter((row) => row.choice === verdict)
    .map((row) => marginOf(row.strength, context.levels))
    .filter((margin): margin is number => margin !== null);
  const margin = margins.length ? margins.reduce((sum, value) => sum + value, 0) / margins.length : null;
  const top = Math.max(...Object.values(counts));
  return { first, verdict, counts, margin, agreement: top / group.length };
}

function aggregatedRecord(group: readonly JudgmentRow[], context: Context): unknown[] {
  const { first, verdict, counts, margin, agreement } = aggregate(group, context);
  return [
    first.comparisonId,
    first.promptId,
    first.messages,
    first.promptSplit,
    first.responseA,
    first.responseB,
    first.sourceA,
    first.sourceB,
    first.policyVersionA,
    first.policyVersionB,
    first.roundNumber,
    first.isGold,
    verdict,
    chosenOf(verdict),
    group.length,
    counts.A,
    counts.B,
    counts.TIE,
    counts.BOTH_BAD,
    agreement,
    margin,
    group.map((row) => context.rater(row.raterId)),
  ];
}

interface Encoder {
  /** Rows of one or more whole units (a judgment, or all judgments of a comparison). */
  push(units: readonly (readonly JudgmentRow[])[]): Promise<void>;
  end(): Promise<void>;
  rows: number;
  /** Pairs left out because both responses have the same text. */
  identical: number;
}

function pairOfUnit(unit: readonly JudgmentRow[], spec: ExportSpec, context: Context): Pair | null {
  const first = unit[0]!;
  if (spec.mode === 'raw')
    return pairOfChoice(
      first.choice,
      first.messages,
      first.responseA,
      first.responseB,
      marginOf(first.strength, context.levels),
    );
  const { verdict, margin } = aggregate(unit, context);
  return pairOfChoice(verdict, first.messages, first.responseA, first.responseB, margin);
}

/**
 * JSON Lines and CSV. A pairwise line depends only on the comparison, the verdict and the margin,
 * so the votes of one comparison share a few encoded lines; CSV rows share their long fields.
 */
function lineEncoder(spec: ExportSpec, context: Context, sink: Sink): Encoder {
  const columns: Columns = spec.mode === 'raw' ? RAW_COLUMNS : AGGREGATED_COLUMNS;
  const header = () => Buffer.from(csvLine(columns.map(([name]) => name)));
  let headerWritten = false;
  let unitComparison = '';
  const lines = new Map<string, Buffer>();
  const fields = new Map<unknown, string>();
  const safe = spec.options.spreadsheetSafe ?? false;
  const csvCell = (value: unknown) => {
    if (typeof value !== 'object' && (typeof value !== 'string' || value.length < 64))
      return csvField(value, safe);
    let field = fields.get(value);
    if (field === undefined) fields.set(value, (field = csvField(value, safe)));
    return field;
  };
  const state: Encoder = {
    rows: 0,
    identical: 0,
    async push(units) {
      const chunks: Buffer[] = [];
      if (spec.format === 'csv' && !headerWritten) {
        chunks.push(header());
        headerWritten = true;
      }
      let text = '';
      for (const unit of units) {
        const first = unit[0]!;
        if (first.comparisonId !== unitComparison) {
          unitComparison = first.comparisonId;
          lines.clear();
          fields.clear();
        }
        if (spec.format === 'csv') {
          const record = spec.mode === 'raw' ? rawRecord(first, context) : aggregatedRecord(unit, context);
          text += record.map(csvCell).join(',') + '\r\n';
          state.rows++;
          continue;
        }
        // Ties and both-bad (and comparisons without a strict majority) have no chosen response.
        const pair = pairOfUnit(unit, spec, context);
        if (!pair) continue;
        // Two responses with the same text teach nothing and read as chosen == rejected, which
        // trainers and importers refuse: left out, and counted.
        if (spec.encoding >= 2 && pair.chosen === pair.rejected) {
          state.identical++;
          continue;
        }
        const key = `${pair.chosen === first.responseA ? 'A' : 'B'}${pair.margin}`;
        let line = lines.get(key);
        if (!line) {
          line = Buffer.from(JSON.stringify(pairRow(spec.format, pair, spec.options, spec.encoding)) + '\n');
          lines.set(key, line);
        }
        chunks.push(line);
        state.rows++;
      }
      if (text) chunks.push(Buffer.from(text));
      if (chunks.length) await sink(Buffer.concat(chunks));
    },
    async end() {
      if (spec.format === 'csv' && !headerWritten) await sink(header());
    },
  };
  return state;
}

/** hyparquet-writer's ByteWriter, flushed to the sink after each row group (offsets stay absolute). */
class SinkWriter extends ByteWriter {
  constructor(private readonly sink: Sink) {
    super(1 << 20);
  }
  flush(): Promise<void> {
    const chunk = new Uint8Array(this.buffer, 0, this.index).slice();
    this.index = 0;
    return chunk.length ? this.sink(chunk) : Promise.resolve();
  }
  override finish(): void {}
}

const PARQUET_GROUP = 20_000;

function parquetEncoder(spec: ExportSpec, context: Context, sink: Sink): Encoder {
  const columns: Columns = spec.mode === 'raw' ? RAW_COLUMNS : AGGREGATED_COLUMNS;
  const writer = new SinkWriter(sink);
  const schema: SchemaElement[] = [
    { name: 'root', num_children: columns.length },
    ...columns.map(([name, type]): SchemaElement => {
      const element: SchemaElement =
        type === 'STRING'
          ? { name, type: 'BYTE_ARRAY', converted_type: 'UTF8' }
          : type === 'JSON'
            ? { name, type: 'BYTE_ARRAY', converted_type: 'JSON' }
            : { name, type };
      return { ...element, repetition_type: 'OPTIONAL' };
    }),
  ];
  // Fixed createdBy and no clock: the same rows give the same bytes (snapshots rely on it).
  const parquet = new ParquetWriter({ writer, schema, createdBy: 'loom', statistics: false });
  let buffered: unknown[][] = [];
  const flushGroup = async () => {
    if (!buffered.length) return;
    const columnData: ColumnSource[] = columns.map(([name, type], index) => ({
      name,
      data: buffered.map((record) => {
        const value = record[index];
        if (value === undefined || value === null) return null;
        return type === 'JSON' ? JSON.stringify(value) : value;
      }),
    }));
    buffered = [];
    await parquet.write({ columnData, rowGroupSize: PARQUET_GROUP });
    await writer.flush();
  };
  const state: Encoder = {
    rows: 0,
    identical: 0,
    async push(units) {
      for (const unit of units) {
        buffered.push(spec.mode === 'raw' ? rawRecord(unit[0]!, context) : aggregatedRecord(unit, context));
        state.rows++;
      }
      if (buffered.length >= PARQUET_GROUP) await flushGroup();
    },
    async end() {
      await flushGroup();
      await parquet.finish();
      await writer.flush();
    },
  };
  return state;
}

// --- Running an export -----------------------------------------------------------------------------

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

/** The pseudonym of a rater: stable for one server secret, unlinkable without it. */
export function pseudonym(secret: string, raterId: string): string {
  return 'r_' + createHmac('sha256', secret).update(`rater:${raterId}`).digest('hex').slice(0, 16);
}

/** The planner's estimate of a query's rows (EXPLAIN, nothing is run). */
async function estimatedRows(client: pg.PoolClient, query: Prisma.Sql): Promise<number> {
  const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>({
    text: `EXPLAIN (FORMAT JSON) ${query.text}`,
    values: query.values,
  });
  return rows[0]?.['QUERY PLAN'][0].Plan['Plan Rows'] ?? 0;
}

/**
 * Column order of judgmentsSql and comparisonsSql (rows are fetched as arrays). In pairwise exports
 * a judgment's columns other than its ids, choice and strength are null (and never read).
 */
type JudgmentTuple = [
  string,
  string,
  string | null,
  string,
  string | null,
  Choice,
  number | null,
  unknown,
  string[],
  string | null,
  boolean,
  number | null,
  string,
];
type ComparisonTuple = [
  string,
  string,
  Message[],
  string,
  string,
  string,
  string | null,
  string | null,
  string | null,
  string | null,
  number | null,
  boolean,
];

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
  const encode =
    spec.format === 'parquet' ? parquetEncoder(spec, context, counted) : lineEncoder(spec, context, counted);
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
    const judgmentsQuery = judgmentsSql(selection, spec.format !== 'csv' && spec.format !== 'parquet');
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
    const fetch = <T>(cursor: string, rows: number) => {
      // The first FETCH sorts the whole selection, within the statement timeout set above
      // (node-postgres reads query_timeout per query; its types leave it out).
      const config = {
        text: `FETCH ${rows} FROM ${cursor}`,
        rowMode: 'array' as const,
        query_timeout: EXPORT_STATEMENT_TIMEOUT_MS + READ_TIMEOUT_MARGIN_MS,
      };
      return client.query<T & unknown[]>(config);
    };

    let comparisons: ComparisonTuple[] = [];
    let next = 0;
    // Both cursors run in the same order, and every selected judgment has its comparison.
    const comparisonOf = async (id: string): Promise<ComparisonTuple> => {
      for (;;) {
        if (next >= comparisons.length) {
          comparisons = (await fetch<ComparisonTuple>('loom_comparisons', COMPARISON_BATCH)).rows;
          next = 0;
          if (comparisons.length === 0) throw new Error(`comparison ${id} missing from the export`);
        }
        const candidate = comparisons[next]!;
        if (candidate[0] === id) return candidate;
        next++;
      }
    };
    let pending: JudgmentRow[] = [];
    let current: ComparisonTuple | null = null;
    // The next batch is requested before this one is encoded, so PostgreSQL and this process
    // work at the same time (the driver runs the connection's queries in the order issued).
    const fetchJudgments = () => {
      const batch = fetch<JudgmentTuple>('loom_judgments', BATCH);
      batch.catch(() => {}); // awaited below; this only keeps an abandoned batch from going unhandled
      return batch;
    };
    let nextBatch = fetchJudgments();
    for (;;) {
      if (run.aborted?.()) throw new ExportAborted('The export was cancelled.');
      const fetched = (await nextBatch).rows;
      if (fetched.length === BATCH) nextBatch = fetchJudgments();
      judgments += fetched.length;
      // A comparison's votes are adjacent; the last group may continue in the next batch, so it
      // waits. Raw rows go out one unit per judgment, aggregated ones one unit per comparison.
      const groups: JudgmentRow[][] = [];
      for (const part of fetched) {
        const comparisonId = part[1];
        if (pending.length && pending[0]!.comparisonId !== comparisonId) {
          groups.push(withVotes(pending));
          pending = [];
        }
        if (current?.[0] !== comparisonId) current = await comparisonOf(comparisonId);
        // One literal with every field: a single object shape, cheap to make and to collect.
        pending.push({
          id: part[0],
          comparisonId,
          promptId: current[1],
          raterId: part[2],
          source: part[3],
          importSource: part[4],
          choice: part[5],
          strength: part[6],
          criteria: part[7],
          flags: part[8],
          rationale: part[9],
          shownSwapped: part[10],
          timeSpentMs: part[11],
          createdAt: part[12],
          messages: current[2],
          promptSplit: current[3],
          responseA: current[4],
          responseB: current[5],
          sourceA: current[6],
          sourceB: current[7],
          policyVersionA: current[8],
          policyVersionB: current[9],
          roundNumber: current[10],
          isGold: current[11],
          agreement: 0,
          votes: 0,
        });
      }
      if (fetched.length < BATCH && pending.length) {
        groups.push(withVotes(pending));
        pending = [];
      }
      const units = spec.mode === 'raw' ? groups.flatMap((group) => group.map((row) => [row])) : groups;
      if (units.length) await encode.push(units);
      run.progress?.(judgments);
      if (fetched.length < BATCH) break;
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

/** A file name safe in Content-Disposition and on any file system. */
export function safeFileName(stem: string, format: ExportFormat): string {
  const clean = stem
    .normalize('NFKD')
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/\.{2,}/g, '.')
    .replace(/^[-.]+|[-.]+$/g, '')
    .slice(0, 100);
  const name = `${clean || 'export'}.${extensionOf(format)}`;
  if (name.includes('..') || name.includes('/') || name.includes('\\')) throw badRequest('Unsafe file name.');
  return name;
}
