// Import files as streams: a file is read line by line (JSONL) or record by record (CSV) and never
// held whole in memory. An upload's body (JSON with the file's text in `content`, optionally
// gzip-encoded) is parsed as it arrives and the text written to a private temporary file; gzip is
// unpacked with the import limit as its bound, in the server and in the CLI alike.
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { parse as parseCsvStream, type Options as CsvOptions } from 'csv-parse';
import { HttpError } from '../errors.js';
import { LONE_SURROGATE_PROBLEM, LONE_SURROGATE_SOURCE } from '../unstorable.js';

/** A file to import: its text, or something that reads it as bytes (as often as asked). */
export type ImportContent = string | ImportStream;

export interface ImportStream {
  open(): Readable;
  /** Lines whose text the upload could not carry as it was (a lone surrogate), by line number. */
  lineProblems?: ReadonlyMap<number, string>;
}

/** No line of an import file may be longer (three texts of 100,000 characters fit many times). */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;

const limitMessage = (limit: number, what: string) =>
  `${what} is larger than the import limit of ${limit} bytes (IMPORT_LIMIT_BYTES); split the file.`;

/** Passes bytes on until more than `limit` went through, then fails with 413. */
export class ByteLimit extends Transform {
  private seen = 0;
  constructor(
    private readonly limit: number,
    private readonly what: string,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) return done(new HttpError(413, limitMessage(this.limit, this.what)));
    done(null, chunk);
  }
}

/**
 * `source` unpacked (gzip), failing with 413 past `limit` unpacked bytes: a small gzip file may
 * unpack to gigabytes, and nothing past the limit is ever produced or kept.
 */
export function gunzipBounded(source: Readable, limit: number): Readable {
  // maxOutputLength bounds each inflate call's output; the count bounds the whole stream.
  const gunzip = createGunzip({ maxOutputLength: Math.max(limit + 1, 64 * 1024) });
  const counted = new ByteLimit(limit, 'The unpacked file');
  source.on('error', (error) => counted.destroy(error));
  gunzip.on('error', (error: Error & { code?: string }) =>
    counted.destroy(
      error.code === 'ERR_BUFFER_TOO_LARGE'
        ? new HttpError(413, limitMessage(limit, 'The unpacked file'))
        : new HttpError(400, `The gzip data cannot be unpacked: ${error.message}`),
    ),
  );
  counted.on('close', () => {
    gunzip.destroy();
    source.destroy();
  });
  return source.pipe(gunzip).pipe(counted);
}

/** A file on disk (gzip when its name ends in .gz), at most `limit` bytes once unpacked. */
export function fileContent(file: string, limit: number): ImportStream {
  return {
    open() {
      const raw = createReadStream(file);
      if (file.endsWith('.gz')) return gunzipBounded(raw, limit);
      const counted = new ByteLimit(limit, 'The file');
      raw.on('error', (error) => counted.destroy(error));
      counted.on('close', () => raw.destroy());
      return raw.pipe(counted);
    },
  };
}

/** The text of a string in pieces of about `size` characters, never splitting a surrogate pair. */
function* stringPieces(text: string, size = 1 << 16): Generator<string> {
  for (let start = 0; start < text.length;) {
    let end = Math.min(start + size, text.length);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end++;
    yield text.slice(start, end);
    start = end;
  }
}

function readableOf(content: ImportContent): Readable {
  return typeof content === 'string' ? Readable.from(stringPieces(content)) : content.open();
}

/**
 * The lines of a file, numbered from 1, without their line ends ("\n" or "\r\n"). More than
 * `maxLines` lines: 413.
 */
