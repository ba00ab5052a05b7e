// The rate limits' counters in PostgreSQL (the UNLOGGED "RateLimit" table), so that sign-in and
// submission limits hold across every server process on the database, not per process: a store
// for @fastify/rate-limit. Each count is one statement (an upsert that starts a new fixed window
// when the old one has passed), timed by the database's clock, so processes on machines whose
// clocks differ agree. Rows past their window are deleted at most once a minute per process.
import type pg from 'pg';
import { statementName } from '../core/db/client.js';

const INCREMENT = `
  INSERT INTO "RateLimit" (key, count, "resetAt")
  VALUES ($1, 1, now() + make_interval(secs => $2::float8 / 1000))
  ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN "RateLimit"."resetAt" <= now() THEN 1 ELSE "RateLimit".count + 1 END,
    "resetAt" = CASE WHEN "RateLimit"."resetAt" <= now() THEN EXCLUDED."resetAt" ELSE "RateLimit"."resetAt" END
  RETURNING count, greatest(0, ceil(extract(epoch FROM "resetAt" - now()) * 1000))::int AS ttl`;

const READ = `
  SELECT count, greatest(0, ceil(extract(epoch FROM "resetAt" - now()) * 1000))::int AS ttl
  FROM "RateLimit" WHERE key = $1 AND "resetAt" > now()`;

const SWEEP = `DELETE FROM "RateLimit" WHERE "resetAt" < now() - interval '1 minute'`;
const SWEEP_EVERY_MS = 60_000;

type Callback = (error: Error | null, result?: { current: number; ttl: number }) => void;

interface RouteParams {
  routeInfo?: { method?: string | string[]; url?: string };
}

/** A store class (the plugin makes it with `new`) counting in `pool`'s database. */
export function postgresRateLimitStore(pool: pg.Pool) {
  let lastSweep = 0;
  const run = (text: string, values: unknown[]) =>
    pool.query<{ count: number; ttl: number }>({ name: statementName(text), text, values });

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
      run(INCREMENT, [this.prefix + key, timeWindow]).then(
        ({ rows }) => callback(null, { current: rows[0]!.count, ttl: rows[0]!.ttl }),
        (error: Error) => callback(error),
      );
    }

    read(key: string, callback: Callback): void {
      run(READ, [this.prefix + key]).then(
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
