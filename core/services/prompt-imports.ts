// Imports prompts and responses from JSONL or CSV, streamed: each line is parsed and checked as it
// is read (errors reported with their line numbers) and copied into staging tables in batches;
// prompts are then merged and matched with the project's by SQL, and everything is stored in the
// same transaction, or nothing is (a dry run rolls back, refusing exactly what the real run would).
import type pg from 'pg';
import type { PrismaClient, PromptSplit } from '../db/client.js';
import { HttpError } from '../errors.js';
import { findUnstorable, MAX_JSON_DEPTH } from '../unstorable.js';
import type { ImportLineError, ImportReport } from '../schemas/projects.js';
import { csvRecords, textLines, type ImportContent } from './import-source.js';
import { auditInTransaction, inImportTransaction } from './preference-store.js';
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
  // Text PostgreSQL cannot store and nesting its jsonb parser cannot take, in any field.
  const problem = findUnstorable(row, MAX_JSON_DEPTH);
  if (problem) {
    const where = problem.replace(/^\./, '');
    throw new LineError(where.startsWith(': ') ? where.slice(2) : where);
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

type Row = { line: number; prompt: ParsedPrompt } | { line: number; error: string };

function rowOf(line: number, row: unknown, defaultSource: string | null, problem?: string): Row {
  try {
    if (problem) throw new LineError(problem);
    if (typeof row !== 'object' || row === null || Array.isArray(row))
      throw new LineError('each line must be a JSON object');
    return { line, prompt: promptOf(row as Record<string, unknown>, line, defaultSource) };
  } catch (error) {
    if (!(error instanceof LineError)) throw error;
    return { line, error: error.message };
  }
}

/** The rows of a prompt file as they are read, each parsed and checked, or its error. */
export async function* promptRows(
  format: 'jsonl' | 'csv',
  content: ImportContent,
  defaultSource: string | null,
): AsyncGenerator<Row> {
  const problems = typeof content === 'string' ? undefined : content.lineProblems;
  if (format === 'jsonl') {
    for await (const { line, text } of textLines(content, MAX_LINES)) {
      if (text.trim() === '') continue;
      let row: unknown;
      try {
        row = JSON.parse(text);
      } catch (error) {
        yield { line, error: `not valid JSON (${(error as Error).message})` };
        continue;
      }
      yield rowOf(line, row, defaultSource, problems?.get(line));
    }
    return;
  }
  let checkedHeader = false;
  for await (const { record, info } of csvRecords(
    content,
    { skip_empty_lines: true, bom: true, trim: false },
    MAX_LINES,
  )) {
    if (!checkedHeader) {
      for (const required of ['prompt', 'response'])
        if (!(required in record))
          throw new HttpError(400, `The CSV header needs a "${required}" column.`, 'IMPORT_INVALID', {
            errors: [{ line: 1, message: `missing column ${required}` }],
          });
      checkedHeader = true;
    }
    const row: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(record)) if (value !== '') row[key] = value;
    yield rowOf(info.lines, row, defaultSource, problems?.get(info.lines));
  }
}

/** Rows per multi-row insert into the staging tables. */
const BATCH = 2_000;

/** The staging tables of one prompt import: rows and their responses, in batches as read. */
class PromptStaging {
  private prompts: ParsedPrompt[] = [];
  private responses = 0;
  private created = false;
  constructor(private readonly client: pg.ClientBase) {}

  async add(prompt: ParsedPrompt): Promise<void> {
    this.prompts.push(prompt);
    this.responses += prompt.responses.length;
    if (this.prompts.length >= BATCH || this.responses >= BATCH * 4) await this.flush();
  }

