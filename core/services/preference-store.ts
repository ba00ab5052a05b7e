// Stores an imported preference file as it is read: rows are matched in batches against the
// project's rows and the file's earlier ones, and what is new is written by a COPY per table and
// batch, all in the import's one transaction. The server holds one batch of rows at a time and a
// few dozen bytes per distinct prompt, response and comparison, whatever the file's size.
import { hash, randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { PrismaClient } from '../db/client.js';
import { poolOf } from '../db/client.js';
import { HttpError } from '../errors.js';
import { choiceBetween, competitionRanks } from '../ranking/rankings.js';

/** The longest a statement of an import may take. */
const IMPORT_STATEMENT_MS = 10 * 60_000;

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

const TAB = 9;
const NEWLINE = 10;
const HEX = Buffer.from('0123456789abcdef');

/**
 * The rows of one COPY in text format, encoded straight into a reused buffer: a string per field,
 * a line per row and one joined text per batch would each be garbage to collect.
 */
class CopyBuffer {
  private bytes = Buffer.allocUnsafe(1 << 16);
  private at = 0;

  get empty(): boolean {
    return this.at === 0;
  }

  /** The encoded rows (valid until the next reset). */
  get rows(): Buffer {
    return this.bytes.subarray(0, this.at);
  }

  reset(): void {
    this.at = 0;
  }

  private reserve(bytes: number): void {
    if (this.at + bytes <= this.bytes.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.bytes.length * 2, this.at + bytes));
    this.bytes.copy(grown, 0, 0, this.at);
    this.bytes = grown;
  }

  /** A field (escaped for COPY) and the tab or line feed after it. */
  text(value: string, end = TAB): this {
    const escaped = copyText(value);
    this.reserve(escaped.length * 3 + 1);
    this.at += this.bytes.write(escaped, this.at, 'utf8');
    this.bytes[this.at++] = end;
    return this;
  }

  /** A field that needs no escaping (an id, a number, a keyword, `\\N`) and the tab or line feed after it. */
  raw(value: string, end = TAB): this {
    this.reserve(value.length + 1);
    this.at += this.bytes.write(value, this.at, 'latin1');
    this.bytes[this.at++] = end;
    return this;
  }

  /** An id of the import's sequence: its fixed head, then the counter (below 2^31) in 12 hex digits. */
  id(head: Uint8Array, n: number, end = TAB): this {
    this.reserve(head.length + 13);
    const { bytes } = this;
    let at = this.at;
    for (let i = 0; i < head.length; i++) bytes[at++] = head[i]!;
    for (let i = 11; i >= 0; i--, n >>>= 4) bytes[at + i] = HEX[n & 15]!;
    bytes[at + 12] = end;
    this.at = at + 13;
    return this;
  }
}

/** The tables an import writes. */
const WRITTEN_TABLES = ['"Prompt"', '"Response"', '"Comparison"', '"Preference"'];

/**
 * The COPYs of a batch, in the order they run (what a row refers to is written before it): pairs
 * and rankings (with their responses and ranks) each have their own, so a file of pairs writes
 * no empty arrays.
 */
const COPIES = [
  'COPY "Prompt" (id, "projectId", messages) FROM STDIN',
  'COPY "Response" (id, "promptId", text, source) FROM STDIN',
  'COPY "Comparison" (id, "projectId", "promptId", "responseAId", "responseBId", "requiredVotes", "voteCount") FROM STDIN',
  'COPY "Comparison" (id, "projectId", "promptId", "responseAId", "responseBId", "requiredVotes", "voteCount", "responseIds") FROM STDIN',
  'COPY "Preference" (id, "comparisonId", source, "importSource", choice, strength) FROM STDIN',
  'COPY "Preference" (id, "comparisonId", source, "importSource", choice, strength, ranks) FROM STDIN',
];

/**
 * Ascending ids for one import's new rows: the time in milliseconds (as a UUIDv7 starts), 24
 * random bits, then a counter. Rows written in id order add their index entries next to each
 * other instead of on pages all over each index.
 */
class IdSequence {
  private readonly head: string;
  /** The head in bytes, for ids written straight into a COPY buffer. */
  readonly headBytes: Buffer;

  constructor() {
    const time = Date.now().toString(16).padStart(12, '0');
    const random = randomBytes(3).toString('hex');
    this.head = `${time.slice(0, 8)}-${time.slice(8)}-7${random.slice(0, 3)}-8${random.slice(3)}-`;
    this.headBytes = Buffer.from(this.head);
  }

