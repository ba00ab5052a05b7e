// GET /metrics on the real app and database: refused without the metrics token (and 404 when no
// token is configured); after a rater leases and judges a comparison, the counters and the
// database gauges move; route labels are patterns, never raw URLs.
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../../server/app.js';
import { createTestApp, type SignedIn, type TestApp } from '../support/app.js';
import { addRaters, createProject, next, submit, type RatingSetup } from '../support/rating.js';

const TOKEN = 'metrics-token-0123456789abcdef';

let t: TestApp;
let setup: RatingSetup;
let rater: SignedIn;

beforeAll(async () => {
  t = await createTestApp({ METRICS_TOKEN: TOKEN }, { jobs: true });
  setup = await createProject(t, { overlap: 1 }, { prompts: 4, responses: 3 });
  rater = (await addRaters(t, setup, 1))[0]!;
});

afterAll(async () => {
  await t?.close();
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of the Prometheus text format. */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`Not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[key!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

async function scrape(app: FastifyInstance = t.app): Promise<Sample[]> {
  const response = await app.inject({
    method: 'GET',
    url: '/metrics',
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  expect(response.statusCode, response.body).toBe(200);
  expect(response.headers['content-type']).toMatch(/^text\/plain/);
  return parse(response.body);
}

/** The value of one sample (0 when absent), matching the given labels. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(
    (sample) => sample.name === name && Object.entries(labels).every(([key, v]) => sample.labels[key] === v),
  );
  return found.reduce((sum, sample) => sum + sample.value, 0);
}

describe('GET /metrics', () => {
  it('refuses a scrape without the metrics token, also with an API token or a session', async () => {
    const bare = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(bare.statusCode).toBe(401);
    expect(bare.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(bare.json()).toMatchObject({ statusCode: 401, requestId: bare.headers['x-request-id'] });
    const wrong = await t.app.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: `Bearer ${TOKEN}x` },
    });
    expect(wrong.statusCode).toBe(401);

    const token = await t.app.inject({
      method: 'POST',
      url: '/api/tokens',
      headers: setup.admin.headers,
      payload: { name: 'scripts' },
    });
    expect(token.statusCode, token.body).toBe(201);
    const withApiToken = await t.app.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: `Bearer ${token.json<{ token: string }>().token}` },
    });
    expect(withApiToken.statusCode).toBe(401);
    const withSession = await t.app.inject({ method: 'GET', url: '/metrics', headers: setup.admin.headers });
    expect(withSession.statusCode).toBe(401);
    expect(withSession.body).not.toContain('loom_');
  });

  it('answers 404 when no metrics token is configured', async () => {
    const app = await buildApp({
      config: { ...t.config, metricsToken: undefined },
      prisma: t.prisma,
      logger: false,
    });
    try {
      const response = await app.inject({
        method: 'GET',
        url: '/metrics',
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      expect(response.statusCode).toBe(404);
      expect(response.json<{ message: string }>().message).toMatch(/METRICS_TOKEN/);
    } finally {
      await app.close();
    }
  });

  it('moves the counters and gauges when a judgment is stored, with route patterns as labels', async () => {
    const project = { project_id: setup.projectId };
    const before = await scrape();
    expect(value(before, 'loom_rating_queue_judgments', project)).toBe(12);
    expect(value(before, 'loom_rating_queue_comparisons', project)).toBe(12);
    expect(value(before, 'loom_leases_out', project)).toBe(0);
    expect(value(before, 'loom_judgments_stored_total')).toBe(0);
    expect(value(before, 'loom_judgments_last_hour', { source: 'HUMAN' })).toBe(0);
    for (const state of ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED']) {
      expect(before.some((s) => s.name === 'loom_rounds' && s.labels.state === state)).toBe(true);
      expect(before.some((s) => s.name === 'loom_generation_jobs' && s.labels.state === state)).toBe(true);
    }
    expect(value(before, 'loom_metrics_database_up')).toBe(1);
    expect(value(before, 'loom_db_pool_connections', { state: 'total' })).toBeGreaterThan(0);
    expect(value(before, 'loom_db_pool_max')).toBe(t.config.dbPoolMax);
    expect(before.some((s) => s.name === 'nodejs_eventloop_lag_p99_seconds')).toBe(true);

    const lease = await next(t, rater, setup.projectId);
    expect(lease).not.toBeNull();
    await vi.waitFor(async () => expect(value(await scrape(), 'loom_leases_out', project)).toBe(1), {
      timeout: 15_000,
      interval: 500,
    });

    const submitted = await submit(t, rater, lease!.id);
    expect(submitted.statusCode, submitted.body).toBe(201);
    const afterSubmit = await scrape();
    expect(value(afterSubmit, 'loom_judgments_stored_total')).toBe(1);
    const submitLabels = { method: 'POST', route: '/api/leases/:id/submit', status: '201' };
    expect(value(afterSubmit, 'loom_http_requests_total', submitLabels)).toBe(1);
    expect(value(afterSubmit, 'loom_http_request_duration_seconds_count', submitLabels)).toBe(1);
    expect(
      value(afterSubmit, 'loom_http_requests_total', {
        method: 'POST',
        route: '/api/projects/:id/leases/next',
        status: '200',
      }),
    ).toBe(1);

    // The database gauges are read again once their 5 s are up.
    await vi.waitFor(
      async () => {
        const samples = await scrape();
        expect(value(samples, 'loom_judgments_last_hour', { source: 'HUMAN' })).toBe(1);
        expect(value(samples, 'loom_rating_queue_judgments', project)).toBe(11);
        expect(value(samples, 'loom_leases_out', project)).toBe(0);
      },
      { timeout: 15_000, interval: 500 },
    );

    // No raw URL in any label: ids never appear, unknown paths are one value.
    await t.app.inject({ method: 'GET', url: `/api/no-such/${setup.projectId}` });
    const samples = await scrape();
    const routes = new Set(samples.filter((s) => s.labels.route).map((s) => s.labels.route));
    expect(routes.has('unmatched')).toBe(true);
    for (const route of routes) {
      expect(route).not.toMatch(/[0-9a-f]{8}-[0-9a-f]{4}/);
      expect(route === 'unmatched' || route === 'web' || route!.startsWith('/')).toBe(true);
    }
  });

  it('counts the job queue by queue and state', async () => {
    await t.boss!.send('round-scheduler', {});
    await vi.waitFor(
      async () =>
        expect(
          value(await scrape(), 'loom_job_queue_jobs', { queue: 'round-scheduler', state: 'created' }),
        ).toBeGreaterThanOrEqual(1),
      { timeout: 15_000, interval: 500 },
    );
  });
});