  async flush(): Promise<void> {
    if (!this.created) {
      await this.client.query(`CREATE TEMP TABLE import_row (
        line int NOT NULL, external_id text, messages jsonb NOT NULL, metadata jsonb NOT NULL, split "PromptSplit"
      ) ON COMMIT DROP`);
      await this.client.query(`CREATE TEMP TABLE import_row_response (
        line int NOT NULL, ord int NOT NULL, text text NOT NULL, source text
      ) ON COMMIT DROP`);
      this.created = true;
    }
    const prompts = this.prompts;
    this.prompts = [];
    this.responses = 0;
    if (!prompts.length) return;
    await this.client.query(
      `INSERT INTO import_row (line, external_id, messages, metadata, split)
       SELECT * FROM unnest($1::int[], $2::text[], $3::jsonb[], $4::jsonb[], $5::"PromptSplit"[])`,
      [
        prompts.map((p) => p.line),
        prompts.map((p) => p.externalId),
        prompts.map((p) => JSON.stringify(p.messages)),
        prompts.map((p) => JSON.stringify(p.metadata)),
        prompts.map((p) => p.split),
      ],
    );
    const responses = prompts.flatMap((p) => p.responses.map((r, ord) => ({ line: p.line, ord, ...r })));
    if (responses.length)
      await this.client.query(
        `INSERT INTO import_row_response (line, ord, text, source)
         SELECT * FROM unnest($1::int[], $2::int[], $3::text[], $4::text[])`,
        [
          responses.map((r) => r.line),
          responses.map((r) => r.ord),
          responses.map((r) => r.text),
          responses.map((r) => r.source),
        ],
      );
  }

  /**
   * Merges rows into prompts (the same id, or without one the same messages; the first row gives
   * the metadata and split) and matches them with the project's; lines whose id names a different
   * prompt (in the file or the project) are errors.
   */
  async match(
    projectId: string,
  ): Promise<{ prompts: number; newPrompts: number; responses: number; errors: ImportLineError[] }> {
    await this.flush();
    const q = (sql: string, values: unknown[] = []) => this.client.query(sql, values);
    await q(
      `CREATE TEMP TABLE import_key ON COMMIT DROP AS
       SELECT DISTINCT ON (external_id, CASE WHEN external_id IS NULL THEN messages END)
         line, external_id, messages, metadata, split
       FROM import_row ORDER BY external_id, CASE WHEN external_id IS NULL THEN messages END, line`,
    );
    const { rows: errors } = await q(
      `SELECT r.line, 'id ' || r.external_id || ' was used on line ' || k.line || ' for a different prompt' AS message
       FROM import_row r JOIN import_key k ON k.external_id = r.external_id
       WHERE r.messages <> k.messages
       UNION ALL
       SELECT k.line, 'id ' || k.external_id || ' already names a different prompt in this project'
       FROM import_key k JOIN "Prompt" p ON p."projectId" = $1 AND p."externalId" = k.external_id
       WHERE p.messages <> k.messages
       ORDER BY line`,
      [projectId],
    );
    await q(
      `CREATE TEMP TABLE import_prompt ON COMMIT DROP AS
       SELECT k.*, coalesce(x.id, gen_random_uuid()) AS id, x.id IS NULL AS is_new
       FROM import_key k
       LEFT JOIN LATERAL (
         SELECT p.id FROM "Prompt" p
         WHERE p."projectId" = $1 AND (
           CASE WHEN k.external_id IS NOT NULL THEN p."externalId" = k.external_id
                ELSE p."externalId" IS NULL AND p.messages = k.messages END)
         ORDER BY p."createdAt", p.id LIMIT 1
       ) x ON true`,
      [projectId],
    );
    // Every response line with its prompt (lines of an id used for another prompt left out).
    await q(
      `CREATE TEMP TABLE import_response ON COMMIT DROP AS
       SELECT p.id AS prompt_id, p.is_new, rr.line, rr.ord, rr.text, rr.source
       FROM import_row r
       JOIN import_prompt p ON (r.external_id IS NOT NULL AND p.external_id = r.external_id AND p.messages = r.messages)
         OR (r.external_id IS NULL AND p.external_id IS NULL AND p.messages = r.messages)
       JOIN import_row_response rr ON rr.line = r.line`,
    );
    const { rows } = await q(
      `SELECT (SELECT count(*)::int FROM import_prompt) AS prompts,
         (SELECT count(*)::int FROM import_prompt WHERE is_new) AS "newPrompts",
         (SELECT count(*)::int FROM import_response) AS responses`,
    );
    return { ...(rows[0] as { prompts: number; newPrompts: number; responses: number }), errors };
  }

