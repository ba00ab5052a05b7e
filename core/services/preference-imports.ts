// Imports existing preference data sets (TRL JSONL standard or conversational, explicit or implicit
// prompt; HH-RLHF transcripts; CSV; rankings of K responses) as prompts, responses, comparisons and
// IMPORTED judgments. Bad
// rows are reported by line and kind, then skipped or the whole file refused; storing is one
// transaction, so a file is never half-imported.
import { parse as parseCsv } from 'csv-parse/sync';
import type { PrismaClient } from '../db/client.js';
import { HttpError } from '../errors.js';
import { MAX_RANK_SIZE, MIN_RANK_SIZE } from '../ranking/rankings.js';
import { unstorableText } from '../unstorable.js';
import type { PreferenceImportBody, PreferenceImportReport } from '../schemas/datasets.js';
import type { ImportLineError } from '../schemas/projects.js';
import {
  extractPromptTrl,
  messagesOfTranscript,
  splitHhPair,
  strengthOf,
  type Message,
} from './export-formats.js';
import { csvRecords, textLines, type ImportContent } from './import-source.js';
import { auditInTransaction, inImportTransaction, PreferenceWriter } from './preference-store.js';
import { labelSchemaOf } from './project-settings.js';
import type { Actor } from './users.js';

const MAX_TEXT = 100_000;
const MAX_ROWS = 500_000;
const ROLES = new Set(['system', 'user', 'assistant']);

export type ErrorKind = 'unparsable' | 'invalid' | 'empty-response' | 'chosen-equals-rejected';

class RowError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
  ) {
    super(message);
  }
}

export interface ParsedPair {
  line: number;
  messages: Message[];
  chosen: string;
  rejected: string;
  margin: unknown;
}

/** A ranking row: K responses (distinct texts) and the rank of each, 1 = best. */
export interface ParsedRanking {
  line: number;
  messages: Message[];
  texts: string[];
  ranks: number[];
}

/**
 * A ranking row, as the ranking export writes it: `prompt` (a string or messages) and `responses`,
 * best first, each a string or `{text, rank?}` (equal ranks tie; without ranks, the order is the
 * ranking).
 */
export function rankingOfRow(row: Record<string, unknown>, line: number): ParsedRanking {
  const { prompt, responses } = row;
  if (prompt === undefined) throw new RowError('invalid', 'a ranking row needs a prompt');
  const messages =
    typeof prompt === 'string'
      ? promptMessages(checkedText(prompt, 'prompt'))
      : checkedMessages(prompt, 'prompt');
  if (messages.length === 0 || messages.every((message) => message.content.trim() === ''))
    throw new RowError('invalid', 'the prompt is empty');
  if (!Array.isArray(responses) || responses.length < MIN_RANK_SIZE || responses.length > MAX_RANK_SIZE)
    throw new RowError(
      'invalid',
      `responses must be a list of ${MIN_RANK_SIZE} to ${MAX_RANK_SIZE} responses, best first`,
    );
  const texts: string[] = [];
  const ranks: number[] = [];
  responses.forEach((response: unknown, i) => {
    const what = `responses[${i}]`;
    if (typeof response === 'string') {
      texts.push(checkedText(response, what));
      ranks.push(i + 1);
      return;
    }
    if (typeof response !== 'object' || response === null)
      throw new RowError('invalid', `${what} must be a string or {text, rank}`);
    const { text, rank } = response as Record<string, unknown>;
    texts.push(checkedText(text, `${what}.text`));
    if (rank === undefined) ranks.push(i + 1);
    else if (typeof rank === 'number' && Number.isInteger(rank) && rank >= 1 && rank <= responses.length)
      ranks.push(rank);
    else throw new RowError('invalid', `${what}.rank must be a whole number from 1 to ${responses.length}`);
  });
  if (texts.some((text) => text.trim() === '')) throw new RowError('empty-response', 'a response is empty');
  if (new Set(texts).size < texts.length)
    throw new RowError('chosen-equals-rejected', 'two responses of the ranking have the same text');
  if (ranks.some((rank, i) => i > 0 && rank < ranks[i - 1]!))
    throw new RowError('invalid', 'responses must be listed best first (ranks in order)');
  return { line, messages, texts, ranks };
}

