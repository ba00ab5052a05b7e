// Rating through the HTTP API of the server in its own process (as `npm start` runs it), with 200
// simulated raters (signed-in sessions) taking the next comparison and submitting a judgment; after
// 5 s of warm-up (then ANALYZE and the burst written out):
// 1. latency: each rater pauses ~BENCH_THINK_MS (default 1 s, ±50%) per judgment, like a very quick
//    person; the next-comparison latency's p99 is reported;
// 2. throughput: no pauses, as fast as the server answers; submissions per second are compared with
//    the peer, raw PostgreSQL single-row INSERTs with `pg` (16 clients) on the same server, same run
//    (before and after the server's phases, the better rate counting).
// Ends with `rating: submit_vs_raw_insert=<ratio> next_p99_ms=<ms> errors=<count>` (errors of both).
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import pg from 'pg';
import { benchDatabase, seedComparisons } from './database.js';
import { startProductionServer, type ServerProcess } from './server.js';
import { createPrisma } from '../core/db/client.js';
import { hashPassword } from '../core/services/passwords.js';

const RATERS = Number(process.env.BENCH_RATERS ?? 200);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
// Comparisons to rate: enough for the three phases at 6,000 judgments/s and more (40,000 ran dry
// on a quick machine).
const PROMPTS = Number(process.env.BENCH_PROMPTS ?? 100_000);
/** Mean pause per judgment in the latency phase, in ms. */
const THINK_MS = Number(process.env.BENCH_THINK_MS ?? 1000);
const RAW_CLIENTS = 16;

export interface Answer {
  status: number;
  body: string;
  setCookie: string[];
}

/**
 * A simulated rater's keep-alive HTTP/1.1 connection, one request at a time (as a browser tab
 * rates). The load generator shares the machine's two cores with the server and PostgreSQL, where
 * node:http's client would cost about half of what the server spends per request: this one writes
 * a request as one string and reads the answer by its content-length (the server always sends one).
 */
export class RaterConnection {
  private socket: net.Socket | null = null;
  private received: Buffer = Buffer.alloc(0);
  private waiting: { resolve(answer: Answer): void; reject(error: Error): void } | null = null;

  constructor(private readonly origin: URL) {}

  request(method: string, url: string, headers: Record<string, string>, body?: unknown): Promise<Answer> {
    if (this.waiting) return Promise.reject(new Error('one request at a time'));
    const socket = (this.socket ??= this.connect());
    const payload = body === undefined ? '' : JSON.stringify(body);
    let head = `${method} ${url} HTTP/1.1\r\nhost: ${this.origin.host}\r\n`;
    for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
    if (payload) head += 'content-type: application/json\r\n';
    head += `content-length: ${Buffer.byteLength(payload)}\r\n\r\n`;
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      socket.write(head + payload);
    });
  }

  close(): void {
    this.socket?.destroy();
  }

  private connect(): net.Socket {
    const socket = net.connect(Number(this.origin.port), this.origin.hostname);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => {
      if (this.socket === socket) this.socket = null;
      this.fail(new Error('the server closed the connection'));
    });
    return socket;
  }

  private read(chunk: Buffer): void {
    this.received = this.received.length > 0 ? Buffer.concat([this.received, chunk]) : chunk;
    const headEnd = this.received.indexOf('\r\n\r\n');
    if (headEnd < 0) return;
    const head = this.received.subarray(0, headEnd).toString('latin1');
    const length = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1];
    if (length === undefined) {
      this.fail(new Error(`an answer without content-length: ${head.split('\r\n')[0]}`));
      this.socket?.destroy();
      return;
    }
    const end = headEnd + 4 + Number(length);
    if (this.received.length < end) return;
    const answer = {
      status: Number(head.slice(9, 12)),
      body: this.received.subarray(headEnd + 4, end).toString('utf8'),
      setCookie: [...head.matchAll(/\r\nset-cookie: *([^\r]*)/gi)].map((match) => match[1]!),
    };
    this.received = this.received.subarray(end);
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.resolve(answer);
  }

  private fail(error: Error): void {
    this.received = Buffer.alloc(0);
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.reject(error);
  }
}

