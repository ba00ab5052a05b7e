// Typed client for researchers' data routes (exports, counts, snapshots, preference imports), the
// export settings of the Data page as a request body, and streamed downloads with progress.
import type {
  CreateSnapshotBody,
  ExportBody,
  ExportCount,
  ExportFilters,
  ExportFormat,
  ExportOptions,
  PreferenceImportBody,
  PreferenceImportReport,
  Snapshot,
} from '$shared/index.js';
import { ApiError, byId, call, client, errorMessage } from './api.js';

/** Files come back as they are made, any content type, read as a stream (the Response itself). */
const FILE = { parseAs: 'stream', headers: { accept: '*/*' } } as const;

export const datasetsApi = {
  /** Judgments, comparisons and prompts the filters select. */
  count: (projectId: string, body: ExportBody, signal?: AbortSignal): Promise<ExportCount> =>
    call(() => client.POST('/api/projects/{id}/export/count', { params: byId(projectId), body, signal }), {
      signal,
    }),
  /** Resolves when the file starts (headers); read the body as it streams. */
  openExport: (projectId: string, body: ExportBody, signal?: AbortSignal): Promise<Response> =>
    call(
      async () => {
        const answer = await client.POST('/api/projects/{id}/export', {
          ...FILE,
          params: byId(projectId),
          body,
          signal,
        });
        return { ...answer, data: answer.response };
      },
      { signal },
    ),
  /** Newest first. */
  snapshots: (projectId: string): Promise<Snapshot[]> =>
    call(() => client.GET('/api/projects/{id}/snapshots', { params: byId(projectId) })),
  snapshot: (snapshotId: string): Promise<Snapshot> =>
    call(() => client.GET('/api/snapshots/{id}', { params: byId(snapshotId) })),
  createSnapshot: (projectId: string, body: CreateSnapshotBody): Promise<Snapshot> =>
    call(() => client.POST('/api/projects/{id}/snapshots', { params: byId(projectId), body })),
  /** The same bytes as when it was made; Content-Length and X-Loom-Sha256 say which. */
  openSnapshot: (snapshotId: string, signal?: AbortSignal): Promise<Response> =>
    call(
      async () => {
        const answer = await client.GET('/api/snapshots/{id}/download', {
          ...FILE,
          params: byId(snapshotId),
          signal,
        });
        return { ...answer, data: answer.response };
      },
      { signal },
    ),
  /**
   * 400 when rows are bad and `onError` is "refuse" (nothing stored): `ApiError.lineErrors` has the
   * first bad lines. A dry run with "skip" reports everything without storing.
   */
  importPreferences: (projectId: string, body: PreferenceImportBody): Promise<PreferenceImportReport> =>
    call(() => client.POST('/api/projects/{id}/preferences/import', { params: byId(projectId), body })),
};

// --- Formats and settings ----------------------------------------------------------------------

export const FORMATS: readonly { value: ExportFormat; label: string; description: string }[] = [
  {
    value: 'trl',
    label: 'TRL',
    description: 'prompt, chosen, rejected strings (DPOTrainer, RewardTrainer).',
  },
  {
    value: 'trl-conversational',
    label: 'TRL conversational',
    description: 'The same as lists of {role, content} messages.',
  },
  { value: 'hh', label: 'HH-RLHF', description: 'chosen and rejected as Human/Assistant transcripts.' },
  { value: 'openrlhf', label: 'OpenRLHF', description: 'prompt, chosen, rejected under the keys you name.' },
  { value: 'csv', label: 'CSV', description: 'Every field: rater, choice, strength, votes, agreement…' },
  { value: 'parquet', label: 'Parquet', description: 'Every field, columnar (pandas, datasets, Spark).' },
  {
    value: 'ranking',
    label: 'Rankings',
    description: 'One row per ranking: the prompt and its responses best first, with their ranks.',
  },
];

export function formatLabel(format: string): string {
  return FORMATS.find((f) => f.value === format)?.label ?? format;
}

/** Formats of preference pairs: ties, both-bad and comparisons without a strict majority are left out. */
export function isPairwise(format: ExportFormat): boolean {
  return format !== 'csv' && format !== 'parquet' && format !== 'ranking';
}

/** Which options a format reads. */
export const OPTION_FORMATS = {
  margin: ['trl', 'trl-conversational', 'openrlhf'],
  implicitPrompt: ['trl', 'trl-conversational'],
  openrlhfKeys: ['openrlhf'],
  identifyRaters: ['csv', 'parquet'],
  spreadsheetSafe: ['csv'],
} as const satisfies Record<string, readonly ExportFormat[]>;

