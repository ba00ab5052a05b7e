// Durability under crashes: many concurrent raters submit judgments through the HTTP API while the
// server is killed with SIGKILL again and again and PostgreSQL (an embedded cluster of its own, with
// its default fsync, synchronous_commit and full_page_writes) is stopped in immediate mode (SIGQUIT
// to the postmaster) and restarted: by default at least 20 server kills and 5 PostgreSQL crashes,
// every fifth crash PostgreSQL's (BENCH_KILLS, BENCH_DB_RESTARTS, BENCH_CHAOS_SECONDS, BENCH_SECONDS).
// Each rater keeps its own ledger of acknowledged submissions (HTTP 201) and retries a failed
// request with the same idempotency key until it is answered.
// Afterwards the database is checked against the ledgers: no acknowledged judgment lost, none
// stored twice, no comparison over its overlap, every lease count right.
// Ends with `durability: acknowledged=<n> lost=<n> duplicated=<n> kills=<n> db_restarts=<n>`.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { seedComparisons } from './database.js';
import { startProductionServer, type ServerProcess } from './server.js';
import { loadConfig } from '../core/config.js';
import { createPrisma } from '../core/db/client.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../core/db/embedded.js';
import { applyMigrations } from '../core/db/migrate.js';
import { AuthService } from '../core/services/auth.js';

const RATERS = Number(process.env.BENCH_RATERS ?? 1000);
/** The least time under chaos, in seconds; it goes on until both counts below are reached. */
const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
/** Server kills (SIGKILL) and PostgreSQL crashes (immediate shutdown, restart) to reach. */
const KILLS = Number(process.env.BENCH_KILLS ?? 20);
const DB_RESTARTS = Number(process.env.BENCH_DB_RESTARTS ?? 5);
/** Seconds between crashes (±50%); every fifth is a PostgreSQL crash, the others server kills. */
const CHAOS_EVERY = Number(process.env.BENCH_CHAOS_SECONDS ?? 4);
const COMPARISONS = Number(process.env.BENCH_COMPARISONS ?? 30_000);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: RATERS + 10 });

function request(port: number, method: string, url: string, token: string, body?: unknown, key?: string) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      { host: '127.0.0.1', port, path: url, method, agent, timeout: 20_000 },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (data += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
        res.on('error', reject);
      },
    );
    req.setHeader('authorization', `Bearer ${token}`);
    if (payload) req.setHeader('content-type', 'application/json');
    if (key) req.setHeader('idempotency-key', key);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(payload);
  });
}

interface Ledger {
  raterId: string;
  acknowledged: string[];
}