function checkedText(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new RowError('invalid', `${what} must be a string`);
  if (value.length > MAX_TEXT) throw new RowError('invalid', `${what} is longer than ${MAX_TEXT} characters`);
  return value;
}

function checkedMessages(value: unknown, what: string): Message[] {
  if (!Array.isArray(value)) throw new RowError('invalid', `${what} must be a list of messages`);
  return value.map((message, index) => {
    if (typeof message !== 'object' || message === null)
      throw new RowError('invalid', `${what}[${index}] must be an object`);
    const { role, content } = message as Record<string, unknown>;
    if (typeof role !== 'string' || !ROLES.has(role))
      throw new RowError('invalid', `${what}[${index}].role must be system, user or assistant`);
    return { role, content: checkedText(content, `${what}[${index}].content`) };
  });
}

/**
 * A prompt string as messages: an HH-style transcript ending in "\n\nAssistant:" (how exports
 * write prompts in string formats; a system message is leading text) becomes its turns; any other
 * string is one user turn.
 */
export function promptMessages(prompt: string): Message[] {
  if (prompt.includes('\n\nHuman:') && prompt.endsWith('\n\nAssistant:'))
    return messagesOfTranscript(prompt.slice(0, -'\n\nAssistant:'.length));
  return [{ role: 'user', content: prompt }];
}

/** A completion without the one space that separates it from the prompt. */
function withoutSeparator(completion: string): string {
  return completion.startsWith(' ') ? completion.slice(1) : completion;
}

function assistantText(messages: Message[], what: string): string {
  if (messages.length !== 1 || messages[0]!.role !== 'assistant')
    throw new RowError('invalid', `${what} must be one assistant message after the prompt`);
  return messages[0]!.content;
}

/** A TRL row (standard or conversational, explicit or implicit prompt) as a pair. */
export function pairOfTrlRow(row: Record<string, unknown>, line: number): ParsedPair {
  const { chosen, rejected, prompt, margin } = row;
  if (chosen === undefined || rejected === undefined)
    throw new RowError('invalid', 'a row needs chosen and rejected');
  if (typeof chosen === 'string' || typeof rejected === 'string') {
    let c = checkedText(chosen, 'chosen');
    let r = checkedText(rejected, 'rejected');
    let p: string;
    if (prompt !== undefined) {
      p = checkedText(prompt, 'prompt');
      // The separator a completion starts with (TRL's " blue.", Loom's own exports) is not part
      // of the response: prompt + chosen is the text, the response what follows the space.
      [c, r] = [withoutSeparator(c), withoutSeparator(r)];
    } else {
      if (c === '' || r === '') throw new RowError('empty-response', 'chosen or rejected is empty');
      if (c === r) throw new RowError('chosen-equals-rejected', 'chosen equals rejected');
      // An HH transcript splits at its last shared "\n\nAssistant:", even when the two answers
      // start alike; any other text by TRL's rule, whose space goes to the completions.
      const hh = c.includes('\n\nHuman:') ? splitHhPair(c, r) : null;
      if (hh) ({ prompt: p, chosen: c, rejected: r } = { ...hh, prompt: `${hh.prompt}\n\nAssistant:` });
      else {
        ({ prompt: p, chosen: c, rejected: r } = extractPromptTrl(c, r));
        if (c.startsWith(' ') && r.startsWith(' ')) [c, r] = [c.slice(1), r.slice(1)];
      }
    }
    if (p.trim() === '') throw new RowError('invalid', 'the prompt is empty');
    return { line, messages: promptMessages(p), chosen: c, rejected: r, margin };
  }
  let c = checkedMessages(chosen, 'chosen');
  let r = checkedMessages(rejected, 'rejected');
  let p: Message[];
  if (prompt !== undefined) p = checkedMessages(prompt, 'prompt');
  else {
    if (c.length === 0 || r.length === 0) throw new RowError('empty-response', 'chosen or rejected is empty');
    if (JSON.stringify(c) === JSON.stringify(r))
      throw new RowError('chosen-equals-rejected', 'chosen equals rejected');
    ({ prompt: p, chosen: c, rejected: r } = extractPromptTrl(c, r));
  }
  if (p.length === 0) throw new RowError('invalid', 'the prompt is empty');
  return {
    line,
    messages: p,
    chosen: assistantText(c, 'chosen'),
    rejected: assistantText(r, 'rejected'),
    margin,
  };
}

