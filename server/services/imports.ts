// Imports prompts and responses from JSONL or CSV: every line is checked first and reported with
// its line number; then everything is stored in one transaction, or nothing is.
import { parse as parseCsv } from 'csv-parse/sync';
import type { Prisma, PrismaClient, PromptSplit } from '../db/client.js';
import { HttpError } from '../errors.js';
import type { ImportLineError, ImportReport } from '../schemas/projects.js';
import { recordAudit } from './audit.js';
import type { Actor } from './users.js';

export interface Message {
  role: string;
  content: string;
}

interface ParsedResponse {
  text: string;
  source: string | null;
}

interface ParsedPrompt {
  line: number;
  externalId: string | null;
  messages: Message[];
  metadata: Record<string, unknown>;
  split: PromptSplit | null;
  responses: ParsedResponse[];
}

const MAX_TEXT = 100_000;
const MAX_LINES = 200_000;
const ROLES = new Set(['system', 'user', 'assistant']);
const SPLITS: Record<string, PromptSplit> = { train: 'TRAIN', validation: 'VALIDATION', test: 'TEST' };

class LineError extends Error {}

function text(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.trim() === '')
    throw new LineError(`${what} must be a non-empty string`);
  if (value.length > MAX_TEXT) throw new LineError(`${what} is longer than ${MAX_TEXT} characters`);
  return value;
}

function optionalName(value: unknown, what: string): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string' || value.length > 100)
    throw new LineError(`${what} must be a string of at most 100 characters`);
  return value.trim();
}

function split(value: unknown): PromptSplit | null {
  if (value === undefined || value === null || value === '') return null;
  const found = typeof value === 'string' ? SPLITS[value.toLowerCase()] : undefined;
  if (!found) throw new LineError('split must be train, validation or test');
  return found;
}

function messagesOf(row: Record<string, unknown>): Message[] {
  if (row.messages !== undefined) {
    if (!Array.isArray(row.messages) || row.messages.length === 0)
      throw new LineError('messages must be a non-empty array');
    return row.messages.map((message, index) => {
      if (typeof message !== 'object' || message === null)
        throw new LineError(`messages[${index}] must be an object`);
      const { role, content } = message as Record<string, unknown>;
      if (typeof role !== 'string' || !ROLES.has(role))
        throw new LineError(`messages[${index}].role must be system, user or assistant`);
      return { role, content: text(content, `messages[${index}].content`) };
    });
  }
  return [{ role: 'user', content: text(row.prompt, 'prompt') }];
}

function responsesOf(row: Record<string, unknown>, defaultSource: string | null): ParsedResponse[] {
  const rowSource = optionalName(row.source, 'source') ?? defaultSource;
  if (row.responses !== undefined) {
    if (!Array.isArray(row.responses)) throw new LineError('responses must be an array');
    return row.responses.map((response, index) => {
      if (typeof response === 'string')
        return { text: text(response, `responses[${index}]`), source: rowSource };
      if (typeof response !== 'object' || response === null)
        throw new LineError(`responses[${index}] must be a string or an object`);
      const fields = response as Record<string, unknown>;
      return {
        text: text(fields.text, `responses[${index}].text`),
        source: optionalName(fields.source, `responses[${index}].source`) ?? rowSource,
      };
    });
  }
  if (row.response !== undefined) return [{ text: text(row.response, 'response'), source: rowSource }];
  return [];
}

function promptOf(row: Record<string, unknown>, line: number, defaultSource: string | null): ParsedPrompt {
  const known = new Set(['id', 'prompt', 'messages', 'responses', 'response', 'source', 'metadata', 'split']);
  const unknown = Object.keys(row).filter((key) => !known.has(key));
  if (unknown.length)
    throw new LineError(`unknown field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}`);
  if (row.prompt !== undefined && row.messages !== undefined)
    throw new LineError('give either prompt or messages, not both');
  if (
    row.metadata !== undefined &&
    (typeof row.metadata !== 'object' || row.metadata === null || Array.isArray(row.metadata))
  ) {
    throw new LineError('metadata must be an object');
  }
  const id = row.id === undefined || row.id === null || row.id === '' ? null : String(row.id);
  if (id !== null && id.length > 200) throw new LineError('id is longer than 200 characters');
  return {
    line,
    externalId: id,
    messages: messagesOf(row),
    metadata: (row.metadata as Record<string, unknown> | undefined) ?? {},
    split: split(row.split),
    responses: responsesOf(row, defaultSource),
  };
}

export function parseImport(format: 'jsonl' | 'csv', content: string, defaultSource: string | null) {
  const prompts: ParsedPrompt[] = [];
  const errors: ImportLineError[] = [];
  let lines = 0;
  const add = (row: unknown, line: number) => {
    lines++;
    try {
      if (typeof row !== 'object' || row === null || Array.isArray(row))
        throw new LineError('each line must be a JSON object');
      prompts.push(promptOf(row as Record<string, unknown>, line, defaultSource));
    } catch (error) {
      if (!(error instanceof LineError)) throw error;
      errors.push({ line, message: error.message });
    }
  };

  if (format === 'jsonl') {
    const rows = content.split(/\r?\n/);
    if (rows.length > MAX_LINES)
      throw new HttpError(413, `The file has more than ${MAX_LINES} lines; split it.`);
    rows.forEach((raw, index) => {
      if (raw.trim() === '') return;
      let row: unknown;
      try {
        row = JSON.parse(raw);
      } catch (error) {
        lines++;
        errors.push({ line: index + 1, message: `not valid JSON (${(error as Error).message})` });
        return;
      }
      add(row, index + 1);
    });
  } else {
    let records: { record: Record<string, string>; info: { lines: number } }[];
    try {
      records = parseCsv(content, {
        columns: true,
        info: true,
        skip_empty_lines: true,
        bom: true,
        trim: false,
      }) as never;
    } catch (error) {
      const line = (error as { lines?: number }).lines ?? 1;
      throw new HttpError(400, `The CSV file cannot be read: ${(error as Error).message}`, 'IMPORT_INVALID', {
        errors: [{ line, message: (error as Error).message }],
      });
    }
    const header = records[0] ? Object.keys(records[0].record) : [];
    for (const required of ['prompt', 'response']) {
      if (records.length && !header.includes(required)) {
        throw new HttpError(400, `The CSV header needs a "${required}" column.`, 'IMPORT_INVALID', {
          errors: [{ line: 1, message: `missing column ${required}` }],
        });
      }
    }
    if (records.length > MAX_LINES)
      throw new HttpError(413, `The file has more than ${MAX_LINES} rows; split it.`);
    for (const { record, info } of records) {
      const row: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(record)) if (value !== '') row[key] = value;
      add(row, info.lines);
    }
  }
  return { prompts, errors, lines };
}

