// The rating path as data grows: `rating`'s latency and throughput phases (bench/rating.ts) through
// the HTTP API of the server as `npm start` runs it (own process), at 100,000, 1,000,000 and
// 5,000,000 comparisons (BENCH_SIZES, comma-separated, to run others) and at 200 and 1,000 raters
// (BENCH_SCALE_RATERS). One database grows from size to size, as a project does: the comparisons
// come with months of rating (three judgments each, expired and skipped leases, stale leases no
// sweep has freed yet; bench/database.ts), and before each point the queue is topped up to
// BENCH_QUEUE open comparisons (60,000) for the raters to take. At each size the admin's pages are
// timed too: the project page, the Quality tab (quality and reliability) and the Data page's count.
// The machine is shared: each point prints its own raw-insert peer (16 clients, 5 s) and the load
// average before and after it. The curve is drawn to bench/rating-scale.svg.
// Lines: `rating-scale: comparisons=<n> raters=<n> submits_per_s=<n> submit_vs_raw_insert=<r>
// next_p50_ms=<ms> next_p99_ms=<ms> ...`, then
// `rating-scale: ratio_at_5m_over_100k=<r> p99_ms_at_5m_1000=<ms>` (submit_vs_raw_insert at the
// largest size over the smallest, 1,000 raters; with other sizes the names say which).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import pg from 'pg';
import { benchDatabase, seedComparisons } from './database.js';
import { RaterConnection, ratePhase, rawInsertRate, type Phase, type Rater } from './rating.js';
import { drawScaleChart, type ScalePoint } from './scale-chart.js';
import { startProductionServer, type ServerProcess } from './server.js';
import { createPrisma, type PrismaClient } from '../core/db/client.js';
import { hashPassword } from '../core/services/passwords.js';

const SIZES = (process.env.BENCH_SIZES ?? '100000,1000000,5000000')
  .split(',')
  .map(Number)
  .filter((n) => n > 0)
  .sort((a, b) => a - b);
const RATER_COUNTS = (process.env.BENCH_SCALE_RATERS ?? '200,1000')
  .split(',')
  .map(Number)
  .sort((a, b) => a - b);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const THINK_MS = Number(process.env.BENCH_THINK_MS ?? 1000);
const QUEUE = Number(process.env.BENCH_QUEUE ?? 60_000);
/** What months of use leave: 10% of judged comparisons also had a lease expire, 3% a skip. */
const HISTORY = { expired: 0.1, skipped: 0.03, stale: 0.005 };

const load = () =>
  os
    .loadavg()
    .map((value) => value.toFixed(1))
    .join('/');

function label(size: number): string {
  return size >= 1_000_000 ? `${size / 1_000_000}m` : `${size / 1_000}k`;
}

async function queueState(prisma: PrismaClient, projectId: string) {
  const [row] = await prisma.$queryRaw<{ total: bigint; open: bigint; judgments: bigint }[]>`
    SELECT (SELECT count(*) FROM "Comparison" WHERE "projectId" = ${projectId}::uuid) AS total,
           (SELECT count(*) FROM "Comparison" WHERE "projectId" = ${projectId}::uuid AND free) AS open,
           (SELECT count(*) FROM "Preference") AS judgments`;
  return { total: Number(row!.total), open: Number(row!.open), judgments: Number(row!.judgments) };
}

/**
 * Grows the project to `size` comparisons (judged history) and tops its queue up to QUEUE free
 * ones; returns how many comparisons and judgments it holds.
 */
async function grow(prisma: PrismaClient, projectId: string, size: number, raterIds: string[]) {
  const before = await queueState(prisma, projectId);
  const topUp = Math.max(0, QUEUE - before.open);
  const history = Math.max(0, size - before.total - topUp);
  if (history + topUp > 0) {
    const started = Date.now();
    await seedComparisons(prisma, projectId, history + topUp, {
      judged: history / (history + topUp),
      raterIds,
      ...HISTORY,
    });
    console.log(
      `rating-scale: seeded ${history} judged and ${topUp} open comparisons in ` +
        `${((Date.now() - started) / 1000).toFixed(0)} s (load ${load()})`,
    );
  }
  return queueState(prisma, projectId);
}