export async function main(): Promise<void> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'loom-bench-durability-'));
  let database: EmbeddedDatabase = await startEmbeddedPostgres(dataDir, { preferredPort: 0 });
  let server: ServerProcess | null = null;
  const secret = randomBytes(48).toString('base64');
  const port = await freePort();
  try {
    await applyMigrations(database.url);
    const prisma = createPrisma(database.url, { max: 4 });
    const project = await prisma.project.create({ data: { name: 'Durability', overlap: 3 } });
    await seedComparisons(prisma, project.id, COMPARISONS);
    await prisma.$executeRaw`
      INSERT INTO "User" (email, name, role, simulated, "updatedAt")
      SELECT 'rater' || k || '@bench.example', 'Rater ' || k, 'RATER', true, now()
      FROM generate_series(1, ${RATERS}) k`;
    const raters = await prisma.user.findMany({ where: { role: 'RATER' }, select: { id: true } });
    await prisma.projectMember.createMany({
      data: raters.map((rater) => ({ projectId: project.id, userId: rater.id })),
    });
    // API tokens minted with the server's own secret (no password hashing for 1,000 accounts).
    const auth = new AuthService(
      prisma,
      loadConfig({ NODE_ENV: 'production', DATABASE_URL: database.url, SESSION_SECRET: secret }),
    );
    const tokens: string[] = [];
    for (const rater of raters) tokens.push((await auth.createApiToken(rater.id, 'bench', 1, null)).token);
    await prisma.$executeRawUnsafe('ANALYZE');
    await prisma.$disconnect();
    console.log(
      `durability: ${RATERS} raters, ${COMPARISONS} comparisons (overlap 3) on embedded PostgreSQL`,
    );

    const startServer = async () => {
      server = await startProductionServer(database.url, {
        PORT: String(port),
        SESSION_SECRET: secret,
        DB_POOL_MAX: '20',
      });
    };
    await startServer();

    let stopping = false;
    let kills = 0;
    let dbRestarts = 0;
    let refused = 0;
    let retries = 0;
    const ledgers: Ledger[] = raters.map((rater) => ({ raterId: rater.id, acknowledged: [] }));

    const rate = async (ledger: Ledger, token: string) => {
      while (!stopping) {
        let assignment: { id: string } | null = null;
        try {
          const next = await request(port, 'POST', `/api/projects/${project.id}/leases/next`, token, {});
          if (next.status === 200)
            assignment = (JSON.parse(next.body) as { assignment: { id: string } | null }).assignment;
        } catch {
          // The server is down: wait and ask again.
        }
        if (!assignment) {
          await sleep(200 + Math.random() * 300);
          continue;
        }
        // One judgment, one key: retried until the server answers it either way.
        const key = randomUUID();
        const body = { choice: Math.random() < 0.5 ? 'LEFT' : 'RIGHT', strength: 1, timeSpentMs: 900 };
        for (let attempt = 0; ; attempt++) {
          let status: number;
          try {
            status = (await request(port, 'POST', `/api/leases/${assignment.id}/submit`, token, body, key))
              .status;
          } catch {
            status = 0;
          }
          if (status === 201) {
            ledger.acknowledged.push(key);
            break;
          }
          if (status >= 400 && status < 500) {
            refused++; // e.g. the lease was withdrawn while the server was down
            break;
          }
          retries++;
          await sleep(Math.min(2000, 100 * 2 ** Math.min(attempt, 4)) * (0.5 + Math.random()));
        }
      }
    };
    const clients = ledgers.map((ledger, i) => rate(ledger, tokens[i]!));

    const started = Date.now();
    const end = started + SECONDS * 1000;
    let cycle = 0;
    while (Date.now() < end || kills < KILLS || dbRestarts < DB_RESTARTS) {
      await sleep(CHAOS_EVERY * 1000 * (0.5 + Math.random()));
      cycle++;
      const crashDatabase = cycle % 5 === 0 || (kills >= KILLS && dbRestarts < DB_RESTARTS);
      if (crashDatabase) {
        // PostgreSQL crash: immediate shutdown (no checkpoint), then start again with recovery.
        const pid = Number(
          readFileSync(path.join(database.clusterDir, 'postmaster.pid'), 'utf8').split('\n')[0],
        );
        process.kill(pid, 'SIGQUIT');
        for (let i = 0; i < 100; i++) {
          try {
            process.kill(pid, 0);
            await sleep(100);
          } catch {
            break;
          }
        }
        await sleep(1000 * Math.random());
        database = await startEmbeddedPostgres(dataDir);
        dbRestarts++;
        console.log(
          `durability: [${((Date.now() - started) / 1000).toFixed(0)} s] PostgreSQL crashed and restarted`,
        );
      } else {
        server!.child.kill('SIGKILL');
        await new Promise((resolve) => server!.child.once('exit', resolve));
        kills++;
        await startServer();
        console.log(
          `durability: [${((Date.now() - started) / 1000).toFixed(0)} s] server killed and restarted`,
        );
      }
      if (server!.child.exitCode !== null) await startServer();
    }
    // Calm: no more crashes; every rater finishes the judgment in hand (retrying until answered).
    stopping = true;
    await Promise.race([Promise.all(clients), sleep(120_000)]);

    const check = createPrisma(database.url, { max: 2 });
    const acknowledged = ledgers.flatMap((ledger) => ledger.acknowledged.map((key) => ({ ...ledger, key })));
    let found = 0;
    for (const ledger of ledgers) {
      if (!ledger.acknowledged.length) continue;
      found += await check.preference.count({
        where: { raterId: ledger.raterId, idempotencyKey: { in: ledger.acknowledged } },
      });
    }
    const [dupes] = await check.$queryRaw<{ n: number }[]>`
      SELECT count(*)::int AS n FROM (
        SELECT 1 FROM "Preference" GROUP BY "raterId", "comparisonId" HAVING count(*) > 1
        UNION ALL
        SELECT 1 FROM "Preference" WHERE "idempotencyKey" IS NOT NULL
        GROUP BY "raterId", "idempotencyKey" HAVING count(*) > 1
      ) d`;
    const [broken] = await check.$queryRaw<
      { over: number; miscounted: number; leases: number; stored: number }[]
    >`
      SELECT
        count(*) FILTER (WHERE c."voteCount" > c."requiredVotes")::int AS over,
        count(*) FILTER (WHERE c."voteCount" <> (SELECT count(*) FROM "Preference" p WHERE p."comparisonId" = c.id))::int AS miscounted,
        count(*) FILTER (WHERE c."leaseCount" <> (SELECT count(*) FROM "Assignment" a WHERE a."comparisonId" = c.id AND a.status = 'LEASED'))::int AS leases,
        (SELECT count(*) FROM "Preference")::int AS stored
      FROM "Comparison" c`;
    await check.$disconnect();
    const lost = acknowledged.length - found;
    console.log(
      `durability: ${acknowledged.length} acknowledged, ${broken!.stored} stored (the rest were in flight when a ` +
        `crash hit, never acknowledged), ${refused} refused, ${retries} retried requests; comparisons over overlap ` +
        `${broken!.over}, vote counts off ${broken!.miscounted}, lease counts off ${broken!.leases}`,
    );
    if (broken!.over || broken!.miscounted || broken!.leases) process.exitCode = 1;
    console.log(
      `durability: acknowledged=${acknowledged.length} lost=${lost} duplicated=${dupes!.n} kills=${kills} db_restarts=${dbRestarts}`,
    );
  } finally {
    await (server as ServerProcess | null)?.stop();
    agent.destroy();
    await database.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