export async function* textLines(
  content: ImportContent,
  maxLines: number,
): AsyncGenerator<{ line: number; text: string }> {
  let line = 0;
  const next = (text: string) => {
    if (++line > maxLines) throw new HttpError(413, `The file has more than ${maxLines} lines; split it.`);
    return { line, text: text.endsWith('\r') ? text.slice(0, -1) : text };
  };
  if (typeof content === 'string') {
    for (let start = 0; start < content.length;) {
      let end = content.indexOf('\n', start);
      if (end === -1) end = content.length;
      yield next(content.slice(start, end));
      start = end + 1;
    }
    return;
  }
  const stream = content.open();
  let rest: Buffer | null = null;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const bytes: Buffer = rest ? Buffer.concat([rest, chunk]) : chunk;
      let start = 0;
      for (let end = bytes.indexOf(10, start); end !== -1; end = bytes.indexOf(10, start)) {
        yield next(bytes.toString('utf8', start, end));
        start = end + 1;
      }
      rest = start < bytes.length ? bytes.subarray(start) : null;
      if (rest && rest.length > MAX_LINE_BYTES)
        throw new HttpError(413, `Line ${line + 1} is longer than ${MAX_LINE_BYTES} bytes.`);
    }
    if (rest) yield next(rest.toString('utf8'));
  } finally {
    stream.destroy();
  }
}

export interface CsvRecord {
  record: Record<string, string>;
  info: { lines: number };
}

/**
 * The records of a CSV file with a header row, as csv-parse reads them from a stream. A file
 * csv-parse cannot read: 400 with the line it stopped at.
 */
export async function* csvRecords(
  content: ImportContent,
  options: CsvOptions,
  maxRows: number,
): AsyncGenerator<CsvRecord> {
  const source = readableOf(content);
  const parser = parseCsvStream({ ...options, columns: true, info: true });
  source.on('error', (error) => parser.destroy(error));
  source.pipe(parser);
  let rows = 0;
  try {
    for await (const record of parser as AsyncIterable<CsvRecord>) {
      if (++rows > maxRows) throw new HttpError(413, `The file has more than ${maxRows} rows; split it.`);
      yield record;
    }
  } catch (error) {
    if (error instanceof HttpError) throw error;
    const line = (error as { lines?: number }).lines ?? 1;
    throw new HttpError(400, `The CSV file cannot be read: ${(error as Error).message}`, 'IMPORT_INVALID', {
      errors: [{ line, message: (error as Error).message }],
    });
  } finally {
    source.destroy();
    parser.destroy();
  }
}

// --- Upload bodies ------------------------------------------------------------------------------

/** An uploaded file's text, in a private temporary file until the request is answered. */
export class ImportUpload implements ImportStream {
  readonly lineProblems = new Map<number, string>();
  constructor(
    private readonly dir: string,
    readonly file: string,
    readonly bytes: number,
  ) {}

  open(): Readable {
    return createReadStream(this.file);
  }