export function reads(option: keyof typeof OPTION_FORMATS, format: ExportFormat): boolean {
  return (OPTION_FORMATS[option] as readonly ExportFormat[]).includes(format);
}

/** What the Data page's export form holds (percentages and dates as typed). */
export interface ExportSettings {
  format: ExportFormat;
  mode: 'raw' | 'aggregated';
  margin: boolean;
  implicitPrompt: boolean;
  identifyRaters: boolean;
  /** CSV: cells that would start a formula get a leading apostrophe. */
  spreadsheetSafe: boolean;
  promptKey: string;
  chosenKey: string;
  rejectedKey: string;
  conversational: boolean;
  /** yyyy-mm-dd, inclusive; empty = no bound. */
  from: string;
  to: string;
  excludeSimulated: boolean;
  excludeImported: boolean;
  excludeGold: boolean;
  /** Percent; null or undefined (an empty number field) for no bound. */
  minAgreement: number | null | undefined;
  minGoldAccuracy: number | null | undefined;
  split: 'all' | 'train' | 'validation';
  /** Percent of prompts in the validation part. */
  validationPercent: number | null | undefined;
  seed: string;
}

export function defaultSettings(): ExportSettings {
  return {
    format: 'trl',
    mode: 'raw',
    margin: false,
    implicitPrompt: false,
    identifyRaters: false,
    spreadsheetSafe: true,
    promptKey: 'prompt',
    chosenKey: 'chosen',
    rejectedKey: 'rejected',
    conversational: false,
    from: '',
    to: '',
    excludeSimulated: false,
    excludeImported: false,
    excludeGold: false,
    minAgreement: null,
    minGoldAccuracy: null,
    split: 'all',
    validationPercent: 10,
    seed: '',
  };
}

const KEY_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

/** What is wrong with the settings, by field; empty when they make a valid request. */
export function settingsProblems(s: ExportSettings): Partial<Record<keyof ExportSettings, string>> {
  const problems: Partial<Record<keyof ExportSettings, string>> = {};
  const percent = (key: 'minAgreement' | 'minGoldAccuracy', label: string) => {
    const value = s[key];
    if (value !== null && value !== undefined && (!Number.isFinite(value) || value < 0 || value > 100))
      problems[key] = `${label} must be between 0 and 100.`;
  };
  percent('minAgreement', 'Minimum agreement');
  percent('minGoldAccuracy', 'Minimum gold accuracy');
  if (s.from && Number.isNaN(localDay(s.from))) problems.from = 'Not a date.';
  if (s.to && Number.isNaN(localDay(s.to))) problems.to = 'Not a date.';
  if (!problems.from && !problems.to && s.from && s.to && s.from > s.to)
    problems.to = 'The end is before the start.';
  if (s.split !== 'all') {
    const v = s.validationPercent;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v >= 100)
      problems.validationPercent = 'The validation share must be more than 0 and less than 100.';
    if (s.seed.length > 100) problems.seed = 'At most 100 characters.';
  }
  if (reads('openrlhfKeys', s.format)) {
    for (const key of ['promptKey', 'chosenKey', 'rejectedKey'] as const) {
      if (!KEY_NAME.test(s[key]))
        problems[key] = 'A letter or _ first, then letters, digits, _ . or - (at most 64).';
    }
    if (
      !problems.chosenKey &&
      !problems.rejectedKey &&
      new Set([s.promptKey, s.chosenKey, s.rejectedKey]).size < 3
    )
      problems.rejectedKey = 'The three keys must differ.';
  }
  return problems;
}

/** Midnight at the start of a yyyy-mm-dd day in the browser's time zone, as epoch ms. */
function localDay(day: string): number {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (!match) return NaN;
  return new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3])).getTime();
}

/** The filters alone (what the count depends on). */
export function filtersOf(s: ExportSettings): ExportFilters {
  const filters: ExportFilters = {};
  if (s.from) filters.from = new Date(localDay(s.from)).toISOString();
  // "To" is inclusive on screen; the API's bound is exclusive: the start of the next day.
  if (s.to) filters.to = nextDay(s.to);
  if (s.excludeSimulated) filters.excludeSimulated = true;
  if (s.excludeImported) filters.excludeImported = true;
  if (s.excludeGold) filters.excludeGold = true;
  if (typeof s.minAgreement === 'number' && s.minAgreement > 0) filters.minAgreement = s.minAgreement / 100;
  if (typeof s.minGoldAccuracy === 'number' && s.minGoldAccuracy > 0)
    filters.minGoldAccuracy = s.minGoldAccuracy / 100;
  if (s.split !== 'all' && typeof s.validationPercent === 'number')
    filters.split = {
      validationFraction: s.validationPercent / 100,
      part: s.split,
      ...(s.seed.trim() ? { seed: s.seed.trim() } : {}),
    };
  return filters;
}