/** An HH-RLHF row: two full transcripts that share everything up to the last assistant turn. */
export function pairOfHhRow(row: Record<string, unknown>, line: number): ParsedPair {
  const pair = splitHhPair(checkedText(row.chosen, 'chosen'), checkedText(row.rejected, 'rejected'));
  if (!pair) throw new RowError('invalid', 'chosen and rejected share no "\\n\\nAssistant:" turn');
  const messages = messagesOfTranscript(pair.prompt);
  if (messages.length === 0) throw new RowError('invalid', 'the conversation is empty');
  return { line, messages, chosen: pair.chosen, rejected: pair.rejected, margin: undefined };
}

/** Checks shared by every format, after parsing. */
function checkPair(pair: ParsedPair): ParsedPair {
  if (pair.chosen.trim() === '' || pair.rejected.trim() === '')
    throw new RowError(
      'empty-response',
      `${pair.chosen.trim() === '' ? 'chosen' : 'rejected'} response is empty`,
    );
  if (pair.chosen === pair.rejected) throw new RowError('chosen-equals-rejected', 'chosen equals rejected');
  if (pair.messages.some((message) => message.content.trim() === ''))
    throw new RowError('invalid', 'a prompt message is empty');
  return pair;
}

/** Text PostgreSQL cannot store, in a parsed pair: the row is invalid (not a 500 at the end). */
function checkStorable(pair: ParsedPair): ParsedPair {
  const texts: [string, string][] = [
    ['chosen', pair.chosen],
    ['rejected', pair.rejected],
    ...pair.messages.map(
      (message, index) => [`prompt message ${index + 1}`, message.content] as [string, string],
    ),
  ];
  for (const [what, text] of texts) {
    const problem = unstorableText(text);
    if (problem) throw new RowError('invalid', `${what} ${problem}`);
  }
  return pair;
}

/** A JSON Lines row as an object (a row error otherwise). */
function jsonObject(raw: string): Record<string, unknown> {
  let row: unknown;
  try {
    row = JSON.parse(raw);
  } catch (error) {
    throw new RowError('unparsable', `not valid JSON (${(error as Error).message})`);
  }
  if (typeof row !== 'object' || row === null || Array.isArray(row))
    throw new RowError('unparsable', 'each line must be a JSON object');
  return row as Record<string, unknown>;
}

function jsonlPair(format: PreferenceImportBody['format'], raw: string, line: number): ParsedPair {
  const row = jsonObject(raw);
  return format === 'hh' ? pairOfHhRow(row, line) : pairOfTrlRow(row, line);
}

function csvPair(record: Record<string, string>, line: number): ParsedPair {
  const row: Record<string, unknown> = { chosen: record.chosen, rejected: record.rejected };
  if (record.prompt !== undefined && record.prompt !== '') row.prompt = record.prompt;
  if (record.margin !== undefined && record.margin !== '') row.margin = Number(record.margin);
  return pairOfTrlRow(row, line);
}

function csvHeaderError(column: string): HttpError {
  return new HttpError(400, `The CSV header needs a "${column}" column.`, 'IMPORT_INVALID', {
    errors: [{ line: 1, message: `missing column ${column}` }],
  });
}

type RowResult =
  | { line: number; pair: ParsedPair }
  | { line: number; ranking: ParsedRanking }
  | { line: number; error: RowError };