  async dispose(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

const LONE_SURROGATE = new RegExp(LONE_SURROGATE_SOURCE, 'g');
/** Largest other field in an import body (format, source, onError, dryRun). */
const MAX_FIELD_CHARS = 64 * 1024;

const invalidJson = (detail: string) =>
  new HttpError(400, `Invalid request: body is not valid JSON (${detail})`);

/** How many backslashes `text` ends with. */
function trailingSlashes(text: string): number {
  let count = 0;
  for (let at = text.length - 1; at >= 0 && text.charCodeAt(at) === 92; at--) count++;
  return count;
}

/**
 * Where an escape that `text` (a JSON string's inside, cut anywhere) ends in the middle of starts:
 * its last backslash that is not itself escaped, when fewer characters follow than the escape
 * needs (2, or 6 for \uXXXX); else the text's length.
 */
function openEscapeAt(text: string): number {
  for (let at = text.length - 1; at >= 0 && at >= text.length - 6; at--) {
    if (text.charCodeAt(at) !== 92) continue;
    if (trailingSlashes(text.slice(0, at + 1)) % 2 === 0) return text.length; // "\\": complete
    const need = text[at + 1] === 'u' ? 6 : 2;
    return text.length - at < need ? at : text.length;
  }
  return text.length;
}

/**
 * Reads a JSON object body as it arrives: the string field `contentKey` goes to a temporary file
 * (its escapes decoded), every other field is kept (each at most 64 kB). Compressed and unpacked
 * sizes are bounded by `limit` (413). The file's text is the field's value exactly, except that a
 * lone surrogate (no UTF-8 form) is written as U+FFFD and its line noted in `lineProblems`.
 */
export async function receiveUpload(
  body: Readable,
  contentEncoding: string | undefined,
  limit: number,
  contentKey = 'content',
): Promise<{ fields: Record<string, unknown>; upload: ImportUpload | null }> {
  const encoding = (contentEncoding ?? 'identity').trim().toLowerCase();
  if (!['identity', 'gzip', 'x-gzip'].includes(encoding))
    throw new HttpError(415, `Content-Encoding ${encoding} is not supported; send gzip or none.`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'loom-import-'));
  const file = path.join(dir, 'content');
  const out = createWriteStream(file, { mode: 0o600 });
  let writeError: Error | null = null;
  out.on('error', (error) => (writeError ??= error));
  const fields: Record<string, unknown> = {};
  let written = 0;
  let newlines = 0;
  const problems = new Map<number, string>();

  // The parser's state between pieces of text.
  type State =
    'start' | 'open' | 'key' | 'colon' | 'value' | 'content' | 'other' | 'comma' | 'nextKey' | 'end';
  let state = 'start' as State;
  let sawContent = false;
  let key = '';
  let keyRaw = '';
  let inString = false;
  let escaped = false;
  let depth = 0;
  let raw = '';
  let pendingEscape = '';
  let heldSurrogate = '';

  const writeText = async (text: string, final = false) => {
    text = heldSurrogate + text;
    heldSurrogate = '';
    const last = text.charCodeAt(text.length - 1);
    if (!final && last >= 0xd800 && last <= 0xdbff) {
      heldSurrogate = text.slice(-1);
      text = text.slice(0, -1);
    }
    if (!text) return;
    LONE_SURROGATE.lastIndex = 0;
    for (let match = LONE_SURROGATE.exec(text); match; match = LONE_SURROGATE.exec(text)) {
      let line = newlines + 1;
      for (let at = text.indexOf('\n'); at !== -1 && at < match.index; at = text.indexOf('\n', at + 1))
        line++;
      if (problems.size < 1000 && !problems.has(line)) problems.set(line, LONE_SURROGATE_PROBLEM);
    }
    for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) newlines++;
    if (writeError) throw writeError;
    const bytes = Buffer.from(text, 'utf8');
    written += bytes.length;
    if (!out.write(bytes)) await once(out, 'drain');
  };

  /**
   * Consumes the content string's text from `piece` at `i`; returns where it stopped. The text up
   * to the closing quote (or the piece's end) is decoded by JSON.parse, in one native call per
   * piece; an escape cut by the piece's end waits in `pendingEscape` for the next piece.
   */
  const contentRun = async (piece: string, i: number): Promise<number> => {
    let end = piece.length;
    let closed = false;
    for (let quote = piece.indexOf('"', i); quote !== -1; quote = piece.indexOf('"', quote + 1)) {
      // A quote ends the string unless an odd run of backslashes (this piece's or held) precedes it.
      let slashes = 0;
      for (let at = quote - 1; at >= i && piece.charCodeAt(at) === 92; at--) slashes++;
      if (slashes === quote - i) slashes += trailingSlashes(pendingEscape);
      if (slashes % 2 === 0) {
        end = quote;
        closed = true;
        break;
      }
    }
    let text = pendingEscape + piece.slice(i, end);
    pendingEscape = '';
    if (!closed) {
      const cut = openEscapeAt(text);
      pendingEscape = text.slice(cut);
      text = text.slice(0, cut);
    }
    let decoded: string;
    try {
      decoded = JSON.parse(`"${text}"`) as string;
    } catch (error) {
      throw invalidJson(`in content: ${(error as Error).message}`);
    }
    await writeText(decoded, closed);
    if (!closed) return end;
    state = 'comma';
    return end + 1;
  };

  const finishOther = () => {
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (error) {
      throw invalidJson((error as Error).message);
    }
    fields[key] = value;
    raw = '';
    state = 'comma';
  };

  const isSpace = (char: string) => char === ' ' || char === '\n' || char === '\r' || char === '\t';