/** Signs the raters in, ten at a time, each on their own keep-alive connection. */
async function signIn(origin: string, count: number): Promise<Rater[]> {
  const raters: Rater[] = [];
  for (let i = 0; i < count; i += 10) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(10, count - i) }, async (_, j) => {
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
  return raters;
}

/** The admin's pages at this size: the best of three answers each (ms), or null past 60 s. */
async function adminPages(admin: Rater, projectId: string, skip: Set<string>) {
  const pages: [string, string, string, unknown][] = [
    ['project', 'GET', `/api/projects/${projectId}`, undefined],
    ['data_count', 'POST', `/api/projects/${projectId}/export/count`, { format: 'trl' }],
    ['quality', 'GET', `/api/projects/${projectId}/quality`, undefined],
    ['reliability', 'GET', `/api/projects/${projectId}/reliability`, undefined],
  ];
  const timings: Record<string, number | null> = {};
  for (const [name, method, url, body] of pages) {
    if (skip.has(name)) {
      timings[name] = null;
      continue;
    }
    let best = Infinity;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const answer = await Promise.race([
        admin.connection.request(method, url, admin.headers, body),
        new Promise<null>((resolve) => setTimeout(() => resolve(null), 60_000)),
      ]);
      const ms = performance.now() - t0;
      if (answer === null) {
        // Too slow to wait for: not asked again at larger sizes (the connection is dropped).
        admin.connection.close();
        admin.connection = new RaterConnection(new URL(`http://${(admin as AdminRater).host}`));
        skip.add(name);
        best = Infinity;
        break;
      }
      if (answer.status !== 200) throw new Error(`${name}: ${answer.status} ${answer.body.slice(0, 200)}`);
      best = Math.min(best, ms);
      if (ms > 10_000) break;
    }
    timings[name] = Number.isFinite(best) ? best : null;
  }
  return timings;
}

interface AdminRater extends Rater {
  host: string;
}

async function settle(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  await client.query('ANALYZE');
  await client.query('CHECKPOINT');
  await client.end();
  execFileSync('sync');
}

