// The researchers' commands of the `loom` CLI: export, import and snapshot. With API_TOKEN set they
// talk to the running server over HTTP (--url, default http://localhost:3000); without it they open
// the database themselves as a local admin, like create-user.
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { createGzip } from 'node:zlib';
import { Presets, SingleBar } from 'cli-progress';
import type { TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { loadConfig } from '../core/config.js';
import type { PrismaClient } from '../core/db/client.js';
import { openDatabase } from '../core/db/open.js';
import { HttpError } from '../core/errors.js';
import {
  CreateSnapshotBody,
  ExportBody,
  PreferenceImportBody,
  type ExportFilters,
  type ExportOptions,
  type PreferenceImportReport,
  type Snapshot,
} from '../core/schemas/datasets.js';
import { fileContent } from '../core/services/import-source.js';
import {
  countJudgments,
  isPairwise,
  runExport,
  specOf,
  type ExportResult,
  type Sink,
} from '../core/services/exports.js';
import { PreferenceImportService } from '../core/services/preference-imports.js';
import { labelSchemaOf } from '../core/services/project-settings.js';
import { SnapshotService } from '../core/services/snapshots.js';

/** A mistake in the command line (exit code 2). */
export class UsageError extends Error {}

export const DATA_HELP = `Usage:
  npm run cli -- export --project <id or name> --format <format> --out <file> [filters] [options]
  npm run cli -- import --project <id or name> --format <trl|hh|csv|ranking> [--source <name>] [--on-error skip|refuse] [--dry-run] <file>
  npm run cli -- snapshot create --project <id or name> --name <name> --format <format> [filters] [options]
  npm run cli -- snapshot list --project <id or name>
  npm run cli -- snapshot download <snapshot id> --out <file>

Formats: trl, trl-conversational, hh, openrlhf, csv, parquet. Import reads .gz files too.
Filters and options (export and snapshot create):
  --mode raw|aggregated        one row per judgment (default) or per comparison (majority vote)
  --from <ISO time> --to <ISO time>   judgments made in [from, to)
  --policy-version <id>  --round <id>   (repeatable)
  --min-agreement <0..1>  --min-gold-accuracy <0..1>
  --exclude-simulated  --exclude-imported  --exclude-gold
  --split <fraction>:<train|validation>[:seed]   train/validation split by prompt
  --margin                     TRL margin column from the strength
  --implicit-prompt            TRL: prompt inside chosen/rejected instead of a prompt column
  --prompt-key/--chosen-key/--rejected-key <key>   OpenRLHF keys;  --conversational  messages lists
  --identify-raters            real rater ids instead of pseudonyms
  --no-spreadsheet-safe        CSV: keep cells exactly as stored (for pandas); by default a cell
                               starting with = + - @ tab or CR gets a leading ' (no formulas in Excel)
Common: --url <origin> (default http://localhost:3000, used when API_TOKEN is set), --help.
Without API_TOKEN the command opens the database directly (DATABASE_URL, or the embedded one under
DATA_DIR) as a local admin. Files are written to <file>.partial and renamed when complete.

Exit codes: 0 done; 1 unexpected failure (network, server error); 2 bad usage or request (400);
3 conflict (409, e.g. a snapshot name in use); 4 not found (404); 5 not signed in or not allowed
(401/403); 6 import refused because rows are bad (nothing stored; the report lists them).`;

const DATA_OPTIONS = {
  project: { type: 'string' },
  format: { type: 'string' },
  out: { type: 'string' },
  name: { type: 'string' },
  url: { type: 'string' },
  mode: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  'policy-version': { type: 'string', multiple: true },
  round: { type: 'string', multiple: true },
  'min-agreement': { type: 'string' },
  'min-gold-accuracy': { type: 'string' },
  'exclude-simulated': { type: 'boolean' },
  'exclude-imported': { type: 'boolean' },
  'exclude-gold': { type: 'boolean' },
  split: { type: 'string' },
  margin: { type: 'boolean' },
  'implicit-prompt': { type: 'boolean' },
  'prompt-key': { type: 'string' },
  'chosen-key': { type: 'string' },
  'rejected-key': { type: 'string' },
  conversational: { type: 'boolean' },
  'identify-raters': { type: 'boolean' },
  'spreadsheet-safe': { type: 'boolean' },
  'no-spreadsheet-safe': { type: 'boolean' },
  source: { type: 'string' },
  'on-error': { type: 'string' },
  'dry-run': { type: 'boolean' },
  help: { type: 'boolean' },
} as const;

type DataValues = ReturnType<typeof parseDataArgs>['values'];

function parseDataArgs(args: string[]) {
  return parseArgs({ args, options: DATA_OPTIONS, strict: true, allowPositionals: true });
}

/** Exit status for an HTTP status, so scripts can tell "fix your input" from "try again". */
export class RequestFailed extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly exitCode = status === 409
      ? 3
      : status === 404
        ? 4
        : status === 401 || status === 403
          ? 5
          : status < 500
            ? 2
            : 1,
  ) {
    super(message);
  }
}

