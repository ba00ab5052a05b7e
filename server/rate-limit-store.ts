// The rate limits' counters in PostgreSQL (the UNLOGGED "RateLimit" table), so that sign-in and
// submission limits hold across every server process on the database, not per process: a store
// for @fastify/rate-limit. Counts are exact and timed by the database's clock (processes on
// machines whose clocks differ agree): each is an upsert that starts a new fixed window when the
// old one has passed. Under load the counts a process takes meanwhile go out together, as one
// statement for all of them while the previous one is answered (a group commit: one round trip
// for many requests, keys in order so two processes never wait on each other's rows). Rows past
// their window are deleted at most once a minute per process.
import type pg from 'pg';
import { statementName } from '../core/db/client.js';

const INCREMENT = `
  INSERT INTO "RateLimit" AS r (key, count, "resetAt")
  SELECT key, n, now() + make_interval(secs => w / 1000)
  FROM unnest($1::text[], $2::int[], $3::float8[]) AS t(key, n, w)
  ORDER BY key
  ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN r."resetAt" <= now() THEN EXCLUDED.count ELSE r.count + EXCLUDED.count END,
    "resetAt" = CASE WHEN r."resetAt" <= now() THEN EXCLUDED."resetAt" ELSE r."resetAt" END
  RETURNING key, count, greatest(0, ceil(extract(epoch FROM "resetAt" - now()) * 1000))::int AS ttl`;

const READ = `
  SELECT count, greatest(0, ceil(extract(epoch FROM "resetAt" - now()) * 1000))::int AS ttl
  FROM "RateLimit" WHERE key = $1 AND "resetAt" > now()`;

const SWEEP = `DELETE FROM "RateLimit" WHERE "resetAt" < now() - interval '1 minute'`;
const SWEEP_EVERY_MS = 60_000;
/** The most counts one statement carries. */
const MAX_BATCH = 500;

type Callback = (error: Error | null, result?: { current: number; ttl: number }) => void;

interface RouteParams {
  routeInfo?: { method?: string | string[]; url?: string };
}

/** Counts waiting for the next statement: per key, their callbacks in arrival order. */
interface Pending {
  window: number;
  callbacks: Callback[];
}

/** A store class (the plugin makes it with `new`) counting in `pool`'s database. */
export function postgresRateLimitStore(pool: pg.Pool) {
  let lastSweep = 0;
  let pending = new Map<string, Pending>();
  let inFlight = false;
  const run = <T extends pg.QueryResultRow>(text: string, values: unknown[]) =>
    pool.query<T>({ name: statementName(text), text, values });

  /** Sends what is waiting as one statement; the next goes once this one is answered. */
  const send = (): void => {
    if (inFlight || pending.size === 0) return;
    let batch = pending;
    if (batch.size > MAX_BATCH) {
      const entries = [...batch];
      batch = new Map(entries.slice(0, MAX_BATCH));
      pending = new Map(entries.slice(MAX_BATCH));
    } else pending = new Map();
    inFlight = true;
    const keys = [...batch.keys()];
    run<{ key: string; count: number; ttl: number }>(INCREMENT, [
      keys,
      keys.map((key) => batch.get(key)!.callbacks.length),
      keys.map((key) => batch.get(key)!.window),
    ])
      .then(
        ({ rows }) => {
          for (const row of rows) {
            const { callbacks } = batch.get(row.key)!;
            // The key's count went up by one per request: each gets its own place in that run.
            const first = row.count - callbacks.length + 1;
            callbacks.forEach((callback, i) => callback(null, { current: first + i, ttl: row.ttl }));
          }
        },
        (error: Error) => {
          for (const { callbacks } of batch.values()) for (const callback of callbacks) callback(error);
        },
      )
      .finally(() => {
        inFlight = false;
        send();
      });
  };

  return class PostgresRateLimitStore {
    /** Routes count apart: the key is prefixed with the route's method and pattern. */
    constructor(
      _params?: unknown,
      private readonly prefix = '',
    ) {}

    incr(key: string, callback: Callback, timeWindow: number): void {
      if (Date.now() - lastSweep > SWEEP_EVERY_MS) {
        lastSweep = Date.now();
        pool.query(SWEEP).catch(() => {});
      }
      const full = this.prefix + key;
      const waiting = pending.get(full);
      if (waiting) waiting.callbacks.push(callback);
      else pending.set(full, { window: timeWindow, callbacks: [callback] });
      send();
    }

    read(key: string, callback: Callback): void {
      run<{ count: number; ttl: number }>(READ, [this.prefix + key]).then(
        ({ rows }) =>
          callback(null, rows[0] ? { current: rows[0].count, ttl: rows[0].ttl } : { current: 0, ttl: 0 }),
        (error: Error) => callback(error),
      );
    }

    /** The plugin passes the route's merged settings, with the route itself as `routeInfo`. */
    child(params: object): PostgresRateLimitStore {
      const route = (params as RouteParams).routeInfo;
      const prefix = route?.url ? `${[route.method ?? ''].flat().join(',')} ${route.url} ` : '';
      return new PostgresRateLimitStore(undefined, prefix);
    }
  };
}