  /** Feeds one piece of decoded text through the parser. */
  const feed = async (piece: string) => {
    let i = 0;
    while (i < piece.length) {
      if (state === 'content') {
        i = await contentRun(piece, i);
        continue;
      }
      const char = piece[i]!;
      if (state === 'key') {
        // Inside a key's quotes: keys are short, read them character by character.
        keyRaw += char;
        i++;
        if (keyRaw.length > 1024) throw invalidJson('a key is too long');
        if (escaped) escaped = false;
        else if (char === '\\') escaped = true;
        else if (char === '"') {
          try {
            key = JSON.parse(keyRaw) as string;
          } catch (error) {
            throw invalidJson((error as Error).message);
          }
          if (key === '__proto__' || key === 'constructor' || key === 'prototype')
            throw new HttpError(400, `Invalid request: body.${key}: unknown field`, 'VALIDATION');
          if (key in fields || (key === contentKey && sawContent))
            throw invalidJson(`the field ${key} appears twice`);
          state = 'colon';
        }
        continue;
      }
      if (state === 'other') {
        if (!inString && depth === 0 && (char === ',' || char === '}' || isSpace(char))) {
          finishOther(); // a number, true, false or null ends before this character
          continue;
        }
        raw += char;
        i++;
        if (raw.length > MAX_FIELD_CHARS)
          throw new HttpError(413, `The field ${key} is longer than ${MAX_FIELD_CHARS} characters.`);
        if (inString) {
          if (escaped) escaped = false;
          else if (char === '\\') escaped = true;
          else if (char === '"') {
            inString = false;
            if (depth === 0) finishOther();
          }
        } else if (char === '"') inString = true;
        else if (char === '{' || char === '[') depth++;
        else if (char === '}' || char === ']') {
          depth--;
          if (depth === 0) finishOther();
        }
        continue;
      }
      i++;
      if (isSpace(char)) continue;
      switch (state) {
        case 'start':
          if (char !== '{') throw new HttpError(400, 'Invalid request: body must be object', 'VALIDATION');
          state = 'open';
          break;
        case 'open':
        case 'nextKey':
          if (char === '}' && state === 'open') state = 'end';
          else if (char === '"') {
            keyRaw = '"';
            escaped = false;
            state = 'key';
          } else throw invalidJson('expected a key');
          break;
        case 'colon':
          if (char !== ':') throw invalidJson('expected ":"');
          state = 'value';
          break;
        case 'value':
          if (key === contentKey && char === '"') {
            sawContent = true;
            state = 'content';
            break;
          }
          if (char === ',' || char === '}' || char === ']' || char === ':')
            throw invalidJson('expected a value');
          raw = char;
          depth = char === '{' || char === '[' ? 1 : 0;
          inString = char === '"';
          escaped = false;
          state = 'other';
          break;
        case 'comma':
          if (char === ',') state = 'nextKey';
          else if (char === '}') state = 'end';
          else throw invalidJson('expected "," or "}"');
          break;
        default:
          throw invalidJson('unexpected text after the object');
      }
    }
  };

  const decoder = new TextDecoder('utf-8');
  let received = 0;
  try {
    const sent = new ByteLimit(limit, 'The request body');
    body.on('error', (error) => sent.destroy(error));
    body.pipe(sent);
    const stream = encoding === 'identity' ? sent : gunzipBounded(sent, limit);
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      received += chunk.length;
      await feed(decoder.decode(chunk, { stream: true }));
    }
    await feed(decoder.decode());
    if (received === 0)
      throw new HttpError(400, "Body cannot be empty when content-type is set to 'application/json'");
    if (state !== 'end') throw invalidJson('the body ends too early');
    await new Promise<void>((resolve, reject) =>
      out.end((error?: Error | null) => (error ? reject(error) : resolve())),
    );
    if (!sawContent) {
      await rm(dir, { recursive: true, force: true });
      return { fields, upload: null };
    }
    const done = new ImportUpload(dir, file, written);
    for (const [line, problem] of problems) done.lineProblems.set(line, problem);
    return { fields, upload: done };
  } catch (error) {
    out.destroy();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
