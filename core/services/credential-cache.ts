// Who a session or API token belongs to, kept in memory between requests so that a request needs
// no database round trip to know its caller. Every change to a session, an API token or a user,
// made by this process or any other (the CLI, another server, SQL), reaches every cache through
// PostgreSQL's LISTEN/NOTIFY: a trigger on the three tables names the user (migration
// 20261126130000_credential_notify), and the user's entries are dropped. While the listening
// connection is down, or has not answered its last ping, nothing is kept.
import { randomUUID } from 'node:crypto';
import pg from 'pg';

export const CREDENTIALS_CHANNEL = 'loom_credentials';

/** An entry is read again after this long even without a change notice (a backstop). */
const TTL_MS = 30_000;
const MAX_ENTRIES = 10_000;
/** The listening connection is pinged this often; one unanswered ping empties the cache. */
const PING_MS = 10_000;
const PING_TIMEOUT_MS = 5_000;
const RECONNECT_MS = 1_000;

export class CredentialCache<T extends { id: string }> {
  private readonly entries = new Map<string, { value: T; at: number }>();
  /** Bumped by every change notice and every loss of the link: a lookup begun before is not kept. */
  private generation = 0;
  private client: pg.Client | null = null;
  private listening = false;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly waiting = new Map<string, () => void>();

  constructor(private readonly connectionString: string) {}

  /** Connects and listens; failures only leave the cache off until a later attempt succeeds. */
  async start(): Promise<void> {
    if (this.stopped || this.client) return;
    const client = new pg.Client({
      connectionString: this.connectionString,
      connectionTimeoutMillis: 5_000,
      query_timeout: PING_TIMEOUT_MS,
      keepAlive: true,
      application_name: 'loom-credentials',
    });
    this.client = client;
    client.on('notification', (message) => {
      if (message.channel !== CREDENTIALS_CHANNEL || !message.payload) return;
      if (message.payload.startsWith('sync:')) this.waiting.get(message.payload)?.();
      else this.forgetUser(message.payload);
    });
    client.on('error', () => this.lost(client));
    client.on('end', () => this.lost(client));
    try {
      await client.connect();
      await client.query(`LISTEN ${CREDENTIALS_CHANNEL}`);
      if (this.client !== client) return;
      this.listening = true;
      this.schedule(PING_MS, () => void this.ping(client));
    } catch {
      this.lost(client);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const client = this.client;
    this.disable();
    this.client = null;
    await client?.end().catch(() => {});
  }

  /** The cached value for `key`, if the cache is listening and the entry is fresh. */
  get(key: string): T | undefined {
    if (!this.listening) return undefined;
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (Date.now() - entry.at > TTL_MS) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Taken before reading from the database; `set` keeps the value only if nothing changed since. */
  mark(): number {
    return this.generation;
  }

  set(key: string, value: T, mark: number): void {
    if (!this.listening || mark !== this.generation) return;
    this.entries.delete(key);
    this.entries.set(key, { value, at: Date.now() });
    if (this.entries.size > MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
  }

  /** Drops the user's entries (also called by this process right after its own changes). */
  forgetUser(userId: string): void {
    this.generation++;
    for (const [key, entry] of this.entries) if (entry.value.id === userId) this.entries.delete(key);
  }

  /**
   * Resolves once every change committed before the call has been applied here: PostgreSQL
   * delivers notices in commit order, so a notice this cache sends itself comes back after them.
   */
  async sync(): Promise<void> {
    const client = this.client;
    if (!this.listening || !client) return;
    const payload = `sync:${randomUUID()}`;
    const back = new Promise<void>((resolve) => {
      const timeout = setTimeout(() => {
        this.forgetAll();
        resolve();
      }, PING_TIMEOUT_MS);
      this.waiting.set(payload, () => {
        clearTimeout(timeout);
        resolve();
      });
    });
    try {
      await client.query('SELECT pg_notify($1, $2)', [CREDENTIALS_CHANNEL, payload]);
      await back;
    } catch {
      this.forgetAll();
    } finally {
      this.waiting.delete(payload);
    }
  }

  /**
   * A request found the database unreachable: keep nothing until the listening connection answers
   * a ping (if it is cut too, until it is back).
   */
  suspect(): void {
    const client = this.client;
    if (!this.listening || !client) return;
    this.disable();
    this.schedule(0, () => void this.ping(client));
  }

  /** Drops every entry. */
  forgetAll(): void {
    this.generation++;
    this.entries.clear();
  }

  private disable(): void {
    this.listening = false;
    this.forgetAll();
  }

  private lost(client: pg.Client): void {
    if (this.client !== client) return;
    this.disable();
    this.client = null;
    client.removeAllListeners('end');
    client.on('error', () => {});
    void client.end().catch(() => {});
    this.schedule(RECONNECT_MS, () => void this.start());
  }

  private async ping(client: pg.Client): Promise<void> {
    try {
      // Notices are delivered before a statement's answer: none sent before the ping is missed.
      await client.query('SELECT 1');
      if (this.client !== client) return;
      this.listening = true;
      this.schedule(PING_MS, () => void this.ping(client));
    } catch {
      this.lost(client);
    }
  }

  private schedule(ms: number, run: () => void): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(run, ms);
    this.timer.unref();
  }
}