  id(n: number): string {
    return this.head + n.toString(16).padStart(12, '0');
  }
}

/**
 * An open-addressing hash table from 128-bit keys (four 32-bit words) to non-negative numbers, in
 * typed arrays: 24 bytes a slot, where a Map of strings to objects takes several times that.
 */
class KeyTable {
  private keys: Uint32Array;
  private values: Float64Array;
  private mask: number;
  size = 0;

  constructor(capacity = 1 << 12) {
    this.keys = new Uint32Array(capacity * 4);
    this.values = new Float64Array(capacity).fill(-1);
    this.mask = capacity - 1;
  }

  private slot(a: number, b: number, c: number, d: number): number {
    let h = a ^ Math.imul(b, 0x9e3779b1) ^ Math.imul(c, 0x85ebca6b) ^ Math.imul(d, 0xc2b2ae35);
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    let i = (h ^ (h >>> 16)) & this.mask;
    const { keys, values } = this;
    while (values[i]! >= 0) {
      const k = i * 4;
      if (keys[k] === a && keys[k + 1] === b && keys[k + 2] === c && keys[k + 3] === d) return i;
      i = (i + 1) & this.mask;
    }
    return i;
  }

  /** The value of a key, or -1. */
  get(a: number, b: number, c: number, d: number): number {
    return this.values[this.slot(a, b, c, d)]!;
  }

  set(a: number, b: number, c: number, d: number, value: number): void {
    if ((this.size + 1) * 10 > (this.mask + 1) * 7) this.grow();
    const i = this.slot(a, b, c, d);
    if (this.values[i]! < 0) this.size++;
    const k = i * 4;
    this.keys[k] = a;
    this.keys[k + 1] = b;
    this.keys[k + 2] = c;
    this.keys[k + 3] = d;
    this.values[i] = value;
  }

  private grow(): void {
    const { keys, values } = this;
    this.keys = new Uint32Array(keys.length * 2);
    this.values = new Float64Array(values.length * 2).fill(-1);
    this.mask = values.length * 2 - 1;
    for (let i = 0; i < values.length; i++) {
      if (values[i]! < 0) continue;
      const j = this.slot(keys[i * 4]!, keys[i * 4 + 1]!, keys[i * 4 + 2]!, keys[i * 4 + 3]!);
      this.keys.set(keys.subarray(i * 4, i * 4 + 4), j * 4);
      this.values[j] = values[i]!;
    }
  }
}

/** Four bytes of a digest in latin1 (one character a byte), from `at`, as a little-endian word. */
function word(bytes: string, at: number): number {
  return (
    (bytes.charCodeAt(at) |
      (bytes.charCodeAt(at + 1) << 8) |
      (bytes.charCodeAt(at + 2) << 16) |
      (bytes.charCodeAt(at + 3) << 24)) >>>
    0
  );
}

/**
 * The first 128 bits of a text's SHA-256, as four words (no two texts are told apart by less). The
 * digest comes back as a binary (latin1) string: a Buffer per digest costs several times the hashing itself.
 */
function digest(text: string): [number, number, number, number] {
  const bytes = hash('sha256', text, 'binary');
  return [word(bytes, 0), word(bytes, 4), word(bytes, 8), word(bytes, 12)];
}

/** The key of a ranking's set of responses, whatever their order: a digest of their sorted codes. */
function rankingKey(codes: readonly number[]): [number, number, number, number] {
  return digest(`ranking:${[...codes].sort((x, y) => x - y).join(',')}`);
}

/** JSON with every object's keys in order: equal for equal messages, however they were written. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const object = value as Record<string, unknown>;
    return `{${Object.keys(object)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(object[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Codes of the rows an import refers to: a new row's code is its place in the import's id sequence,
 * an existing row's is EXISTING plus its place in the list of existing ids the import matched.
 */
const EXISTING = 2 ** 31;

/** Rows per batch: parsed, matched, then written by one COPY per table. */
const BATCH = 5_000;

/**
 * Batches matched but not yet written: the next batch is read and matched while the database
 * writes one (on two cores, one each); a slow database holds back the reading instead of letting
 * batches pile up in memory.
 */
const WRITES_AHEAD = 1;

interface PendingRow {
  prompt: number;
  chosen: string;
  rejected: string;
  strength: number | null;
  /** A ranking's responses and their ranks (chosen and rejected then unused). */
  ranking?: { texts: string[]; ranks: number[] };
}