function share(value: string | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isFinite(number) || number < 0 || number > 1)
    throw new UsageError(`${what} must be between 0 and 1.`);
  return number;
}

/** The export request the flags describe; the server (or the schema, locally) checks it again. */
function exportBodyOf(values: DataValues): ExportBody {
  if (!values.format) throw new UsageError('--format is required.');
  const filters: ExportFilters = {};
  if (values.from) filters.from = values.from;
  if (values.to) filters.to = values.to;
  if (values['policy-version']?.length) filters.policyVersionIds = values['policy-version'];
  if (values.round?.length) filters.roundIds = values.round;
  const minAgreement = share(values['min-agreement'], '--min-agreement');
  if (minAgreement !== undefined) filters.minAgreement = minAgreement;
  const minGold = share(values['min-gold-accuracy'], '--min-gold-accuracy');
  if (minGold !== undefined) filters.minGoldAccuracy = minGold;
  if (values['exclude-simulated']) filters.excludeSimulated = true;
  if (values['exclude-imported']) filters.excludeImported = true;
  if (values['exclude-gold']) filters.excludeGold = true;
  if (values.split) {
    const [fraction, part, seed] = values.split.split(':');
    if (part !== 'train' && part !== 'validation')
      throw new UsageError('--split is <fraction>:<train|validation>[:seed], e.g. 0.1:train');
    filters.split = { validationFraction: Number(fraction), part, ...(seed ? { seed } : {}) };
  }
  const options: ExportOptions = {};
  if (values.margin) options.margin = true;
  if (values['implicit-prompt']) options.prompt = 'implicit';
  if (values['prompt-key']) options.promptKey = values['prompt-key'];
  if (values['chosen-key']) options.chosenKey = values['chosen-key'];
  if (values['rejected-key']) options.rejectedKey = values['rejected-key'];
  if (values.conversational) options.conversational = true;
  if (values['identify-raters']) options.identifyRaters = true;
  if (values['spreadsheet-safe'] && values['no-spreadsheet-safe'])
    throw new UsageError('--spreadsheet-safe and --no-spreadsheet-safe contradict each other.');
  if (values['spreadsheet-safe']) options.spreadsheetSafe = true;
  if (values['no-spreadsheet-safe']) options.spreadsheetSafe = false;
  const body = {
    format: values.format,
    ...(values.mode ? { mode: values.mode } : {}),
    filters,
    options,
  } as ExportBody;
  checkBody(ExportBody, body);
  return body;
}

function checkBody(schema: TSchema, body: unknown): void {
  const problem = [...Value.Errors(schema, body)][0];
  if (problem)
    throw new UsageError(`${problem.instancePath.replace(/^\//, '') || 'input'}: ${problem.message}`);
}