function rowResult(line: number, parse: () => ParsedPair, problem?: string): RowResult {
  try {
    if (problem) throw new RowError('invalid', problem);
    return { line, pair: checkStorable(checkPair(parse())) };
  } catch (error) {
    if (!(error instanceof RowError)) throw error;
    return { line, error };
  }
}

function rankingResult(line: number, text: string, problem?: string): RowResult {
  try {
    if (problem) throw new RowError('invalid', problem);
    const ranking = rankingOfRow(jsonObject(text), line);
    for (const [i, response] of ranking.texts.entries()) {
      const unstorable = unstorableText(response);
      if (unstorable) throw new RowError('invalid', `responses[${i}] ${unstorable}`);
    }
    for (const [i, message] of ranking.messages.entries()) {
      const unstorable = unstorableText(message.content);
      if (unstorable) throw new RowError('invalid', `prompt message ${i + 1} ${unstorable}`);
    }
    return { line, ranking };
  } catch (error) {
    if (!(error instanceof RowError)) throw error;
    return { line, error };
  }
}

/** The rows of a preference file as they are read (a line or a CSV record at a time), checked. */
export async function* preferenceRows(
  format: PreferenceImportBody['format'],
  content: ImportContent,
): AsyncGenerator<RowResult> {
  const problems = typeof content === 'string' ? undefined : content.lineProblems;
  if (format === 'csv') {
    let checkedHeader = false;
    for await (const { record, info } of csvRecords(
      content,
      { skip_empty_lines: true, bom: true },
      MAX_ROWS,
    )) {
      if (!checkedHeader) {
        for (const column of ['chosen', 'rejected']) if (!(column in record)) throw csvHeaderError(column);
        checkedHeader = true;
      }
      yield rowResult(info.lines, () => csvPair(record, info.lines), problems?.get(info.lines));
    }
    return;
  }
  for await (const { line, text } of textLines(content, MAX_ROWS)) {
    if (text.trim() === '') continue;
    yield format === 'ranking'
      ? rankingResult(line, text, problems?.get(line))
      : rowResult(line, () => jsonlPair(format, text, line), problems?.get(line));
  }
}

/** A whole file in memory, parsed at once (tests and small files; imports stream instead). */
export function parsePreferenceFile(format: PreferenceImportBody['format'], content: string) {
  const pairs: ParsedPair[] = [];
  const rankings: ParsedRanking[] = [];
  const errors: (ImportLineError & { kind: ErrorKind })[] = [];
  let lines = 0;
  const take = (result: RowResult) => {
    lines++;
    if ('pair' in result) pairs.push(result.pair);
    else if ('ranking' in result) rankings.push(result.ranking);
    else errors.push({ line: result.line, message: result.error.message, kind: result.error.kind });
  };
  if (format === 'csv') {
    let records: { record: Record<string, string>; info: { lines: number } }[];
    try {
      records = parseCsv(content, { columns: true, info: true, skip_empty_lines: true, bom: true }) as never;
    } catch (error) {
      throw new HttpError(400, `The CSV file cannot be read: ${(error as Error).message}`, 'IMPORT_INVALID', {
        errors: [{ line: (error as { lines?: number }).lines ?? 1, message: (error as Error).message }],
      });
    }
    const header = records[0] ? Object.keys(records[0].record) : [];
    for (const column of ['chosen', 'rejected'])
      if (records.length && !header.includes(column)) throw csvHeaderError(column);
    if (records.length > MAX_ROWS)
      throw new HttpError(413, `The file has more than ${MAX_ROWS} rows; split it.`);
    for (const { record, info } of records) take(rowResult(info.lines, () => csvPair(record, info.lines)));
    return { pairs, rankings, errors, lines };
  }
  const rows = content.split(/\r?\n/);
  if (rows.length > MAX_ROWS) throw new HttpError(413, `The file has more than ${MAX_ROWS} lines; split it.`);
  rows.forEach((raw, index) => {
    if (raw.trim() === '') return;
    take(
      format === 'ranking'
        ? rankingResult(index + 1, raw)
        : rowResult(index + 1, () => jsonlPair(format, raw, index + 1)),
    );
  });
  return { pairs, rankings, errors, lines };
}

