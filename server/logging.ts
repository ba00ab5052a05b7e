// The server's log on the console. In production (LOG_FORMAT=json, the default there) every line is
// pino's JSON, one per request, for a log collector. Elsewhere (LOG_FORMAT=pretty, the default
// outside production) a person reads it in a terminal: requests that went well are not logged, and
// what is logged is one short line each ("[loom] warning: ..."), with the stack of an error.
import type { Config } from '../core/config.js';

export type LogFormat = 'json' | 'pretty';

const LEVELS: Record<number, string> = { 40: 'warning', 50: 'error', 60: 'fatal error' };
/** Lines Fastify writes that the start-up message already says better. */
const REDUNDANT = /^Server listening at /;
const STACK_LINES = 8;

interface PinoLine {
  level?: number;
  msg?: string;
  reqId?: unknown;
  err?: { message?: string; stack?: string; type?: string };
  [key: string]: unknown;
}

/** One pino JSON line as the console shows it, or null when it is left out. */
export function prettyLine(json: string): string | null {
  let line: PinoLine;
  try {
    line = JSON.parse(json) as PinoLine;
  } catch {
    return json.trimEnd() || null;
  }
  const level = line.level ?? 30;
  // A request's own lines (completed, refused) only when something went wrong.
  if (line.reqId !== undefined && level < 40) return null;
  const message = String(line.msg ?? '');
  if (REDUNDANT.test(message)) return null;
  const label = LEVELS[level >= 60 ? 60 : level >= 50 ? 50 : level >= 40 ? 40 : 30];
  // Which request: its method and URL when the line has them, and its id (the one in the error body).
  const where = [
    typeof line.req === 'object' && line.req
      ? `${String((line.req as { method?: string }).method ?? '')} ${String((line.req as { url?: string }).url ?? '')}`
      : '',
    typeof line.reqId === 'string' ? `request ${line.reqId}` : '',
  ].filter(Boolean);
  const request = where.length ? ` (${where.join(', ')})` : '';
  let text = `[loom] ${label ? `${label}: ` : ''}${message}${request}`;
  if (line.err) {
    const detail = line.err.message && line.err.message !== message ? `: ${line.err.message}` : '';
    text += detail;
    if (level >= 50 && line.err.stack) {
      const frames = line.err.stack
        .split('\n')
        .filter((frame) => /^\s+at /.test(frame))
        .slice(0, STACK_LINES);
      if (frames.length) text += '\n' + frames.map((frame) => `[loom]   ${frame.trim()}`).join('\n');
    }
  }
  return text;
}

/** A pino destination writing prettyLine()s to `out` (stdout by default). */
export function prettyStream(out: { write(text: string): unknown } = process.stdout): {
  write(chunk: string): void;
} {
  return {
    write(chunk: string) {
      for (const json of chunk.split('\n')) {
        if (!json) continue;
        const text = prettyLine(json);
        if (text !== null) out.write(text + '\n');
      }
    },
  };
}

/** Where the server's logger writes: the console's short lines, or pino's JSON on stdout. */
export function consoleStream(config: Pick<Config, 'logFormat'>): { write(chunk: string): void } | undefined {
  return config.logFormat === 'pretty' ? prettyStream() : undefined;
}