function nextDay(day: string): string {
  const start = new Date(localDay(day));
  return new Date(start.getFullYear(), start.getMonth(), start.getDate() + 1).toISOString();
}

/** The request body for an export, a count or a snapshot (only the options the format reads). */
export function exportBodyOf(s: ExportSettings): ExportBody {
  const options: ExportOptions = {};
  if (s.margin && reads('margin', s.format)) options.margin = true;
  if (s.implicitPrompt && reads('implicitPrompt', s.format)) options.prompt = 'implicit';
  if (reads('openrlhfKeys', s.format)) {
    if (s.promptKey !== 'prompt') options.promptKey = s.promptKey;
    if (s.chosenKey !== 'chosen') options.chosenKey = s.chosenKey;
    if (s.rejectedKey !== 'rejected') options.rejectedKey = s.rejectedKey;
    if (s.conversational) options.conversational = true;
  }
  if (s.identifyRaters && reads('identifyRaters', s.format)) options.identifyRaters = true;
  // Spreadsheet-safe is the server's default for CSV; turning it off is said explicitly.
  if (reads('spreadsheetSafe', s.format)) options.spreadsheetSafe = s.spreadsheetSafe;
  const body: ExportBody = { format: s.format, mode: s.mode, filters: filtersOf(s) };
  if (Object.keys(options).length) body.options = options;
  return body;
}

/** An export's settings in a few words ("raw · margin · no simulated · agreement ≥ 60%"). */
export function describeExport(spec: {
  format: ExportFormat;
  mode?: 'raw' | 'aggregated';
  filters?: ExportFilters;
  options?: ExportOptions;
}): string {
  const parts: string[] = [spec.mode ?? 'raw'];
  const o = spec.options ?? {};
  const f = spec.filters ?? {};
  const pct = (share: number) => `${Math.round(share * 1000) / 10}%`;
  const day = (iso: string) => new Date(iso).toLocaleDateString();
  if (o.margin) parts.push('margin');
  if (o.prompt === 'implicit') parts.push('implicit prompt');
  if (o.conversational) parts.push('messages');
  if (o.promptKey || o.chosenKey || o.rejectedKey)
    parts.push(`keys ${o.promptKey ?? 'prompt'}/${o.chosenKey ?? 'chosen'}/${o.rejectedKey ?? 'rejected'}`);
  if (o.identifyRaters) parts.push('rater ids');
  if (o.spreadsheetSafe) parts.push('spreadsheet-safe');
  if (o.spreadsheetSafe === false) parts.push('cells as stored');
  if (f.from && f.to) parts.push(`${day(f.from)} – before ${day(f.to)}`);
  else if (f.from) parts.push(`from ${day(f.from)}`);
  else if (f.to) parts.push(`before ${day(f.to)}`);
  if (f.excludeSimulated) parts.push('no simulated');
  if (f.excludeImported) parts.push('no imported');
  if (f.excludeGold) parts.push('no gold');
  if (f.minAgreement !== undefined) parts.push(`agreement ≥ ${pct(f.minAgreement)}`);
  if (f.minGoldAccuracy !== undefined) parts.push(`gold accuracy ≥ ${pct(f.minGoldAccuracy)}`);
  if (f.promptSplits) parts.push(`splits ${f.promptSplits.join(', ').toLowerCase()}`);
  if (f.policyVersionIds) parts.push(`${f.policyVersionIds.length} policy versions`);
  if (f.roundIds) parts.push(`${f.roundIds.length} rounds`);
  if (f.split)
    parts.push(
      `${f.split.part} part of ${pct(1 - f.split.validationFraction)}/${pct(f.split.validationFraction)}${f.split.seed ? ` (seed ${f.split.seed})` : ''}`,
    );
  return parts.join(' · ');
}

export function describeSnapshot(snapshot: Snapshot): string {
  return describeExport(snapshot);
}

// --- Streamed downloads ------------------------------------------------------------------------

