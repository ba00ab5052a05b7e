// Prometheus metrics (prom-client), served by GET /metrics (routes/metrics.ts): requests by route
// pattern and status with latency histograms, judgments stored by this process, the connection
// pool, Node's own metrics (event-loop lag, heap, GC, CPU), and, read from the database on scrape
// (one short read-only transaction, reused for 5 s: core/services/metrics.ts), the rating queue and
// leases per project, recent judgments, rounds, generation jobs and the job queue by state.
// Registered before the routes, so that its hook sees every answer.
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { DatabaseGauges, MetricsService } from '../../core/services/metrics.js';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: {
      /** The Prometheus text format's content type. */
      contentType: string;
      /** Every metric now, the database gauges read (or reused) first. */
      scrape(log: FastifyBaseLogger): Promise<string>;
    };
  }
}

export const METRICS_PATH = '/metrics';

/** Latency buckets from 5 ms (a cached session lookup) to 30 s (the request timeout). */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Operations whose success stores a judgment (the current path and its deprecated alias). */
const STORES_A_JUDGMENT = new Set(['submitJudgment', 'submitJudgmentDeprecated']);

/**
 * The route's pattern (`/api/projects/:id`), never the raw URL, so the label's values are as few
 * as the routes: unknown paths are `unmatched`, the web app's pages and files `web`.
 */
export function routeLabel(request: FastifyRequest, status: number): string {
  const pattern = request.routeOptions.url;
  if (pattern === undefined) {
    const pathname = request.url.split('?')[0] ?? '';
    return status === 404 || pathname.startsWith('/api') ? 'unmatched' : 'web';
  }
  if (!pattern.startsWith('/api') && pattern !== METRICS_PATH) return 'web';
  return pattern;
}

export default fp(async function metrics(app: FastifyInstance, options: { service: MetricsService }) {
  const register = new Registry();
  collectDefaultMetrics({ register });

  const requests = new Counter({
    name: 'loom_http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [register],
  });
  const latency = new Histogram({
    name: 'loom_http_request_duration_seconds',
    help: 'Time from receiving a request to answering it, by method, route pattern and status.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [register],
  });
  const judgmentsStored = new Counter({
    name: 'loom_judgments_stored_total',
    help: 'Judgments this process answered as stored (201 from the submit route); sum over processes.',
    registers: [register],
  });

  new Gauge({
    name: 'loom_db_pool_connections',
    help: "This process's database connections: total open, idle, and requests waiting for one.",
    labelNames: ['state'] as const,
    registers: [register],
    collect() {
      const now = options.service.pool();
      this.set({ state: 'total' }, now.total);
      this.set({ state: 'idle' }, now.idle);
      this.set({ state: 'waiting' }, now.waiting);
    },
  });
  new Gauge({
    name: 'loom_db_pool_max',
    help: "The most database connections this process's pool opens (DB_POOL_MAX).",
    registers: [register],
    collect() {
      this.set(options.service.pool().max);
    },
  });

  const perProject = ['project_id', 'project'] as const;
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Gauge<L>({ name, help, labelNames, registers: [register] });
  const queueJudgments = gauge(
    'loom_rating_queue_judgments',
    'Judgments still wanted by open comparisons, per active project.',
    perProject,
  );
  const queueComparisons = gauge(
    'loom_rating_queue_comparisons',
    'Comparisons still open (fewer judgments than required), per active project.',
    perProject,
  );
  const leasesOut = gauge(
    'loom_leases_out',
    'Comparisons leased to raters now (expired ones included until swept), per project.',
    perProject,
  );
  const leasesExpired = gauge(
    'loom_leases_expired',
    'Leases past their expiry that still hold a slot until the sweep, per project.',
    perProject,
  );
  const judgmentsLastHour = gauge(
    'loom_judgments_last_hour',
    'Judgments stored in the last hour by every process, by source.',
    ['source'],
  );
  const rounds = gauge('loom_rounds', 'Training rounds by state.', ['state']);
  const generationJobs = gauge(
    'loom_generation_jobs',
    'Generation jobs by state (absent while the database has no generation jobs table).',
    ['state'],
  );
  const jobs = gauge('loom_job_queue_jobs', 'Jobs in the job queue (pg-boss) by queue and state.', [
    'queue',
    'state',
  ]);
  const databaseUp = gauge(
    'loom_metrics_database_up',
    '1 when the last read of the database gauges succeeded, else 0 (and they are left out).',
    [],
  );
  const readSeconds = gauge(
    'loom_metrics_database_read_seconds',
    'How long the last read of the database gauges took.',
    [],
  );
  const fromDatabase = [
    queueJudgments,
    queueComparisons,
    leasesOut,
    leasesExpired,
    judgmentsLastHour,
    rounds,
    generationJobs,
    jobs,
  ];

  function show(values: DatabaseGauges): void {
    for (const metric of fromDatabase) metric.reset();
    for (const row of values.queues) {
      const labels = { project_id: row.projectId, project: row.project };
      queueJudgments.set(labels, row.judgments);
      queueComparisons.set(labels, row.comparisons);
    }
    for (const row of values.leases) {
      const labels = { project_id: row.projectId, project: row.project };
      leasesOut.set(labels, row.out);
      leasesExpired.set(labels, row.expired);
    }
    for (const [source, count] of Object.entries(values.judgmentsLastHour))
      judgmentsLastHour.set({ source }, count);
    for (const [state, count] of Object.entries(values.rounds)) rounds.set({ state }, count);
    for (const [state, count] of Object.entries(values.generationJobs ?? {}))
      generationJobs.set({ state }, count);
    for (const row of values.jobs ?? []) jobs.set({ queue: row.queue, state: row.state }, row.count);
    readSeconds.set(values.durationSeconds);
  }

  app.addHook('onResponse', async (request, reply) => {
    const status = reply.statusCode;
    const labels = { method: request.method, route: routeLabel(request, status), status: String(status) };
    requests.inc(labels);
    latency.observe(labels, reply.elapsedTime / 1000);
    if (status === 201 && STORES_A_JUDGMENT.has(String(request.routeOptions.schema?.operationId)))
      judgmentsStored.inc();
  });

  app.decorate('metrics', {
    contentType: register.contentType,
    async scrape(log: FastifyBaseLogger) {
      try {
        show(await options.service.gauges());
        databaseUp.set(1);
      } catch (error) {
        log.warn({ err: error }, 'metrics: the database gauges could not be read');
        for (const metric of fromDatabase) metric.reset();
        databaseUp.set(0);
      }
      return register.metrics();
    },
  });
});