/** A signed-in simulated rater: their connection and the headers that carry their session. */
export interface Rater {
  connection: RaterConnection;
  headers: Record<string, string>;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

export async function rawInsertRate(url: string): Promise<number> {
  const pool = new pg.Pool({ connectionString: url, max: RAW_CLIENTS });
  // An idle connection ended by the database (the bench's database dropped at the end) is dropped.
  pool.on('error', () => undefined);
  await pool.query(
    'CREATE TABLE raw_insert (id bigserial PRIMARY KEY, comparison uuid, rater uuid, choice text, created timestamptz DEFAULT now())',
  );
  let count = 0;
  const end = Date.now() + 5_000;
  await Promise.all(
    Array.from({ length: RAW_CLIENTS }, async () => {
      while (Date.now() < end) {
        await pool.query('INSERT INTO raw_insert (comparison, rater, choice) VALUES ($1, $2, $3)', [
          randomUUID(),
          randomUUID(),
          'A',
        ]);
        count++;
      }
    }),
  );
  await pool.query('DROP TABLE raw_insert');
  await pool.end();
  return count / 5;
}

export interface Phase {
  submitted: number;
  errors: number;
  seconds: number;
  rate: number;
  p50: number;
  p99: number;
  /** The load generator's own event-loop delay (ms): a stall here delays every answer it reads. */
  loopP99: number;
  loopMax: number;
}

/**
 * Every rater loops next → submit for SECONDS, pausing about `thinkMs` (±50%) before each submit;
 * paced raters start at random moments within the first pause.
 */
export async function ratePhase(
  projectId: string,
  raters: Rater[],
  thinkMs: number,
  duration = SECONDS,
): Promise<Phase> {
  const nextLatencies: number[] = [];
  let submitted = 0;
  let errors = 0;
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const started = Date.now();
  const end = started + duration * 1000;
  await Promise.all(
    raters.map(async ({ connection, headers }) => {
      // Paced raters arrive spread over one pause, not all in the same millisecond.
      if (thinkMs > 0) await new Promise((resolve) => setTimeout(resolve, thinkMs * 1.5 * Math.random()));
      // As the rating page does: the first comparison, then each submission asks for the next one.
      let assignment: { id: string } | null = null;
      while (Date.now() < end) {
        try {
          if (!assignment) {
            const t0 = performance.now();
            const next = await connection.request(
              'POST',
              `/api/projects/${projectId}/leases/next`,
              headers,
              {},
            );
            nextLatencies.push(performance.now() - t0);
            if (next.status !== 200) {
              errors++;
              continue;
            }
            assignment = (JSON.parse(next.body) as { assignment: { id: string } | null }).assignment;
            if (!assignment) throw new Error('the queue ran dry: raise BENCH_PROMPTS');
          }
          if (thinkMs > 0)
            await new Promise((resolve) => setTimeout(resolve, thinkMs * (0.5 + Math.random())));
          const t0 = performance.now();
          const submit = await connection.request(
            'POST',
            `/api/leases/${assignment.id}/submit`,
            { ...headers, 'idempotency-key': randomUUID() },
            { choice: Math.random() < 0.5 ? 'LEFT' : 'RIGHT', strength: 1, timeSpentMs: 1000, next: {} },
          );
          // The submission's answer brings the next comparison: its latency is the wait for it.
          nextLatencies.push(performance.now() - t0);
          if (submit.status === 201) {
            submitted++;
            assignment = (JSON.parse(submit.body) as { next: { id: string } | null }).next;
            if (!assignment) throw new Error('the queue ran dry: raise BENCH_PROMPTS');
          } else {
            errors++;
            assignment = null;
          }
        } catch (error) {
          if (error instanceof Error && error.message.startsWith('the queue ran dry')) throw error;
          errors++;
          assignment = null;
        }
      }
    }),
  );
  const seconds = (Date.now() - started) / 1000;
  loop.disable();
  return {
    submitted,
    errors,
    seconds,
    rate: submitted / seconds,
    p50: percentile(nextLatencies, 50),
    p99: percentile(nextLatencies, 99),
    loopP99: loop.percentile(99) / 1e6,
    loopMax: loop.max / 1e6,
  };
}

export async function main(): Promise<void> {
  const database = await benchDatabase('rating');
  const databaseUrl = database.url;
  let server: ServerProcess | null = null;
  const raters: Rater[] = [];
  try {
    console.log(`rating: raw INSERT baseline (${RAW_CLIENTS} clients, 5 s)...`);
    const rawBefore = await rawInsertRate(databaseUrl);
    console.log(`rating: raw inserts ${rawBefore.toFixed(0)}/s`);

    console.log(`rating: seeding ${PROMPTS} comparisons (overlap 3) and ${RATERS} raters...`);
    const prisma = createPrisma(databaseUrl, { max: 4 });
    const project = await prisma.project.create({
      data: { name: 'Rating benchmark', overlap: 3, labelSchema: {} },
    });
    const passwordHash = await hashPassword('benchmark passphrase');
    const raterIds: string[] = [];
    for (let i = 0; i < RATERS; i++) {
      const user = await prisma.user.create({
        data: {
          email: `rater${i}@bench.example`,
          name: `Rater ${i}`,
          role: 'RATER',
          simulated: true,
          credential: { create: { passwordHash } },
        },
      });
      raterIds.push(user.id);
    }
    await prisma.projectMember.createMany({
      data: raterIds.map((userId) => ({ projectId: project.id, userId })),
    });
    await seedComparisons(prisma, project.id, PROMPTS);
    // Fresh tables have no statistics yet; a real database has them from autovacuum.
    await prisma.$executeRawUnsafe('ANALYZE');
    await prisma.$disconnect();

    server = await startProductionServer(databaseUrl, {
      LOGIN_RATE_LIMIT_PER_MINUTE: '100000',
      // The product's default pool (DB_POOL_MAX=10) unless BENCH_POOL says otherwise.
      ...(process.env.BENCH_POOL ? { DB_POOL_MAX: process.env.BENCH_POOL } : {}),
    });
    const origin = server.origin;
    for (let i = 0; i < RATERS; i += 10) {
      const batch = await Promise.all(
        raterIds.slice(i, i + 10).map(async (_, j) => {
          const connection = new RaterConnection(new URL(origin));
          const login = await connection.request(
            'POST',
            '/api/auth/login',
            {},
            { email: `rater${i + j}@bench.example`, password: 'benchmark passphrase' },
          );
          if (login.status !== 200) throw new Error(`login ${login.status} ${login.body}`);
          const cookie = login.setCookie.map((c) => c.split(';')[0]).join('; ');
          const csrfToken = (JSON.parse(login.body) as { csrfToken: string }).csrfToken;
          return { connection, headers: { cookie, 'x-csrf-token': csrfToken } };
        }),
      );
      raters.push(...batch);
    }

    // A few seconds of rating fill the tables that start empty (leases, judgments); ANALYZE then
    // gives the planner their statistics, as autovacuum does on a running database within a minute
    // (with a fresh table's statistics it plans sequential scans of the leases and judgments).
    console.log('rating: warming up for 5 s, then ANALYZE...');
    await ratePhase(project.id, raters, 0, 5);
    const analyze = new pg.Client({ connectionString: databaseUrl });
    await analyze.connect();
    await analyze.query('ANALYZE');
    // The burst's dirty pages written out (a checkpoint, then the kernel's write-back), so that the
    // latency phase does not share the disk with the write-back of what the warm-up wrote.
    await analyze.query('CHECKPOINT');
    await analyze.end();
    execFileSync('sync');

    // Latency: the raters pausing between judgments as raters do (people take seconds to
    // minutes per comparison; THINK_MS is far quicker, to keep the load high).
    console.log(`rating: latency, ${RATERS} raters pausing ~${THINK_MS} ms per judgment for ${SECONDS} s...`);
    const paced = await ratePhase(project.id, raters, THINK_MS);
    console.log(
      `rating: ${paced.submitted} submissions = ${paced.rate.toFixed(0)}/s; next p50 ${paced.p50.toFixed(1)} ms, ` +
        `p99 ${paced.p99.toFixed(1)} ms; errors ${paced.errors} (load generator's event loop late by ` +
        `${paced.loopP99.toFixed(1)} ms at p99, ${paced.loopMax.toFixed(1)} ms at most)`,
    );
    // Throughput: the same raters taking and submitting as fast as the server answers (no thinking).
    console.log(`rating: throughput, ${RATERS} raters without pauses for ${SECONDS} s...`);
    const busy = await ratePhase(project.id, raters, 0);
    console.log(
      `rating: ${busy.submitted} submissions in ${busy.seconds.toFixed(1)} s = ${busy.rate.toFixed(0)}/s; ` +
        `next p50 ${busy.p50.toFixed(1)} ms, p99 ${busy.p99.toFixed(1)} ms; errors ${busy.errors}`,
    );
    // The peer once more, after the server's phases: the better of its two rates counts, so that a
    // busy moment of the machine during one of them does not flatter the ratio.
    await server.stop();
    server = null;
    const rawAfter = await rawInsertRate(databaseUrl);
    const raw = Math.max(rawBefore, rawAfter);
    console.log(`rating: raw inserts ${rawAfter.toFixed(0)}/s (before: ${rawBefore.toFixed(0)}/s)`);
    console.log(
      `rating: submit_vs_raw_insert=${(busy.rate / raw).toFixed(3)} next_p99_ms=${paced.p99.toFixed(1)} ` +
        `errors=${busy.errors + paced.errors}`,
    );
  } finally {
    await server?.stop();
    for (const rater of raters) rater.connection.close();
    await database.drop();
  }
}