/** How rows are counted as bytes arrive: JSON Lines (one row a line), CSV (records, after the header). */
export type RowCounting = 'jsonl' | 'csv' | null;

export function rowCountingOf(format: ExportFormat): RowCounting {
  return format === 'parquet' ? null : format === 'csv' ? 'csv' : 'jsonl';
}

/** The state of one download, shown by DownloadProgress (mutated as bytes arrive). */
export interface Transfer {
  status: 'starting' | 'receiving' | 'done' | 'cancelled' | 'failed';
  bytes: number;
  /** Rows received so far (line formats), or null when they are not counted (Parquet). */
  rows: number | null;
  /** Exact size when the server sent Content-Length. */
  totalBytes: number | null;
  /** Most rows the file can have (pairwise formats leave some out), when known. */
  expectedRows: number | null;
  /** Whether expectedRows is exact (CSV) or only an upper bound (pairwise formats). */
  rowsExact: boolean;
  /** Judgments the file holds (X-Loom-Judgments, or the snapshot's). */
  judgments: number | null;
  /** Pairs of identical responses a pairwise file leaves out (X-Loom-Identical-Left-Out, or the snapshot's). */
  identicalLeftOut: number | null;
  fileName: string | null;
  /** The sha256 the server vouches for (snapshots), and whether the received bytes match it. */
  sha256: string | null;
  verified: boolean | null;
  error: string | null;
}

export function newTransfer(): Transfer {
  return {
    status: 'starting',
    bytes: 0,
    rows: null,
    totalBytes: null,
    expectedRows: null,
    rowsExact: false,
    judgments: null,
    identicalLeftOut: null,
    fileName: null,
    sha256: null,
    verified: null,
    error: null,
  };
}

/** The share done (0..1), or null when it cannot be known (the bar is then indeterminate). */
export function fractionOf(t: Transfer): number | null {
  if (t.status === 'done') return 1;
  if (t.totalBytes !== null && t.totalBytes > 0) return Math.min(1, t.bytes / t.totalBytes);
  if (t.rows !== null && t.expectedRows !== null && t.expectedRows > 0)
    // An upper bound is never reached exactly when rows are left out: stay short of full until the end.
    return Math.min(0.99, t.rows / t.expectedRows);
  return null;
}

/** The file name from `Content-Disposition` (plain or RFC 5987), else the fallback. */
export function fileNameOf(response: Response, fallback: string): string {
  const header = response.headers.get('content-disposition') ?? '';
  const extended = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(header);
  if (extended) {
    try {
      return safeName(decodeURIComponent(extended[1]!.trim()), fallback);
    } catch {
      // Not valid percent-encoding: use the plain name.
    }
  }
  const plain = /filename\s*=\s*"([^"]*)"|filename\s*=\s*([^;\s]+)/i.exec(header);
  return safeName(plain?.[1] ?? plain?.[2] ?? '', fallback);
}

function safeName(name: string, fallback: string): string {
  const base = name.split(/[/\\]/).pop() ?? '';
  return base && base !== '.' && base !== '..' ? base : fallback;
}

/** Counts CSV records across chunks: a newline inside a quoted field is not a record's end. */
function csvCounter() {
  let quoted = false;
  let records = 0;
  return {
    push(bytes: Uint8Array) {
      for (let i = 0; i < bytes.length; i++) {
        const b = bytes[i]!;
        if (b === 0x22) quoted = !quoted;
        else if (b === 0x0a && !quoted) records++;
      }
    },
    /** Data rows (the first record is the header). */
    get rows() {
      return Math.max(0, records - 1);
    },
  };
}

function lineCounter() {
  let lines = 0;
  return {
    push(bytes: Uint8Array) {
      let at = bytes.indexOf(0x0a);
      while (at !== -1) {
        lines++;
        at = bytes.indexOf(0x0a, at + 1);
      }
    },
    get rows() {
      return lines;
    },
  };
}

/** Hashing needs a secure context (https or localhost) and the whole file in memory: skip huge ones. */
const VERIFY_LIMIT = 512 * 1024 * 1024;