/** An import request: the file's text, or a stream of it (an upload, a file on disk). */
export type PreferenceImportInput = Omit<PreferenceImportBody, 'content'> & { content: ImportContent };

/** Preference imports: existing preference data sets, judged already, into a project. */
export class PreferenceImportService {
  constructor(
    private readonly prisma: PrismaClient,
    /**
     * Whether an import may skip the row-by-row foreign-key checks of its writes where the database
     * lets it (see PreferenceWriter); false always checks them.
     */
    private readonly options: { skipKeyChecks?: boolean } = {},
  ) {}

  /**
   * Imports a preference file, streamed: each row is parsed and checked as it is read, matched and
   * written in batches, all in one transaction (a dry run matches but writes nothing, so it refuses
   * exactly what the real run refuses; a refused file is rolled back).
   */
  async importFile(
    projectId: string,
    input: PreferenceImportInput,
    actor: Actor,
  ): Promise<PreferenceImportReport> {
    const project = await this.prisma.project.findUniqueOrThrow({ where: { id: projectId } });
    const levels = labelSchemaOf(project).strengths.length;
    const refuse = (input.onError ?? 'refuse') === 'refuse';
    return inImportTransaction(this.prisma, async (client) => {
      const writer = new PreferenceWriter(client, projectId, input.source, {
        dryRun: input.dryRun ?? false,
        skipKeyChecks: this.options.skipKeyChecks ?? true,
      });
      await writer.open();
      const errors: ImportLineError[] = [];
      const errorCounts: Record<string, number> = {};
      let lines = 0;
      let imported = 0;
      let skipped = 0;
      for await (const row of preferenceRows(input.format, input.content)) {
        lines++;
        if ('error' in row) {
          skipped++;
          errorCounts[row.error.kind] = (errorCounts[row.error.kind] ?? 0) + 1;
          if (errors.length < 1000)
            errors.push({ line: row.line, message: `${row.error.kind}: ${row.error.message}` });
          // A refused file stores nothing: from here on its prompts are only counted.
          if (refuse) writer.stop();
          continue;
        }
        imported++;
        if ('ranking' in row) {
          await writer.addRanking(row.ranking);
          continue;
        }
        const { messages, chosen, rejected, margin } = row.pair;
        await writer.add({ messages, chosen, rejected, strength: strengthOf(margin, levels) });
      }
      if (lines === 0) throw new HttpError(400, 'The file has no rows.', 'IMPORT_EMPTY', { errors: [] });
      const report: PreferenceImportReport = {
        dryRun: input.dryRun ?? false,
        lines,
        imported,
        skipped,
        errorCounts,
        errors,
        prompts: 0,
        newPrompts: 0,
        comparisons: 0,
      };
      if (skipped && refuse) {
        report.prompts = writer.counts().prompts;
        throw new HttpError(
          400,
          `${skipped} row${skipped > 1 ? 's are' : ' is'} bad; nothing was imported (send onError "skip" to import the rest).`,
          'IMPORT_INVALID',
          { ...report, imported: 0 },
        );
      }
      if (imported === 0)
        throw new HttpError(400, 'No row could be imported.', 'IMPORT_EMPTY', { ...report, imported: 0 });

      const counts = await writer.finish();
      Object.assign(report, counts);
      if (input.dryRun) return { value: report, commit: false };
      await auditInTransaction(client, {
        actorId: actor.id,
        action: 'project.import-preferences',
        targetId: projectId,
        details: {
          format: input.format,
          source: input.source,
          lines,
          imported,
          skipped,
          newPrompts: counts.newPrompts,
          comparisons: counts.comparisons,
        },
        ip: actor.ip ?? null,
      });
      return { value: report, commit: true };
    });
  }
}