export async function main(): Promise<void> {
  const database = await benchDatabase('rating_scale');
  const databaseUrl = database.url;
  let server: ServerProcess | null = null;
  const raters: Rater[] = [];
  const points: ScalePoint[] = [];
  const maxRaters = Math.max(...RATER_COUNTS);
  try {
    const prisma = createPrisma(databaseUrl, { max: 4 });
    const project = await prisma.project.create({
      data: { name: 'Rating at scale', overlap: 3, labelSchema: {} },
    });
    const passwordHash = await hashPassword('benchmark passphrase');
    await prisma.user.createMany({
      data: Array.from({ length: maxRaters }, (_, i) => ({
        email: `rater${i}@bench.example`,
        name: `Rater ${i}`,
        role: 'RATER' as const,
        simulated: true,
      })),
    });
    await prisma.user.create({
      data: {
        email: 'admin@bench.example',
        name: 'Admin',
        role: 'ADMIN',
        credential: { create: { passwordHash } },
      },
    });
    const users = await prisma.user.findMany({ where: { role: 'RATER' }, select: { id: true } });
    const raterIds = users.map((user) => user.id);
    await prisma.credential.createMany({ data: raterIds.map((userId) => ({ userId, passwordHash })) });
    await prisma.projectMember.createMany({
      data: raterIds.map((userId) => ({ projectId: project.id, userId })),
    });

    server = await startProductionServer(databaseUrl, {
      LOGIN_RATE_LIMIT_PER_MINUTE: '100000',
      ...(process.env.BENCH_POOL ? { DB_POOL_MAX: process.env.BENCH_POOL } : {}),
    });
    const origin = server.origin;
    console.log(`rating-scale: signing in ${maxRaters} raters...`);
    raters.push(...(await signIn(origin, maxRaters)));
    const adminConnection = new RaterConnection(new URL(origin));
    const adminLogin = await adminConnection.request(
      'POST',
      '/api/auth/login',
      {},
      { email: 'admin@bench.example', password: 'benchmark passphrase' },
    );
    if (adminLogin.status !== 200) throw new Error(`admin login ${adminLogin.status}`);
    const admin: AdminRater = {
      connection: adminConnection,
      host: new URL(origin).host,
      headers: {
        cookie: adminLogin.setCookie.map((c) => c.split(';')[0]).join('; '),
        'x-csrf-token': (JSON.parse(adminLogin.body) as { csrfToken: string }).csrfToken,
      },
    };
    const slowPages = new Set<string>();

    for (const size of SIZES) {
      for (const count of RATER_COUNTS) {
        const state = await grow(prisma, project.id, size, raterIds);
        const loadBefore = load();
        const pool = raters.slice(0, count);
        // As in `rating`: a warm-up burst, then the statistics and the burst written out.
        await ratePhase(project.id, pool, 0, 5);
        await settle(databaseUrl);
        const raw = await rawInsertRate(databaseUrl);
        const paced: Phase = await ratePhase(project.id, pool, THINK_MS, SECONDS);
        const busy: Phase = await ratePhase(project.id, pool, 0, SECONDS);
        const point: ScalePoint = {
          comparisons: state.total,
          size,
          raters: count,
          judgments: state.judgments,
          rate: busy.rate,
          raw,
          ratio: busy.rate / raw,
          p50: paced.p50,
          p99: paced.p99,
          errors: busy.errors + paced.errors,
          load: `${loadBefore} → ${load()}`,
        };
        points.push(point);
        console.log(
          `rating-scale: comparisons=${state.total} judgments=${state.judgments} raters=${count} ` +
            `submits_per_s=${busy.rate.toFixed(0)} raw_inserts_per_s=${raw.toFixed(0)} ` +
            `submit_vs_raw_insert=${point.ratio.toFixed(3)} next_p50_ms=${paced.p50.toFixed(1)} ` +
            `next_p99_ms=${paced.p99.toFixed(1)} busy_p99_ms=${busy.p99.toFixed(1)} errors=${point.errors} ` +
            `loop_p99_ms=${paced.loopP99.toFixed(1)} load=${point.load}`,
        );
      }
      const pages = await adminPages(admin, project.id, slowPages);
      const shown = Object.entries(pages)
        .map(([name, ms]) => `${name}_ms=${ms === null ? '>60000' : ms.toFixed(0)}`)
        .join(' ');
      console.log(`rating-scale: comparisons=${(await queueState(prisma, project.id)).total} admin ${shown}`);
      for (const point of points.filter((p) => p.size === size)) point.pages = pages;
      // Written after every size: a run stopped early still leaves its curve so far.
      writeFileSync('bench/rating-scale.svg', drawScaleChart(points));
      writeFileSync('bench/rating-scale.json', JSON.stringify(points, null, 2) + '\n');
    }
    await prisma.$disconnect();
    const smallest = SIZES[0]!;
    const largest = SIZES[SIZES.length - 1]!;
    const at = (size: number) => points.find((p) => p.size === size && p.raters === maxRaters)!;
    console.log(
      `rating-scale: ratio_at_${label(largest)}_over_${label(smallest)}=${(at(largest).ratio / at(smallest).ratio).toFixed(3)} ` +
        `p99_ms_at_${label(largest)}_${maxRaters}=${at(largest).p99.toFixed(1)}`,
    );
  } finally {
    await server?.stop();
    for (const rater of raters) rater.connection.close();
    if (process.env.BENCH_KEEP_DATABASE) console.log(`rating-scale: database kept: ${databaseUrl}`);
    else await database.drop();
  }
}