async function sha256Hex(blob: Blob): Promise<string | null> {
  if (!globalThis.crypto?.subtle || blob.size > VERIFY_LIMIT) return null;
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

export interface ReceiveOptions {
  counting: RowCounting;
  fallbackName: string;
  /** The most rows the file can hold, given the judgments the server announced. */
  expectedRows?: (judgments: number | null) => { rows: number | null; exact: boolean };
}

/**
 * Reads a streamed file into a Blob, updating `transfer` (pass the reactive object) as bytes
 * arrive. Rejects when the connection breaks before the end (the server cuts a failed export off,
 * so a truncated file is never taken for a whole one) or when `signal` aborts.
 */
export async function receive(
  response: Response,
  transfer: Transfer,
  options: ReceiveOptions,
  signal: AbortSignal,
): Promise<Blob> {
  transfer.status = 'receiving';
  transfer.fileName = fileNameOf(response, options.fallbackName);
  const length = Number(response.headers.get('content-length'));
  transfer.totalBytes = Number.isFinite(length) && length > 0 ? length : null;
  const judgments = Number(response.headers.get('x-loom-judgments'));
  if (response.headers.has('x-loom-judgments') && Number.isFinite(judgments)) transfer.judgments = judgments;
  const identical = Number(response.headers.get('x-loom-identical-left-out'));
  if (response.headers.has('x-loom-identical-left-out') && Number.isFinite(identical))
    transfer.identicalLeftOut = identical;
  transfer.sha256 = response.headers.get('x-loom-sha256');
  if (options.expectedRows) {
    const expected = options.expectedRows(transfer.judgments);
    transfer.expectedRows = expected.rows;
    transfer.rowsExact = expected.exact;
  }
  const counter =
    options.counting === 'csv' ? csvCounter() : options.counting === 'jsonl' ? lineCounter() : null;
  transfer.rows = counter ? 0 : null;

  if (!response.body) throw new ApiError(0, 'The server sent no file.');
  const reader = response.body.getReader();
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  const onAbort = () => void reader.cancel().catch(() => {});
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      let result: ReadableStreamReadResult<Uint8Array<ArrayBuffer>>;
      try {
        result = await reader.read();
      } catch {
        if (signal.aborted) throw signal.reason;
        throw new ApiError(
          0,
          'The download broke off before the end (the connection closed or the server stopped the export). Nothing was saved; try again.',
        );
      }
      if (signal.aborted) throw signal.reason;
      if (result.done) break;
      chunks.push(result.value);
      transfer.bytes += result.value.byteLength;
      if (counter) {
        counter.push(result.value);
        transfer.rows = counter.rows;
      }
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  if (transfer.totalBytes !== null && transfer.bytes !== transfer.totalBytes)
    throw new ApiError(
      0,
      `The download ended after ${transfer.bytes} of ${transfer.totalBytes} bytes. Nothing was saved; try again.`,
    );
  const blob = new Blob(chunks, { type: response.headers.get('content-type') ?? 'application/octet-stream' });
  if (transfer.sha256) {
    const actual = await sha256Hex(blob);
    transfer.verified = actual === null ? null : actual === transfer.sha256;
    if (transfer.verified === false)
      throw new ApiError(0, 'The downloaded bytes do not match the snapshot’s sha256. Nothing was saved.');
  }
  return blob;
}

/**
 * Opens a file, streams it into `transfer` (the reactive object the progress bar shows) and saves it
 * under the server's name. Never rejects: the outcome is `transfer.status` and `transfer.error`.
 */
export async function runDownload(
  transfer: Transfer,
  controller: AbortController,
  open: (signal: AbortSignal) => Promise<Response>,
  options: ReceiveOptions,
): Promise<void> {
  try {
    const response = await open(controller.signal);
    const blob = await receive(response, transfer, options, controller.signal);
    saveBlob(blob, transfer.fileName ?? options.fallbackName);
    transfer.status = 'done';
  } catch (error) {
    if (controller.signal.aborted) {
      transfer.status = 'cancelled';
      return;
    }
    transfer.status = 'failed';
    transfer.error = errorMessage(error);
  }
}

/** Hands a Blob to the browser as a download with the given name. */
export function saveBlob(blob: Blob, fileName: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = fileName;
  link.rel = 'noopener';
  link.style.display = 'none';
  document.body.append(link);
  link.click();
  link.remove();
  // The browser has taken the file once the click is handled; free the memory a little later.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** "1.2 MB", "840 B". */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || Number.isNaN(bytes)) return '—';
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** Whether text holds control characters (U+0000 to U+001F), which names and sources may not. */
export function hasControlCharacters(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) < 0x20) return true;
  return false;
}

/** Bad-row kinds in an import report, in words. */
export const IMPORT_ERROR_KINDS: Record<string, string> = {
  unparsable: 'Unparsable',
  invalid: 'Invalid',
  'empty-response': 'Empty response',
  'chosen-equals-rejected': 'Chosen equals rejected',
};
