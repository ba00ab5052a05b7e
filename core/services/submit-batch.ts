// Group commit for the rating hot path: the judgments that arrive while batches are in the
// database are stored, and their raters' next comparisons leased, together in the next batch: one
// statement (so one transaction and one round trip) for all of them, instead of one transaction and
// one twenty-node statement each. Under load this divides what PostgreSQL spends per judgment
// (executor set-up, commit, lock waits among a comparison's raters) and what the server spends on
// round trips; a lone judgment still takes the single statement, the quickest way when nothing waits.
// The statement is `BATCH` in rating-sql.ts.
import pg from 'pg';
import { isRetryable } from '../db/client.js';
import { BATCH, MAX_BATCH } from './rating-sql.js';

/** A judgment as it is written (checked and turned into A/B terms), by whom, under which key. */
export interface StoredJudgment {
  assignmentId: string;
  raterId: string;
  source: 'HUMAN' | 'SIMULATED';
  choice: string;
  /** A ranking's ranks in stored order; empty for a pair. */
  ranks: number[];
  strength: number | null;
  criteria: Record<string, string>;
  flags: string[];
  rationale: string | null;
  timeSpentMs: number;
  idempotencyKey: string;
  requestHash: string;
}

/** One judgment for the batch, with what its lease was handed out with and what comes next. */
export interface BatchItem extends StoredJudgment {
  /** What the server handed out with the lease; the batch re-checks them on the locked rows. */
  comparisonId: string;
  projectId: string;
  swapped: boolean;
  labelSchema: unknown;
  leaseSeconds: number;
  admin: boolean;
  /** Whether the rater wants their next comparison, and which of their leases not to hand back. */
  next: boolean;
  exclude: string[];
  /** Gold drawn for the next comparison; the side order of a new lease. */
  gold: boolean;
  nextSwapped: boolean;
}

/**
 * What became of an item: not stored (`null`: the lease changed, the schema was edited, a key was
 * taken, ...; the caller answers it on the general path), or stored with the rater's next lease
 * (`lease`, a row of the caller's lease columns), `'search'` when this batch found none for them
 * (the caller searches further) and `null` when they may not go on or did not ask.
 */
export type BatchResult = {
  preferenceId: string;
  storedAt: Date;
  mayRate: boolean;
  lease: pg.QueryResultRow | 'search' | null;
} | null;

/**
 * A row of the batch statement: a stored judgment (whether its rater had room for a new lease), or
 * a lease handed back (no \`preferenceId\`; \`handedTo\` the item, the caller's lease columns).
 */
type BatchRow = pg.QueryResultRow & {
  idx: number;
  preferenceId: string | null;
  storedAt: Date;
  mayRate: boolean;
  room: boolean;
  handedTo: number | null;
};

interface Pending {
  item: BatchItem;
  resolve(result: BatchResult): void;
  reject(error: unknown): void;
}

/**
 * Batches in the database at once (each is one connection's transaction). Two keep PostgreSQL busy
 * while the server reads a batch's answers and writes the next; more only wait on each other's
 * row locks (three gave the same throughput, one a worse latency).
 */
const MAX_IN_FLIGHT = 2;

export class SubmitBatcher {
  /**
   * Batches of more than one judgment run so far, the judgments they held, the batches that stored
   * nothing because their statement failed (their judgments went one by one), and the raters the
   * batches left to search for their next comparison on their own.
   */
  readonly stats = { batches: 0, judgments: 0, failed: 0, searches: 0 };
  private pending: Pending[] = [];
  private inFlight = 0;
  /** The comparisons judged in the batches in the database. */
  private readonly judging = new Set<string>();

  /** Judgments waiting for a place in a batch. */
  get queued(): number {
    return this.pending.length;
  }

  /**
   * Leases are handed back as rows of `LEASE_COLUMNS` (rating-sql.ts); `maxLeases` is how many open
   * leases a rater may hold in a project; `one` stores a lone judgment (a batch of one) in a single
   * statement, the quickest way when nothing waits.
   */
  constructor(
    private readonly db: pg.Pool,
    private readonly maxLeases: number,
    private readonly one: (item: BatchItem) => Promise<BatchResult>,
  ) {}

  submit(item: BatchItem): Promise<BatchResult> {
    return new Promise((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.flush();
    });
  }

  private flush(): void {
    while (this.inFlight < MAX_IN_FLIGHT && this.pending.length > 0) {
      // A comparison whose judgment is in a batch in the database now waits for that batch: its
      // row is locked there until commit (its raters tend to judge together). One lease per batch
      // too: a repeated one (a retry racing its original) waits for the next. One project per
      // batch: the judgments of others wait for the next.
      const batch: Pending[] = [];
      const rest: Pending[] = [];
      const leases = new Set<string>();
      let projectId: string | null = null;
      for (const entry of this.pending) {
        const { assignmentId, comparisonId } = entry.item;
        if (
          batch.length < MAX_BATCH &&
          !leases.has(assignmentId) &&
          !this.judging.has(comparisonId) &&
          (projectId ??= entry.item.projectId) === entry.item.projectId
        ) {
          leases.add(assignmentId);
          batch.push(entry);
        } else rest.push(entry);
      }
      if (batch.length === 0) return;
      this.pending = rest;
      this.inFlight++;
      const comparisons = [...new Set(batch.map((entry) => entry.item.comparisonId))];
      for (const id of comparisons) this.judging.add(id);
      void this.run(batch).finally(() => {
        for (const id of comparisons) this.judging.delete(id);
        this.inFlight--;
        this.flush();
      });
    }
  }

  private async run(batch: Pending[]): Promise<void> {
    if (batch.length === 1) {
      const [{ item, resolve, reject }] = batch as [Pending];
      return this.one(item).then(resolve, reject);
    }
    this.stats.batches++;
    this.stats.judgments += batch.length;
    const items = batch.map((entry) => entry.item);
    const values = BATCH.values({
      // The statement reads the columns it names (ITEM_COLUMNS) and ignores the rest.
      items: JSON.stringify(items.map((item, idx) => ({ ...item, idx }))),
      leases: items.map((item) => item.assignmentId),
      project: items[0]!.projectId,
      maxLeases: this.maxLeases,
    });
    for (let attempt = 1; ; attempt++) {
      let rows: BatchRow[];
      try {
        // One statement, so one transaction and one round trip; a connection that fails meanwhile
        // is dropped by the pool, which ends the transaction in the database.
        rows = (await this.db.query<BatchRow>({ name: BATCH.name, text: BATCH.text, values })).rows;
      } catch (error) {
        if (isRetryable(error) && attempt < 5) continue;
        // Nothing of the batch was stored: each judgment is answered on the general path.
        this.stats.failed++;
        for (const entry of batch) entry.resolve(null);
        return;
      }
      const results: BatchResult[] = batch.map(() => null);
      const stored: BatchRow[] = [];
      const handed = new Map<number, BatchRow>();
      for (const row of rows) {
        if (row.preferenceId === null) handed.set(row.handedTo!, row);
        else stored.push(row);
      }
      for (const row of stored) {
        const lease = handed.get(row.idx) ?? (row.room ? 'search' : null);
        if (lease === 'search') this.stats.searches++;
        results[row.idx] = {
          preferenceId: row.preferenceId!,
          storedAt: row.storedAt,
          mayRate: row.mayRate,
          lease,
        };
      }
      batch.forEach((entry, index) => entry.resolve(results[index] ?? null));
      return;
    }
  }
}