/** The HTTP client: Bearer API_TOKEN against --url. */
function remote(values: DataValues) {
  const origin = (values.url ?? 'http://localhost:3000').replace(/\/+$/, '');
  const token = process.env.API_TOKEN!;
  return async (method: string, path: string, body?: unknown): Promise<Response> => {
    let response: Response;
    try {
      response = await fetch(`${origin}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (error) {
      throw new RequestFailed(
        0,
        `Cannot reach ${origin}: ${(error as Error).cause ?? (error as Error).message}`,
        1,
      );
    }
    if (!response.ok) {
      const answer = (await response.json().catch(() => ({}))) as { message?: string; errors?: unknown };
      const error = new RequestFailed(response.status, answer.message ?? `HTTP ${response.status}`);
      Object.assign(error, { answer });
      throw error;
    }
    return response;
  };
}

async function projectIdOf(
  values: DataValues,
  call: ReturnType<typeof remote> | null,
  prisma?: PrismaClient,
) {
  const wanted = values.project;
  if (!wanted) throw new UsageError('--project is required (an id or a name).');
  if (call) {
    const projects = (await (await call('GET', '/api/projects')).json()) as { id: string; name: string }[];
    const found = projects.find((project) => project.id === wanted || project.name === wanted);
    if (!found) throw new RequestFailed(404, `No project "${wanted}".`);
    return found.id;
  }
  const isUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(wanted);
  const found = await prisma!.project.findFirst({ where: isUuid ? { id: wanted } : { name: wanted } });
  if (!found) throw new RequestFailed(404, `No project "${wanted}".`);
  return found.id;
}

/** Writes to <out>.partial and renames when complete: a script never sees half a file. */
async function writeFileStream(out: string, fill: (sink: Sink) => Promise<void>): Promise<number> {
  const partial = `${out}.partial`;
  const file = createWriteStream(partial);
  let bytes = 0;
  try {
    await fill(async (chunk) => {
      bytes += chunk.length;
      if (!file.write(chunk)) await once(file, 'drain');
    });
    await new Promise<void>((resolve, reject) =>
      file.end((error?: Error | null) => (error ? reject(error) : resolve())),
    );
    await rename(partial, out);
  } catch (error) {
    file.destroy();
    await rm(partial, { force: true });
    throw error;
  }
  return bytes;
}

function progressBar(total: number) {
  const bar = new SingleBar(
    {
      format: '{bar} {percentage}% | {value}/{total} judgments | {eta_formatted} left',
      stream: process.stderr,
    },
    Presets.shades_classic,
  );
  bar.start(Math.max(total, 1), 0);
  return bar;
}

async function withLocalDatabase<T>(work: (prisma: PrismaClient, secret: string) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const db = await openDatabase(config, { poolMax: 3 });
  try {
    return await work(db.prisma, config.sessionSecret);
  } finally {
    await db.close();
  }
}

/** Streams an HTTP download into the file, counting lines as rows for the bar. */
async function downloadTo(response: Response, out: string, total: number): Promise<number> {
  const bar = progressBar(total);
  let rows = 0;
  try {
    return await writeFileStream(out, async (sink) => {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        for (const byte of chunk) if (byte === 10) rows++;
        bar.update(Math.min(rows, total));
        await sink(chunk);
      }
    });
  } finally {
    bar.update(total);
    bar.stop();
  }
}

export async function exportCommand(args: string[]): Promise<void> {
  const { values } = parseDataArgs(args);
  if (values.help) return void console.log(DATA_HELP);
  if (!values.out) throw new UsageError('--out <file> is required.');
  const body = exportBodyOf(values);
  const out = values.out;
  if (process.env.API_TOKEN) {
    const call = remote(values);
    const projectId = await projectIdOf(values, call);
    const response = await call('POST', `/api/projects/${projectId}/export`, body);
    const total = Number(response.headers.get('x-loom-judgments') ?? 0);
    const identical = response.headers.get('x-loom-identical-left-out');
    const bytes = await downloadTo(response, out, total);
    console.error(
      `Wrote ${out} (${bytes} bytes, ${total} judgments selected` +
        (identical !== null ? `; ${identical} pairs of identical responses left out).` : ').'),
    );
    return;
  }
  await withLocalDatabase(async (prisma, secret) => {
    const projectId = await projectIdOf(values, null, prisma);
    const project = await prisma.project.findUniqueOrThrow({ where: { id: projectId } });
    const spec = specOf(body);
    const selection = { projectId, filters: spec.filters };
    const judgments = await countJudgments(prisma, selection);
    const bar = progressBar(judgments);
    let result: ExportResult | undefined;
    try {
      await writeFileStream(out, async (sink) => {
        result = await runExport(prisma, selection, spec, sink, {
          secret,
          levels: labelSchemaOf(project).strengths.length,
          progress: (n) => bar.update(n),
        });
      });
    } finally {
      bar.stop();
    }
    console.error(
      `Wrote ${out}: ${result!.rows} rows from ${result!.judgments} judgments` +
        (isPairwise(spec.format) ? ` (${result!.identical} pairs of identical responses left out)` : '') +
        `, sha256 ${result!.sha256}.`,
    );
  });
}

/** The largest file an import takes, unpacked: the server's IMPORT_LIMIT_BYTES (default 64 MiB). */
export function importLimit(): number {
  const value = Number(process.env.IMPORT_LIMIT_BYTES ?? 67_108_864);
  return Number.isSafeInteger(value) && value > 0 ? value : 67_108_864;
}

/**
 * An import request's JSON body as a stream: the fields, then the file's text as the `content`
 * string, escaped piece by piece as it is read (never the whole file in memory).
 */
async function* importBodyStream(fields: Record<string, unknown>, file: Readable): AsyncGenerator<Buffer> {
  const head = JSON.stringify(fields);
  yield Buffer.from(`${head.slice(0, -1)}${head === '{}' ? '' : ','}"content":"`);
  // Whole characters only: the decoder keeps a character split between chunks for the next one.
  const decoder = new TextDecoder('utf-8');
  for await (const chunk of file as AsyncIterable<Buffer>) {
    const text = decoder.decode(chunk, { stream: true });
    if (text) yield Buffer.from(JSON.stringify(text).slice(1, -1));
  }
  const last = decoder.decode();
  if (last) yield Buffer.from(JSON.stringify(last).slice(1, -1));
  yield Buffer.from('"}');
}

/** Sends an import over HTTP, gzip-encoded as it is read; the server unpacks it within its limit. */
async function sendImport(
  values: DataValues,
  projectId: string,
  fields: Record<string, unknown>,
  file: Readable,
): Promise<PreferenceImportReport> {
  const origin = (values.url ?? 'http://localhost:3000').replace(/\/+$/, '');
  let readError: unknown = null;
  const json = Readable.from(importBodyStream(fields, file));
  const body = createGzip();
  json.on('error', (error) => {
    readError = error;
    body.destroy(error);
  });
  json.pipe(body);
  let response: Response;
  try {
    response = await fetch(`${origin}/api/projects/${projectId}/preferences/import`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${process.env.API_TOKEN}`,
        'content-type': 'application/json',
        'content-encoding': 'gzip',
      },
      body,
      duplex: 'half',
    } as RequestInit);
  } catch (error) {
    if (readError) throw readError;
    throw new RequestFailed(
      0,
      `Cannot reach ${origin}: ${(error as Error).cause ?? (error as Error).message}`,
      1,
    );
  }
  const answer = (await response.json().catch(() => ({}))) as Record<string, unknown>;
  if (!response.ok) {
    const error = new RequestFailed(response.status, (answer.message as string) ?? `HTTP ${response.status}`);
    Object.assign(error, { answer });
    throw error;
  }
  return answer as PreferenceImportReport;
}

function printImportReport(report: Partial<PreferenceImportReport>): void {
  console.log(
    `${report.dryRun ? 'Checked' : 'Imported'} ${report.imported ?? 0} of ${report.lines ?? 0} rows; skipped ${report.skipped ?? 0}` +
      ` ${JSON.stringify(report.errorCounts ?? {})}; prompts ${report.prompts ?? 0} (new ${report.newPrompts ?? 0}); new comparisons ${report.comparisons ?? 0}.`,
  );
  for (const error of (report.errors ?? []).slice(0, 20))
    console.log(`  line ${error.line}: ${error.message}`);
  if ((report.errors?.length ?? 0) > 20) console.log(`  ... and ${report.errors!.length - 20} more`);
}

export async function importCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseDataArgs(args);
  if (values.help) return void console.log(DATA_HELP);
  const file = positionals[0];
  if (!file) throw new UsageError('Name the file to import.');
  const fields = {
    format: values.format as PreferenceImportBody['format'],
    source: values.source ?? path.basename(file).replace(/\.gz$/, ''),
    onError: (values['on-error'] ?? 'refuse') as 'skip' | 'refuse',
    dryRun: values['dry-run'] ?? false,
  };
  checkBody(PreferenceImportBody, { ...fields, content: 'the file' });
  const size = await stat(file).catch(() => null);
  if (!size?.isFile()) throw new UsageError(`Cannot read ${file}.`);
  const limit = importLimit();
  if (!file.endsWith('.gz') && size.size > limit)
    throw new HttpError(
      413,
      `The file is larger than the import limit of ${limit} bytes (IMPORT_LIMIT_BYTES); split the file.`,
    );
  // Read as a stream; gzip is unpacked as it is read and stopped at the import limit (a small .gz
  // can unpack to gigabytes): exit code 2 with the limit in the message, nothing stored.
  const content = fileContent(file, limit);
  try {
    if (process.env.API_TOKEN) {
      const call = remote(values);
      const projectId = await projectIdOf(values, call);
      printImportReport(await sendImport(values, projectId, fields, content.open()));
      return;
    }
    await withLocalDatabase(async (prisma) => {
      const projectId = await projectIdOf(values, null, prisma);
      printImportReport(
        await new PreferenceImportService(prisma).importFile(projectId, { ...fields, content }, { id: null }),
      );
    });
  } catch (error) {
    const answer =
      error instanceof HttpError ? error.extra : (error as { answer?: Record<string, unknown> }).answer;
    if (answer && 'errors' in answer && 'lines' in answer) {
      printImportReport(answer as Partial<PreferenceImportReport>);
      throw new RequestFailed(400, (error as Error).message, 6);
    }
    throw error;
  }
}

export async function snapshotCommand(args: string[]): Promise<void> {
  const [action, ...rest] = args;
  const { values, positionals } = parseDataArgs(rest);
  if (values.help || !action || action === '--help') return void console.log(DATA_HELP);
  const call = process.env.API_TOKEN ? remote(values) : null;
  const local = <T>(work: (snapshots: SnapshotService, prisma: PrismaClient) => Promise<T>) =>
    withLocalDatabase((prisma, secret) => work(new SnapshotService(prisma, secret), prisma));
  if (action === 'create') {
    if (!values.name) throw new UsageError('--name is required.');
    const body: CreateSnapshotBody = { name: values.name, ...exportBodyOf(values) };
    checkBody(CreateSnapshotBody, body);
    const snapshot = call
      ? ((await (
          await call('POST', `/api/projects/${await projectIdOf(values, call)}/snapshots`, body)
        ).json()) as Snapshot)
      : await local(async (snapshots, prisma) =>
          snapshots.create(await projectIdOf(values, null, prisma), body, { id: null }),
        );
    console.log(
      `${snapshot.id}  ${snapshot.name}: ${snapshot.rowCount} rows, ${snapshot.judgments} judgments` +
        (isPairwise(snapshot.format)
          ? `, ${snapshot.identicalLeftOut} pairs of identical responses left out`
          : '') +
        `, sha256 ${snapshot.contentHash}`,
    );
    return;
  }
  if (action === 'list') {
    const snapshots = call
      ? ((await (
          await call('GET', `/api/projects/${await projectIdOf(values, call)}/snapshots`)
        ).json()) as Snapshot[])
      : await local(async (snapshots, prisma) => snapshots.list(await projectIdOf(values, null, prisma)));
    for (const s of snapshots)
      console.log(
        `${s.id}  ${s.createdAt}  ${s.format}/${s.mode}  ${s.rowCount} rows  ${s.contentHash.slice(0, 12)}  ${s.name}`,
      );
    return;
  }
  if (action === 'download') {
    const id = positionals[0];
    if (!id || !values.out) throw new UsageError('snapshot download <id> --out <file>');
    if (!/^[0-9a-f-]{36}$/i.test(id)) throw new UsageError('The snapshot id is a uuid.');
    if (call) {
      const meta = (await (await call('GET', `/api/snapshots/${id}`)).json()) as Snapshot;
      await downloadTo(await call('GET', `/api/snapshots/${id}/download`), values.out, meta.rowCount);
      console.error(`Wrote ${values.out} (sha256 ${meta.contentHash}).`);
      return;
    }
    await local(async (snapshots) => {
      const snapshot = await snapshots.get(id);
      await writeFileStream(values.out!, async (sink) => void (await snapshots.download(snapshot, sink)));
      console.error(`Wrote ${values.out} (sha256 ${snapshot.contentHash}).`);
    });
    return;
  }
  throw new UsageError(`Unknown snapshot action "${action}" (create, list or download).`);
}

/** The exit code for an error from these commands, or null when it is not theirs. */
export function dataExitCode(error: unknown): number | null {
  if (error instanceof RequestFailed) return error.exitCode;
  if (error instanceof UsageError) return 2;
  if (error instanceof HttpError) return new RequestFailed(error.statusCode, error.message).exitCode;
  return null;
}