  /** New prompts, and the responses their prompts do not have yet (by source and text). */
  async store(projectId: string): Promise<void> {
    const q = (sql: string, values: unknown[] = []) => this.client.query(sql, values);
    await q(
      `INSERT INTO "Prompt" (id, "projectId", "externalId", messages, metadata, split)
       SELECT id, $1, external_id, messages, metadata, coalesce(split, 'TRAIN') FROM import_prompt WHERE is_new ORDER BY line`,
      [projectId],
    );
    await q(
      `INSERT INTO "Response" ("promptId", text, source)
       SELECT prompt_id, text, source FROM (
         SELECT DISTINCT ON (r.prompt_id, coalesce(r.source, ''), r.text) r.prompt_id, r.text, r.source, r.line, r.ord
         FROM import_response r
         WHERE r.is_new OR NOT EXISTS (
           SELECT 1 FROM "Response" x WHERE x."promptId" = r.prompt_id AND coalesce(x.source, '') = coalesce(r.source, '') AND x.text = r.text)
         ORDER BY r.prompt_id, coalesce(r.source, ''), r.text, r.line, r.ord
       ) fresh ORDER BY line, ord`,
    );
  }
}

/** Prompt imports: prompts and responses from a file, into a project. */
export class PromptImportService {
  constructor(private readonly prisma: PrismaClient) {}

  async importFile(
    projectId: string,
    input: { format: 'jsonl' | 'csv'; content: ImportContent; dryRun?: boolean; source?: string },
    actor: Actor,
  ): Promise<ImportReport> {
    return inImportTransaction(this.prisma, async (client) => {
      const staging = new PromptStaging(client);
      const errors: ImportLineError[] = [];
      const preview: (ImportReport['preview'][number] & { key: string })[] = [];
      let lines = 0;
      let badLines = 0;
      for await (const row of promptRows(input.format, input.content, input.source ?? null)) {
        lines++;
        if ('error' in row) {
          // Lines come in order: the first thousand are kept, the others counted.
          if (++badLines <= 1000) errors.push({ line: row.line, message: row.error });
          continue;
        }
        const prompt = row.prompt;
        // The first prompts (merged like the stored ones), for a preview.
        const key =
          prompt.externalId !== null ? `id:${prompt.externalId}` : `m:${JSON.stringify(prompt.messages)}`;
        const shown = preview.find((item) => item.key === key);
        const responses = prompt.responses.map((r) => ({ text: r.text.slice(0, 500), source: r.source }));
        if (shown && JSON.stringify(shown.messages) === JSON.stringify(prompt.messages))
          shown.responses.push(...responses.slice(0, 4 - shown.responses.length));
        else if (!shown && preview.length < 5)
          preview.push({
            key,
            line: prompt.line,
            messages: prompt.messages,
            responses: responses.slice(0, 4),
          });
        await staging.add(prompt);
      }
      if (lines === 0) throw new HttpError(400, 'The file has no rows.', 'IMPORT_EMPTY', { errors: [] });
      const matched = await staging.match(projectId);
      errors.push(...matched.errors);
      errors.sort((a, b) => a.line - b.line);
      const errorCount = badLines - Math.min(badLines, 1000) + errors.length;
      const report: ImportReport = {
        dryRun: input.dryRun ?? false,
        lines,
        prompts: matched.prompts,
        newPrompts: matched.newPrompts,
        responses: matched.responses,
        errors,
        preview: preview.map(({ key: _key, ...item }) => item),
      };
      if (errorCount) {
        throw new HttpError(
          400,
          `${errorCount} line${errorCount > 1 ? 's have' : ' has'} errors; nothing was imported.`,
          'IMPORT_INVALID',
          { ...report, errors: errors.slice(0, 1000) },
        );
      }
      if (input.dryRun) return { value: report, commit: false };
      await staging.store(projectId);
      await auditInTransaction(client, {
        actorId: actor.id,
        action: 'project.import',
        targetId: projectId,
        details: {
          format: input.format,
          lines,
          prompts: matched.prompts,
          newPrompts: matched.newPrompts,
          responses: matched.responses,
        },
        ip: actor.ip ?? null,
      });
      return { value: report, commit: true };
    });
  }
}
