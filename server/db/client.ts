// Creates the Prisma client over node-postgres with explicit timeouts (adapter-pg has none by
// default, so an unreachable database would hang requests forever).
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/client.js';

export { Prisma, PrismaClient } from './generated/client.js';
export type * from './generated/client.js';

export interface DatabaseOptions {
  /** Pool size; the app and each trainer process hold their own pool. */
  max?: number;
  connectionTimeoutMillis?: number;
  statementTimeoutMillis?: number;
}

export function createPrisma(databaseUrl: string, options: DatabaseOptions = {}): PrismaClient {
  const adapter = new PrismaPg({
    connectionString: databaseUrl,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 5_000,
    idleTimeoutMillis: 30_000,
    statement_timeout: options.statementTimeoutMillis ?? 30_000,
    idle_in_transaction_session_timeout: 60_000,
    application_name: 'loom',
  });
  // Waiting for a pooled connection under load is normal; failing after Prisma's default 2 s is not.
  return new PrismaClient({ adapter, transactionOptions: { maxWait: 15_000, timeout: 30_000 } });
}
