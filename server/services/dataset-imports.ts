// Imports existing preference data sets (TRL JSONL standard or conversational, explicit or implicit
// prompt; HH-RLHF transcripts; CSV) as prompts, responses, comparisons and IMPORTED judgments. Bad
// rows are reported by line and kind, then skipped or the whole file refused; storing is one
// transaction, so a file is never half-imported.
import { randomUUID } from 'node:crypto';
import { parse as parseCsv } from 'csv-parse/sync';
import type { Choice, Prisma, PrismaClient } from '../db/client.js';
import { HttpError } from '../errors.js';
import type { PreferenceImportBody, PreferenceImportReport } from '../schemas/datasets.js';
import type { ImportLineError } from '../schemas/projects.js';
import { recordAudit } from './audit.js';
import {
  extractPromptTrl,
  messagesOfTranscript,
  splitHhPair,
  strengthOf,
  type Message,
} from './export-formats.js';
import { labelSchemaOf } from './projects.js';
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
 * write multi-turn prompts in string formats) becomes its turns; any other string is one user turn.
 */
export function promptMessages(prompt: string): Message[] {
  if (prompt.startsWith('\n\nHuman:') && prompt.endsWith('\n\nAssistant:'))
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
      const hh = c.startsWith('\n\nHuman:') ? splitHhPair(c, r) : null;
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

export function parsePreferenceFile(format: PreferenceImportBody['format'], content: string) {
  const pairs: ParsedPair[] = [];
  const errors: (ImportLineError & { kind: ErrorKind })[] = [];
  let lines = 0;
  const take = (line: number, parse: () => ParsedPair) => {
    lines++;
    try {
      pairs.push(checkPair(parse()));
    } catch (error) {
      if (!(error instanceof RowError)) throw error;
      errors.push({ line, message: error.message, kind: error.kind });
    }
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
      if (records.length && !header.includes(column))
        throw new HttpError(400, `The CSV header needs a "${column}" column.`, 'IMPORT_INVALID', {
          errors: [{ line: 1, message: `missing column ${column}` }],
        });
    if (records.length > MAX_ROWS)
      throw new HttpError(413, `The file has more than ${MAX_ROWS} rows; split it.`);
    for (const { record, info } of records) {
      take(info.lines, () => {
        const row: Record<string, unknown> = { chosen: record.chosen, rejected: record.rejected };
        if (record.prompt !== undefined && record.prompt !== '') row.prompt = record.prompt;
        if (record.margin !== undefined && record.margin !== '') row.margin = Number(record.margin);
        return pairOfTrlRow(row, info.lines);
      });
    }
    return { pairs, errors, lines };
  }

  const rows = content.split(/\r?\n/);
  if (rows.length > MAX_ROWS) throw new HttpError(413, `The file has more than ${MAX_ROWS} lines; split it.`);
  rows.forEach((raw, index) => {
    if (raw.trim() === '') return;
    const line = index + 1;
    take(line, () => {
      let row: unknown;
      try {
        row = JSON.parse(raw);
      } catch (error) {
        throw new RowError('unparsable', `not valid JSON (${(error as Error).message})`);
      }
      if (typeof row !== 'object' || row === null || Array.isArray(row))
        throw new RowError('unparsable', 'each line must be a JSON object');
      return format === 'hh'
        ? pairOfHhRow(row as Record<string, unknown>, line)
        : pairOfTrlRow(row as Record<string, unknown>, line);
    });
  });
  return { pairs, errors, lines };
}

const keyOfMessages = (messages: unknown) => JSON.stringify(messages);

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export async function importPreferences(
  prisma: PrismaClient,
  projectId: string,
  input: PreferenceImportBody,
  actor: Actor,
): Promise<PreferenceImportReport> {
  const { pairs, errors, lines } = parsePreferenceFile(input.format, input.content);
  if (lines === 0) throw new HttpError(400, 'The file has no rows.', 'IMPORT_EMPTY', { errors: [] });
  const errorCounts: Record<string, number> = {};
  for (const error of errors) errorCounts[error.kind] = (errorCounts[error.kind] ?? 0) + 1;
  const promptKeys = new Set(pairs.map((pair) => keyOfMessages(pair.messages)));
  const report: PreferenceImportReport = {
    dryRun: input.dryRun ?? false,
    lines,
    imported: pairs.length,
    skipped: errors.length,
    errorCounts,
    errors: errors
      .slice(0, 1000)
      .map(({ line, message, kind }) => ({ line, message: `${kind}: ${message}` })),
    prompts: promptKeys.size,
    newPrompts: 0,
    comparisons: 0,
  };
  if (errors.length && (input.onError ?? 'refuse') === 'refuse') {
    throw new HttpError(
      400,
      `${errors.length} row${errors.length > 1 ? 's are' : ' is'} bad; nothing was imported (send onError "skip" to import the rest).`,
      'IMPORT_INVALID',
      { ...report, imported: 0 },
    );
  }
  if (pairs.length === 0)
    throw new HttpError(400, 'No row could be imported.', 'IMPORT_EMPTY', { ...report, imported: 0 });

  const project = await prisma.project.findUniqueOrThrow({ where: { id: projectId } });
  const levels = labelSchemaOf(project).strengths.length;

  const stored = await prisma.$transaction(
    async (tx) => {
      // Prompts: reuse the project's own (same messages), create the others.
      const existing = await tx.prompt.findMany({
        where: { projectId },
        select: { id: true, messages: true },
      });
      const promptIds = new Map(existing.map((prompt) => [keyOfMessages(prompt.messages), prompt.id]));
      const newPrompts: Prisma.PromptCreateManyInput[] = [];
      for (const pair of pairs) {
        const key = keyOfMessages(pair.messages);
        if (promptIds.has(key)) continue;
        const id = randomUUID();
        promptIds.set(key, id);
        newPrompts.push({ id, projectId, messages: pair.messages as unknown as Prisma.InputJsonValue });
      }
      const touched = [...new Set(pairs.map((pair) => promptIds.get(keyOfMessages(pair.messages))!))];

      // Responses: one per (prompt, text); texts already there are reused.
      const responseIds = new Map<string, string>();
      const comparisonIds = new Map<string, { id: string; a: string; b: string; fresh: boolean }>();
      for (const ids of chunks(touched, 5_000)) {
        for (const response of await tx.response.findMany({
          where: { promptId: { in: ids } },
          select: { id: true, promptId: true, text: true },
        }))
          responseIds.set(`${response.promptId}\u0000${response.text}`, response.id);
        for (const comparison of await tx.comparison.findMany({
          where: { promptId: { in: ids } },
          select: { id: true, promptId: true, responseAId: true, responseBId: true },
        }))
          comparisonIds.set(
            `${comparison.promptId}\u0000${comparison.responseAId}\u0000${comparison.responseBId}`,
            {
              id: comparison.id,
              a: comparison.responseAId,
              b: comparison.responseBId,
              fresh: false,
            },
          );
      }
      const newResponses: Prisma.ResponseCreateManyInput[] = [];
      const responseId = (promptId: string, text: string) => {
        const key = `${promptId}\u0000${text}`;
        let id = responseIds.get(key);
        if (!id) {
          responseIds.set(key, (id = randomUUID()));
          newResponses.push({ id, promptId, text, source: input.source });
        }
        return id;
      };

      // Comparisons: the pair in either order; new ones take chosen as A.
      const votes = new Map<string, number>();
      const preferences: Prisma.PreferenceCreateManyInput[] = [];
      for (const pair of pairs) {
        const promptId = promptIds.get(keyOfMessages(pair.messages))!;
        const chosen = responseId(promptId, pair.chosen);
        const rejected = responseId(promptId, pair.rejected);
        let comparison =
          comparisonIds.get(`${promptId}\u0000${chosen}\u0000${rejected}`) ??
          comparisonIds.get(`${promptId}\u0000${rejected}\u0000${chosen}`);
        if (!comparison) {
          comparison = { id: randomUUID(), a: chosen, b: rejected, fresh: true };
          comparisonIds.set(`${promptId}\u0000${chosen}\u0000${rejected}`, comparison);
        }
        votes.set(comparison.id, (votes.get(comparison.id) ?? 0) + 1);
        const choice: Choice = comparison.a === chosen ? 'A' : 'B';
        preferences.push({
          comparisonId: comparison.id,
          raterId: null,
          source: 'IMPORTED',
          importSource: input.source,
          choice,
          strength: strengthOf(pair.margin, levels),
        });
      }
      const fresh = [...comparisonIds.entries()].filter(([, comparison]) => comparison.fresh);
      if (input.dryRun) return { newPrompts: newPrompts.length, comparisons: fresh.length };

      for (const batch of chunks(newPrompts, 2_000)) await tx.prompt.createMany({ data: batch });
      for (const batch of chunks(newResponses, 2_000)) await tx.response.createMany({ data: batch });
      // Imported votes complete their comparison (requiredVotes = votes): raters are not asked
      // again. Votes added to an existing comparison raise both counts, leaving its queue state.
      const comparisons = fresh.map(([key, comparison]) => ({
        id: comparison.id,
        projectId,
        promptId: key.split('\u0000')[0]!,
        responseAId: comparison.a,
        responseBId: comparison.b,
        requiredVotes: votes.get(comparison.id)!,
        voteCount: votes.get(comparison.id)!,
      }));
      for (const batch of chunks(comparisons, 2_000)) await tx.comparison.createMany({ data: batch });
      for (const comparison of comparisonIds.values()) {
        if (comparison.fresh || !votes.has(comparison.id)) continue;
        const n = votes.get(comparison.id)!;
        await tx.comparison.update({
          where: { id: comparison.id },
          data: { requiredVotes: { increment: n }, voteCount: { increment: n } },
        });
      }
      for (const batch of chunks(preferences, 2_000)) await tx.preference.createMany({ data: batch });
      await recordAudit(tx, {
        actorId: actor.id,
        action: 'project.import-preferences',
        targetType: 'project',
        targetId: projectId,
        details: {
          format: input.format,
          source: input.source,
          lines,
          imported: pairs.length,
          skipped: errors.length,
          newPrompts: newPrompts.length,
          comparisons: comparisons.length,
        },
        ip: actor.ip ?? null,
      });
      return { newPrompts: newPrompts.length, comparisons: comparisons.length };
    },
    { timeout: 600_000, maxWait: 10_000 },
  );
  return { ...report, ...stored };
}