/** Prompts that share an id (or, without one, the same messages) are one prompt. */
function keyOf(prompt: { externalId: string | null; messages: unknown }): string {
  return prompt.externalId !== null
    ? `id:${prompt.externalId}`
    : `messages:${JSON.stringify(prompt.messages)}`;
}

export async function importPrompts(
  prisma: PrismaClient,
  projectId: string,
  input: { format: 'jsonl' | 'csv'; content: string; dryRun?: boolean; source?: string },
  actor: Actor,
): Promise<ImportReport> {
  const { prompts, errors, lines } = parseImport(input.format, input.content, input.source ?? null);
  if (lines === 0) throw new HttpError(400, 'The file has no rows.', 'IMPORT_EMPTY', { errors: [] });

  const merged = new Map<string, ParsedPrompt>();
  for (const prompt of prompts) {
    const key = keyOf(prompt);
    const existing = merged.get(key);
    if (!existing) {
      merged.set(key, { ...prompt, responses: [...prompt.responses] });
      continue;
    }
    if (JSON.stringify(existing.messages) !== JSON.stringify(prompt.messages)) {
      errors.push({
        line: prompt.line,
        message: `id ${prompt.externalId} was used on line ${existing.line} for a different prompt`,
      });
      continue;
    }
    existing.responses.push(...prompt.responses);
  }
  errors.sort((a, b) => a.line - b.line);

  const responseCount = [...merged.values()].reduce((sum, prompt) => sum + prompt.responses.length, 0);
  const preview = [...merged.values()].slice(0, 5).map((prompt) => ({
    line: prompt.line,
    messages: prompt.messages,
    responses: prompt.responses
      .slice(0, 4)
      .map((response) => ({ text: response.text.slice(0, 500), source: response.source })),
  }));

  // Which prompts exist already (re-importing a file adds only what is new).
  const existingPrompts = await prisma.prompt.findMany({
    where: { projectId },
    select: { id: true, externalId: true, messages: true },
  });
  const existingByKey = new Map(existingPrompts.map((prompt) => [keyOf(prompt), prompt]));
  for (const prompt of merged.values()) {
    const found = existingByKey.get(keyOf(prompt));
    if (
      found &&
      prompt.externalId !== null &&
      JSON.stringify(found.messages) !== JSON.stringify(prompt.messages)
    ) {
      errors.push({
        line: prompt.line,
        message: `id ${prompt.externalId} already names a different prompt in this project`,
      });
    }
  }
  const newPrompts = [...merged.values()].filter((prompt) => !existingByKey.has(keyOf(prompt))).length;
  const report: ImportReport = {
    dryRun: input.dryRun ?? false,
    lines,
    prompts: merged.size,
    newPrompts,
    responses: responseCount,
    errors,
    preview,
  };
  if (errors.length) {
    throw new HttpError(
      400,
      `${errors.length} line${errors.length > 1 ? 's have' : ' has'} errors; nothing was imported.`,
      'IMPORT_INVALID',
      { ...report, errors: errors.slice(0, 1000) },
    );
  }
  if (input.dryRun) return report;

  await prisma.$transaction(
    async (tx) => {
      for (const prompt of merged.values()) {
        let promptId = existingByKey.get(keyOf(prompt))?.id;
        if (!promptId) {
          const created = await tx.prompt.create({
            data: {
              projectId,
              externalId: prompt.externalId,
              messages: prompt.messages as unknown as Prisma.InputJsonValue,
              metadata: prompt.metadata as Prisma.InputJsonObject,
              ...(prompt.split ? { split: prompt.split } : {}),
            },
          });
          promptId = created.id;
        }
        const known = await tx.response.findMany({
          where: { promptId },
          select: { text: true, source: true },
        });
        const seen = new Set(known.map((response) => `${response.source ?? ''}\u0000${response.text}`));
        const fresh = prompt.responses.filter((response) => {
          const key = `${response.source ?? ''}\u0000${response.text}`;
          if (seen.has(key)) return false;
          seen.add(key);
          return true;
        });
        if (fresh.length) {
          await tx.response.createMany({
            data: fresh.map((response) => ({ promptId, text: response.text, source: response.source })),
          });
        }
      }
      await recordAudit(tx, {
        actorId: actor.id,
        action: 'project.import',
        targetType: 'project',
        targetId: projectId,
        details: { format: input.format, lines, prompts: merged.size, newPrompts, responses: responseCount },
        ip: actor.ip ?? null,
      });
    },
    { timeout: 300_000, maxWait: 10_000 },
  );
  return report;
}
