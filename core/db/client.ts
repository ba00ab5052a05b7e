// Creates the Prisma client over node-postgres with explicit timeouts (adapter-pg has none by
// default, so an unreachable database would hang requests forever).
import { createHash } from 'node:crypto';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from './generated/client.js';

export { Prisma, PrismaClient } from './generated/client.js';
export type * from './generated/client.js';

export interface DatabaseOptions {
  /** Pool size; the app and each trainer process hold their own pool. */
  max?: number;
  connectionTimeoutMillis?: number;
  statementTimeoutMillis?: number;
}

const pools = new WeakMap<PrismaClient, pg.Pool>();

/** How much longer than the statement timeout a client waits for an answer before giving up. */
export const READ_TIMEOUT_MARGIN_MS = 5_000;

export function createPrisma(databaseUrl: string, options: DatabaseOptions = {}): PrismaClient {
  const statementTimeout = options.statementTimeoutMillis ?? 30_000;
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 5_000,
    idleTimeoutMillis: 30_000,
    statement_timeout: statementTimeout,
    // PostgreSQL ends a statement at statement_timeout; an answer still missing a little later means
    // the link hangs (no reset ever comes): the query fails, and its connection is dropped.
    query_timeout: statementTimeout + READ_TIMEOUT_MARGIN_MS,
    idle_in_transaction_session_timeout: 60_000,
    application_name: 'loom',
    // Short statements only: JIT compilation (PostgreSQL's default above a plan cost) would take
    // longer than running them, and a statement with many steps is costed high enough to get it.
    options: '-c jit=off',
  });
  // A link that breaks while a client is out of the pool (a transaction, an export's cursor, a batch
  // of judgments) is reported to the client as an event, which unheard would end the process, and
  // to the statement in progress, which is where its caller answers it.
  const checkedOut = () => undefined;
  pool.on('acquire', (client) => client.on('error', checkedOut));
  pool.on('release', (_error, client) => client.off('error', checkedOut));
  const adapter = new PrismaPg(pool, { disposeExternalPool: true });
  // Waiting for a pooled connection under load is normal; failing after Prisma's default 2 s is not.
  const prisma = new PrismaClient({ adapter, transactionOptions: { maxWait: 15_000, timeout: 30_000 } });
  pools.set(prisma, pool);
  return prisma;
}

/**
 * The node-postgres pool under a client made by createPrisma: for the few paths where Prisma's
 * per-row work would dominate (streaming millions of rows), on the same connections and limits.
 */
export function poolOf(prisma: PrismaClient): pg.Pool {
  const pool = pools.get(prisma);
  if (!pool) throw new Error('This Prisma client was not made by createPrisma.');
  return pool;
}

const statementNames = new Map<string, string>();

/** Deadlocks and serialization failures: PostgreSQL rolled the statement back; running it again is safe. */
export function isRetryable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '40P01' || code === '40001';
}

/**
 * Hot statements are prepared once per connection (named by a hash of their text), so PostgreSQL
 * parses and plans them once rather than on every request.
 */
export function statementName(text: string): string {
  let name = statementNames.get(text);
  if (!name)
    statementNames.set(text, (name = 'loom_' + createHash('sha1').update(text).digest('hex').slice(0, 20)));
  return name;
}