export interface ImportCounts {
  /** Distinct prompts among the rows, new or existing. */
  prompts: number;
  newPrompts: number;
  /** New comparisons. */
  comparisons: number;
}

/**
 * Writes an imported preference file as it is read, in batches. Each row's prompt (same messages),
 * responses (same prompt and text) and comparison (the same two responses, in either order) is
 * matched, in this order of preference, with the project's existing rows (the oldest of equals)
 * and the file's earlier rows, through hash tables of the texts' SHA-256; what is new is written
 * by one COPY per table and batch, with ascending ids. A new comparison's A is the chosen response
 * of its first row; every row's vote completes it (requiredVotes = voteCount = its rows), and adds
 * to both counts of an existing one (leaving its queue state). Each row becomes one IMPORTED
 * judgment.
 *
 * The server holds one batch of rows (and the next being read) plus the tables: 24-48 bytes per
 * distinct prompt, response and comparison.
 *
 * The foreign keys of what it writes hold by construction (a new row refers to rows written before
 * it in the same transaction, or to existing rows it locked FOR KEY SHARE, as a key check would),
 * so where the connection may (a superuser's, or one granted SET on session_replication_role) and
 * the written tables have no triggers but foreign keys', the import's writes skip the row-by-row key
 * checks.
 */
export class PreferenceWriter {
  private readonly ids = new IdSequence();
  private counter = 0;
  private readonly existing: string[] = [];
  private readonly prompts = new KeyTable();
  private readonly responses = new KeyTable();
  /** (lo, hi) response codes → comparison code * 2 + 1 when lo is its A. */
  private readonly comparisons = new KeyTable();
  private readonly matchedPrompts = new Set<number>();
  /** A ranking comparison's response codes in stored order, by its code. */
  private readonly rankingOrder = new Map<number, number[]>();
  private readonly loadedPrompts = new Set<number>();
  /** Votes for comparisons written in an earlier batch or existing before the import. */
  private readonly addedVotes = new Map<number, number>();
  private newPrompts = 0;
  private newComparisons = 0;
  private batch: PendingRow[] = [];
  private promptJson = new Map<number, string>();
  /** Writes in flight, oldest first. */
  private writes: Promise<void>[] = [];
  private skipsKeyChecks = false;
  private readonly source: string;
  /** Sets of COPY buffers (one per written table) not in use: one is filled while one is written. */
  private readonly buffers: CopyBuffer[][] = [];
  private mode: 'write' | 'count' | 'prompts';

  constructor(
    private readonly client: pg.ClientBase,
    private readonly projectId: string,
    source: string,
    options: { dryRun: boolean; skipKeyChecks: boolean },
  ) {
    this.source = source;
    this.mode = options.dryRun ? 'count' : 'write';
    this.skipsKeyChecks = options.skipKeyChecks;
  }

  /** Locks the project, reads the digests of its prompts, and chooses how keys are checked. */
  async open(): Promise<void> {
    const project = await this.client.query('SELECT 1 FROM "Project" WHERE id = $1 FOR KEY SHARE', [
      this.projectId,
    ]);
    if (!project.rowCount) throw new HttpError(404, 'The project does not exist.');
    if (this.mode === 'write' && this.skipsKeyChecks) this.skipsKeyChecks = await this.skipKeyChecks();
    else this.skipsKeyChecks = false;
    const { rows } = await this.client.query<{ any: boolean }>(
      'SELECT EXISTS (SELECT 1 FROM "Prompt" WHERE "projectId" = $1) AS any',
      [this.projectId],
    );
    if (!rows[0]!.any) return;
    await this.client.query(
      `DECLARE import_prompts NO SCROLL CURSOR FOR
       SELECT id, messages::text AS messages FROM "Prompt" WHERE "projectId" = $1 ORDER BY "createdAt", id`,
      [this.projectId],
    );
    for (;;) {
      const page = await this.client.query<{ id: string; messages: string }>(
        'FETCH 5000 FROM import_prompts',
      );
      for (const { id, messages } of page.rows) {
        const [a, b, c, d] = digest(canonicalJson(JSON.parse(messages)));
        if (this.prompts.get(a, b, c, d) < 0)
          this.prompts.set(a, b, c, d, EXISTING + this.existing.push(id) - 1);
      }
      if (page.rows.length < 5000) break;
    }
    await this.client.query('CLOSE import_prompts');
  }

