// How an export's rows are written: the export's spec (format, mode, options, encoding), and one
// encoder per kind of file (JSON Lines and CSV, Parquet) that takes whole comparisons' judgments
// batch by batch and writes bytes into a sink. The rows of each format are in export-formats.ts.
import { createHmac } from 'node:crypto';
import { ByteWriter, ParquetWriter, type ColumnSource, type SchemaElement } from 'hyparquet-writer';
import type { Choice } from '../db/client.js';
import { badRequest } from '../errors.js';
import type { ExportBody, ExportFilters, ExportFormat, ExportOptions } from '../schemas/datasets.js';
import { csvField, csvLine, marginOf, pairOfChoice, pairRow, type Pair } from './export-formats.js';
import type { JudgmentRow } from './export-merge.js';
import { majority } from './quality.js';

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

/**
 * The encoding of every new export and snapshot. 3: CSV and Parquet rows have a from_ranking
 * column (the ranking a pair comes from).
 */
export const CURRENT_ENCODING = 3;

/** A request's export, its defaults made explicit (a snapshot stores them as they were). */
export function specOf(body: ExportBody): ExportSpec {
  if (body.format === 'ranking' && body.mode === 'aggregated')
    throw badRequest('The ranking format has one row per ranking judgment: use mode "raw".');
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

export const CONTENT_TYPES: Record<ExportFormat, string> = {
  trl: 'application/jsonl; charset=utf-8',
  'trl-conversational': 'application/jsonl; charset=utf-8',
  hh: 'application/jsonl; charset=utf-8',
  openrlhf: 'application/jsonl; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
  parquet: 'application/vnd.apache.parquet',
  ranking: 'application/jsonl; charset=utf-8',
};

/** Formats with one chosen and one rejected response a row (ties and both-bad have no row). */
export function isPairwise(format: ExportFormat): boolean {
  return format !== 'csv' && format !== 'parquet' && format !== 'ranking';
}

export function extensionOf(format: ExportFormat): string {
  return format === 'csv' ? 'csv' : format === 'parquet' ? 'parquet' : 'jsonl';
}

/** Where the bytes go; resolves when the consumer can take more (backpressure). */
export type Sink = (chunk: Uint8Array) => Promise<void>;

export interface Context {
  levels: number;
  rater: (raterId: string | null) => string | null;
  /** Reliability-weighted verdicts: each comparison's posterior over A, B and no preference. */
  outcomes?: Map<string, Record<'A' | 'B' | 'TIE', number>>;
}

/**
 * The most probable outcome under the reliability model; its "no preference" is TIE or BOTH_BAD,
 * whichever the comparison's votes gave more often (TIE when even).
 */
function weightedVerdict(group: readonly JudgmentRow[], outcome: Record<'A' | 'B' | 'TIE', number>): Choice {
  if (outcome.A > outcome.B && outcome.A > outcome.TIE) return 'A';
  if (outcome.B > outcome.A && outcome.B > outcome.TIE) return 'B';
  const bothBad = group.filter((row) => row.choice === 'BOTH_BAD').length;
  const ties = group.filter((row) => row.choice === 'TIE').length;
  return bothBad > ties ? 'BOTH_BAD' : 'TIE';
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
  ['from_ranking', 'STRING'],
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
  ['from_ranking', 'STRING'],
] as const;

type Columns = typeof RAW_COLUMNS | typeof AGGREGATED_COLUMNS;

/** The columns of a spec's CSV or Parquet rows (from_ranking from encoding 3 on). */
function columnsOf(spec: ExportSpec): readonly Columns[number][] {
  const columns: Columns = spec.mode === 'raw' ? RAW_COLUMNS : AGGREGATED_COLUMNS;
  return spec.encoding >= 3 ? columns : columns.slice(0, -1);
}

/** A record cut to the spec's columns (older encodings lack the last). */
function fitted(record: unknown[], spec: ExportSpec): unknown[] {
  return spec.encoding >= 3 ? record : record.slice(0, -1);
}

/**
 * A ranking judgment as one row: its responses best first (ties in stored order), each with its
 * rank, and who ranked them.
 */
function rankingRecord(row: JudgmentRow, context: Context): Record<string, unknown> {
  const ranked = row.ranked!;
  const order = ranked.ids.map((_, i) => i).sort((a, b) => row.ranks[a]! - row.ranks[b]! || a - b);
  return {
    ranking_id: row.id,
    comparison_id: row.comparisonId,
    prompt_id: row.promptId,
    prompt: row.messages,
    responses: order.map((i) => ({
      id: ranked.ids[i],
      text: ranked.texts[i],
      rank: row.ranks[i],
      source: ranked.sources[i],
      policy_version: ranked.versions[i],
    })),
    rater: context.rater(row.raterId),
    source: row.source,
    flags: row.flags,
    rationale: row.rationale,
    time_spent_ms: row.timeSpentMs,
    created_at: row.createdAt,
  };
}

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
    row.fromRanking,
  ];
}

/** One comparison's votes: the majority over all four choices (null when the top is shared). */
export function aggregate(group: readonly JudgmentRow[], context: Context) {
  const first = group[0]!;
  const outcome = context.outcomes?.get(first.comparisonId);
  const verdict = outcome ? weightedVerdict(group, outcome) : majority(group.map((row) => row.choice));
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
    first.fromRanking,
  ];
}

export interface Encoder {
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
  const columns = columnsOf(spec);
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
          text += fitted(record, spec).map(csvCell).join(',') + '\r\n';
          state.rows++;
          continue;
        }
        if (spec.format === 'ranking') {
          // Rankings only: a pair's judgment has no order of K responses.
          if (!first.ranked || first.ranks.length === 0) continue;
          text += JSON.stringify(rankingRecord(first, context)) + '\n';
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
          const row = pairRow(spec.format, pair, spec.options, spec.encoding);
          // A pair of a ranking says so (rows of pairs judged as pairs are as they always were).
          if (first.fromRanking) row.from_ranking = first.fromRanking;
          line = Buffer.from(JSON.stringify(row) + '\n');
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
  const columns = columnsOf(spec);
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
        buffered.push(
          fitted(spec.mode === 'raw' ? rawRecord(unit[0]!, context) : aggregatedRecord(unit, context), spec),
        );
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

/** The encoder of the spec's format. */
export function encoderFor(spec: ExportSpec, context: Context, sink: Sink): Encoder {
  return spec.format === 'parquet' ? parquetEncoder(spec, context, sink) : lineEncoder(spec, context, sink);
}

/** The pseudonym of a rater: stable for one server secret, unlinkable without it. */
export function pseudonym(secret: string, raterId: string): string {
  return 'r_' + createHmac('sha256', secret).update(`rater:${raterId}`).digest('hex').slice(0, 16);
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