  /** Whether this transaction now skips the foreign keys' triggers (it sets session_replication_role). */
  private async skipKeyChecks(): Promise<boolean> {
    const { rows } = await this.client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_trigger t LEFT JOIN pg_constraint c ON c.oid = t.tgconstraint
       WHERE t.tgrelid = ANY($1::text[]::regclass[]) AND c.contype IS DISTINCT FROM 'f'`,
      [WRITTEN_TABLES],
    );
    if (rows[0]!.n > 0) return false;
    await this.client.query('SAVEPOINT import_key_checks');
    try {
      await this.client.query('SET LOCAL session_replication_role = replica');
      await this.client.query('RELEASE SAVEPOINT import_key_checks');
      return true;
    } catch {
      await this.client.query('ROLLBACK TO SAVEPOINT import_key_checks');
      return false;
    }
  }

  /** Whether the writes skip the row-by-row key checks. */
  get skipsChecks(): boolean {
    return this.skipsKeyChecks;
  }

  /** From now on only the prompts are counted (a refused file): nothing more is matched or written. */
  stop(): void {
    this.mode = 'prompts';
    this.batch = [];
    this.promptJson.clear();
  }

  async add(row: { messages: unknown[]; chosen: string; rejected: string; strength: number | null }) {
    const prompt = this.promptOf(row.messages);
    if (this.mode === 'prompts') return;
    this.batch.push({ prompt, chosen: row.chosen, rejected: row.rejected, strength: row.strength });
    if (this.batch.length >= BATCH) await this.flush();
  }

  /** A ranking of K responses (distinct texts) to one prompt, with their ranks (1 = best). */
  async addRanking(row: { messages: unknown[]; texts: string[]; ranks: number[] }) {
    const prompt = this.promptOf(row.messages);
    if (this.mode === 'prompts') return;
    const ranking = { texts: row.texts, ranks: competitionRanks(row.ranks) };
    this.batch.push({ prompt, chosen: '', rejected: '', strength: null, ranking });
    if (this.batch.length >= BATCH) await this.flush();
  }

  /** The code of a row's prompt (matched, or new and counted). */
  private promptOf(messages: unknown[]): number {
    const [a, b, c, d] = digest(canonicalJson(messages));
    let prompt = this.prompts.get(a, b, c, d);
    if (prompt < 0) {
      prompt = this.counter++;
      this.prompts.set(a, b, c, d, prompt);
      this.newPrompts++;
      if (this.mode !== 'prompts') this.promptJson.set(prompt, JSON.stringify(messages));
    } else if (prompt >= EXISTING) this.matchedPrompts.add(prompt);
    return prompt;
  }

  private idOf(code: number): string {
    return code >= EXISTING ? this.existing[code - EXISTING]! : this.ids.id(code);
  }

  /**
   * Reads the responses and comparisons of existing prompts the batch names for the first time,
   * locking them (and the prompts) FOR KEY SHARE: what the import refers to stays until it commits.
   */
  private async loadExisting(codes: number[]): Promise<void> {
    const promptIds = codes.map((code) => this.idOf(code));
    const locked = await this.client.query(
      'SELECT id FROM "Prompt" WHERE id = ANY($1::uuid[]) FOR KEY SHARE',
      [promptIds],
    );
    if (locked.rowCount !== promptIds.length)
      throw new HttpError(409, 'Prompts of the project were deleted during the import; send it again.');
    const promptCode = new Map(promptIds.map((id, i) => [id, codes[i]!]));
    const responseCode = new Map<string, number>();
    const responses = await this.client.query<{ id: string; promptId: string; text: string }>(
      `SELECT id, "promptId", text FROM "Response" WHERE "promptId" = ANY($1::uuid[])
       ORDER BY "createdAt", id FOR KEY SHARE`,
      [promptIds],
    );
    for (const { id, promptId, text } of responses.rows) {
      const [a, b, c, d] = digest(`${promptCode.get(promptId)!}\u0000${text}`);
      let code = this.responses.get(a, b, c, d);
      if (code < 0) this.responses.set(a, b, c, d, (code = EXISTING + this.existing.push(id) - 1));
      responseCode.set(id, code);
    }
    const comparisons = await this.client.query<{ id: string; a: string; b: string; ranked: string[] }>(
      `SELECT id, "responseAId" AS a, "responseBId" AS b, "responseIds" AS ranked FROM "Comparison"
       WHERE "promptId" = ANY($1::uuid[]) ORDER BY "createdAt", id FOR KEY SHARE`,
      [promptIds],
    );
    for (const { id, a, b, ranked } of comparisons.rows) {
      if (ranked.length > 0) {
        const codes = ranked.map((response) => responseCode.get(response));
        if (codes.some((code) => code === undefined)) continue;
        const [k1, k2, k3, k4] = rankingKey(codes as number[]);
        if (this.comparisons.get(k1, k2, k3, k4) >= 0) continue;
        const code = EXISTING + this.existing.push(id) - 1;
        this.comparisons.set(k1, k2, k3, k4, code * 2);
        this.rankingOrder.set(code, codes as number[]);
        continue;
      }
      const [codeA, codeB] = [responseCode.get(a), responseCode.get(b)];
      if (codeA === undefined || codeB === undefined) continue;
      const [lo, hi] = codeA < codeB ? [codeA, codeB] : [codeB, codeA];
      if (this.comparisons.get(lo, hi, 0, 0) >= 0) continue;
      const code = EXISTING + this.existing.push(id) - 1;
      this.comparisons.set(lo, hi, 0, 0, code * 2 + (lo === codeA ? 1 : 0));
    }
    for (const code of codes) this.loadedPrompts.add(code);
  }

  /** A row's response: its code, once new ones are written to `out`. */
  private response(prompt: number, text: string, out: CopyBuffer): number {
    const [a, b, c, d] = digest(`${prompt}\u0000${text}`);
    let code = this.responses.get(a, b, c, d);
    if (code < 0) {
      this.responses.set(a, b, c, d, (code = this.counter++));
      this.writeId(out.id(this.ids.headBytes, code), prompt).text(text).text(this.source, NEWLINE);
    }
    return code;
  }

  /**
   * A ranking row: its responses, its comparison (the same set of responses, in any order, is the
   * same ranking item; a new one keeps the row's order) and its judgment, ranks in stored order.
   */
  private ranking(
    prompt: number,
    ranking: { texts: string[]; ranks: number[] },
    first: number,
    out: {
      responses: CopyBuffer;
      rankings: CopyBuffer;
      comparisons: Map<number, { prompt: number; a: number; b: number; votes: number }>;
    },
  ): void {
    const codes = ranking.texts.map((text) => this.response(prompt, text, out.responses));
    const [k1, k2, k3, k4] = rankingKey(codes);
    const value = this.comparisons.get(k1, k2, k3, k4);
    let code: number;
    if (value < 0) {
      code = this.counter++;
      this.comparisons.set(k1, k2, k3, k4, code * 2);
      this.rankingOrder.set(code, codes);
      this.newComparisons++;
      out.comparisons.set(code, { prompt, a: codes[0]!, b: codes[1]!, votes: 1 });
    } else {
      code = Math.floor(value / 2);
      const pending = code >= first && code < EXISTING ? out.comparisons.get(code) : undefined;
      if (pending) pending.votes++;
      else this.addedVotes.set(code, (this.addedVotes.get(code) ?? 0) + 1);
    }
    const rankOf = new Map(codes.map((response, i) => [response, ranking.ranks[i]!]));
    const ranks = competitionRanks(this.rankingOrder.get(code)!.map((response) => rankOf.get(response)!));
    this.writeId(out.rankings.id(this.ids.headBytes, this.counter++), code)
      .raw('IMPORTED')
      .text(this.source)
      .raw(choiceBetween(ranks[0]!, ranks[1]!))
      .raw('\\N')
      .raw(`{${ranks.join(',')}}`, NEWLINE);
  }

  /** A row's id field: the import's sequence for a new row, the stored id for an existing one. */
  private writeId(out: CopyBuffer, code: number, end = TAB): CopyBuffer {
    return code >= EXISTING
      ? out.raw(this.existing[code - EXISTING]!, end)
      : out.id(this.ids.headBytes, code, end);
  }

  /** Matches the batch's rows and writes what is new (the write runs while the next batches are read). */
  private async flush(): Promise<void> {
    const rows = this.batch;
    this.batch = [];
    if (!rows.length || this.mode === 'prompts') return;
    const unloaded = [...new Set(rows.map((row) => row.prompt))].filter(
      (code) => code >= EXISTING && !this.loadedPrompts.has(code),
    );
    if (unloaded.length) {
      // The connection answers in order: the writes in flight end (or fail) before the reads.
      await this.drain();
      await this.loadExisting(unloaded);
    }
    const buffers = this.buffers.pop() ?? COPIES.map(() => new CopyBuffer());
    const [prompts, responses, pairs, rankedPairs, judgments, rankings] = buffers as [
      CopyBuffer,
      CopyBuffer,
      CopyBuffer,
      CopyBuffer,
      CopyBuffer,
      CopyBuffer,
    ];
    const first = this.counter;
    for (const [code, json] of this.promptJson)
      prompts.id(this.ids.headBytes, code).raw(this.projectId).text(json, NEWLINE);
    this.promptJson.clear();
    const comparisons = new Map<number, { prompt: number; a: number; b: number; votes: number }>();
    for (const row of rows) {
      if (row.ranking) {
        this.ranking(row.prompt, row.ranking, first, { responses, rankings, comparisons });
        continue;
      }
      const chosen = this.response(row.prompt, row.chosen, responses);
      const rejected = this.response(row.prompt, row.rejected, responses);
      const [lo, hi] = chosen < rejected ? [chosen, rejected] : [rejected, chosen];
      let value = this.comparisons.get(lo, hi, 0, 0);
      if (value < 0) {
        const code = this.counter++;
        value = code * 2 + (lo === chosen ? 1 : 0);
        this.comparisons.set(lo, hi, 0, 0, value);
        this.newComparisons++;
        comparisons.set(code, { prompt: row.prompt, a: chosen, b: rejected, votes: 1 });
      } else {
        const code = Math.floor(value / 2);
        const pending = code >= first && code < EXISTING ? comparisons.get(code) : undefined;
        if (pending) pending.votes++;
        else this.addedVotes.set(code, (this.addedVotes.get(code) ?? 0) + 1);
      }
      const a = value % 2 === 1 ? lo : hi;
      this.writeId(judgments.id(this.ids.headBytes, this.counter++), Math.floor(value / 2))
        .raw('IMPORTED')
        .text(this.source)
        .raw(chosen === a ? 'A' : 'B')
        .raw(row.strength === null ? '\\N' : String(row.strength), NEWLINE);
    }
    for (const [code, c] of comparisons) {
      const order = this.rankingOrder.get(code);
      const out = order ? rankedPairs : pairs;
      out.id(this.ids.headBytes, code).raw(this.projectId);
      this.writeId(this.writeId(this.writeId(out, c.prompt), c.a), c.b);
      out.raw(String(c.votes)).raw(String(c.votes), order ? TAB : NEWLINE);
      if (order) out.raw(`{${order.map((response) => this.idOf(response)).join(',')}}`, NEWLINE);
    }
    const release = () => {
      for (const buffer of buffers) buffer.reset();
      this.buffers.push(buffers);
    };
    if (this.mode !== 'write') return release();
    // At most WRITES_AHEAD batches wait to be written; each write starts when the one before ends.
    while (this.writes.length >= WRITES_AHEAD) await this.writes.shift();
    const previous = this.writes.at(-1);
    const write = (async () => {
      if (previous) await previous;
      try {
        for (const [i, buffer] of buffers.entries())
          if (!buffer.empty)
            await pipeline(Readable.from([buffer.rows]), this.client.query(copyFrom(COPIES[i]!)));
      } finally {
        release();
      }
    })();
    // Its failure is answered by the next await of it; until then it is not unhandled.
    write.catch(() => undefined);
    this.writes.push(write);
  }

  /** Waits for every write in flight (the first failure is thrown). */
  private async drain(): Promise<void> {
    while (this.writes.length) await this.writes.shift();
  }

  /** The counts so far (a refused file's report). */
  counts(): ImportCounts {
    return {
      prompts: this.newPrompts + this.matchedPrompts.size,
      newPrompts: this.newPrompts,
      comparisons: this.newComparisons,
    };
  }

  /**
   * Matches and writes the last batch, adds the votes for comparisons written before (or existing),
   * and ends the skipped key checks; the transaction's later writes are checked again.
   */
  async finish(): Promise<ImportCounts> {
    await this.flush();
    await this.drain();
    if (this.mode === 'write' && this.addedVotes.size) {
      const ids = [...this.addedVotes.keys()].map((code) => this.idOf(code));
      await this.client.query(
        `UPDATE "Comparison" c SET "requiredVotes" = c."requiredVotes" + v.n, "voteCount" = c."voteCount" + v.n
         FROM unnest($1::uuid[], $2::int[]) AS v(id, n) WHERE c.id = v.id`,
        [ids, [...this.addedVotes.values()]],
      );
    }
    if (this.skipsKeyChecks) await this.client.query('SET LOCAL session_replication_role = DEFAULT');
    return this.counts();
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
