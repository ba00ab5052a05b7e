// Generation jobs against real PostgreSQL, the real job handler and endpoint client, and a fake
// OpenAI-compatible server on loopback whose answers each test scripts: every item answered once
// despite 429s and 500s, Retry-After honoured, a 400 failing its item with its message (and never
// the key), the concurrency limit kept, cancellation, a second run storing nothing twice, the
// API's checks and failures per prompt, and the responses paired across versions.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { EndpointTarget } from '../../core/endpoints/client.js';
import { createEndpointClient } from '../../core/endpoints/client.js';
import type { GenerationDetail } from '../../core/schemas/generations.js';
import { runGeneration, type GenerationDeps } from '../../trainer/jobs/generation.js';
import { createAndSignIn, createTestApp, type SignedIn, type TestApp } from '../support/app.js';
import { startScriptedEndpoint, type ScriptedEndpoint } from '../support/scripted-endpoint.js';
import { until } from '../support/wait.js';

const API_KEY = 'sk-test-generation-0123456789abcdef';

let t: TestApp;
let admin: SignedIn;
let fake: ScriptedEndpoint;

beforeAll(async () => {
  t = await createTestApp({ OUTBOUND_ALLOW_HOSTS: '127.0.0.1' }, { jobs: true });
  admin = await createAndSignIn(t, 'ADMIN');
  fake = await startScriptedEndpoint();
});
afterAll(async () => {
  await fake.close();
  await t.close();
});
afterEach(() => fake.reset());

let projectCounter = 0;

/** A project with `count` prompts (external ids p-0, p-1, ...) and external versions on the fake. */
async function setUp(count: number, versionNames: string[], concurrency = 4) {
  const project = await t.prisma.project.create({ data: { name: `generation ${++projectCounter}` } });
  const prompts = [];
  for (let i = 0; i < count; i++)
    prompts.push(
      await t.prisma.prompt.create({
        data: {
          projectId: project.id,
          externalId: `p-${i}`,
          split: i % 2 === 0 ? 'TRAIN' : 'TEST',
          metadata: { group: i % 3 },
          messages: [{ role: 'user', content: `Question ${i}` }],
        },
      }),
    );
  const versions = [];
  for (const name of versionNames)
    versions.push(
      await t.prisma.policyVersion.create({
        data: { projectId: project.id, name, kind: 'EXTERNAL', endpointUrl: fake.url, endpointModel: name },
      }),
    );
  const targets = new Map<string, EndpointTarget>(
    versions.map((v) => [
      v.id,
      { baseUrl: fake.url, model: v.name, apiKey: API_KEY, settings: { temperature: 0.7 }, concurrency },
    ]),
  );
  const deps: GenerationDeps = {
    target: async (id) => targets.get(id)!,
    client: (target) => createEndpointClient(target, { allowHosts: ['127.0.0.1'], timeoutMs: 10_000 }),
    retry: { baseMs: 50, capMs: 400 },
    progressMs: 100,
  };
  return { project, prompts, versions, deps };
}

async function createJob(
  projectId: string,
  body: { selection?: object; versionIds: string[]; samplesPerPrompt?: number },
) {
  const response = await t.app.inject({
    method: 'POST',
    url: `/api/projects/${projectId}/generations`,
    headers: admin.headers,
    payload: { selection: {}, samplesPerPrompt: 1, ...body },
  });
  expect(response.statusCode, response.body).toBe(201);
  return response.json<{ id: string; total: number }>();
}

async function detail(jobId: string): Promise<GenerationDetail> {
  const response = await t.app.inject({
    method: 'GET',
    url: `/api/generations/${jobId}`,
    headers: admin.headers,
  });
  expect(response.statusCode, response.body).toBe(200);
  expect(response.body).not.toContain(API_KEY);
  return response.json<GenerationDetail>();
}

async function keysOf(versionIds: string[]) {
  return t.prisma.response.groupBy({
    by: ['promptId', 'policyVersionId', 'sampleIndex'],
    where: { policyVersionId: { in: versionIds } },
    _count: true,
  });
}

describe('generation jobs', () => {
  it('answers every (prompt, version, sample) exactly once while the endpoint fails with 429 and 500', async () => {
    const { project, prompts, versions, deps } = await setUp(6, ['alpha', 'beta']);
    // The first request of each prompt fails: alternately 429 (Retry-After: 0) and 500.
    const failedOnce = new Set<string>();
    fake.script((request) => {
      const key = `${request.model}:${request.lastContent}`;
      if (failedOnce.has(key)) return null;
      failedOnce.add(key);
      return request.index % 2 === 0
        ? { status: 429, headers: { 'retry-after': '0' }, error: 'Slow down' }
        : { status: 500, error: 'Upstream broke' };
    });
    const job = await createJob(project.id, {
      versionIds: versions.map((v) => v.id),
      samplesPerPrompt: 2,
    });
    expect(job.total).toBe(6 * 2 * 2);
    await runGeneration(t.prisma, job.id, deps);

    const { job: done, failures } = await detail(job.id);
    expect(done).toMatchObject({ status: 'SUCCEEDED', total: 24, done: 24, failed: 0, attempt: 1 });
    expect(failures).toEqual([]);
    const keys = await keysOf(versions.map((v) => v.id));
    expect(keys).toHaveLength(24);
    expect(keys.every((key) => key._count === 1)).toBe(true);
    expect(fake.requests.filter((r) => r.status >= 400).length).toBeGreaterThanOrEqual(12);

    // Usage, latency and finish reason on the response and the item; the sampling settings too.
    const response = await t.prisma.response.findFirstOrThrow({
      where: { promptId: prompts[0]!.id, policyVersionId: versions[0]!.id, sampleIndex: 0 },
    });
    expect(response.text).toBe(`alpha says: Question 0`);
    expect(response.metadata).toMatchObject({
      generationJobId: job.id,
      finishReason: 'stop',
      usage: { promptTokens: 5, completionTokens: 7, totalTokens: 12 },
    });
    expect((response.metadata as { latencyMs: number }).latencyMs).toBeGreaterThanOrEqual(0);
    expect(response.samplingParams).toMatchObject({ model: 'alpha', temperature: 0.7 });
    const item = await t.prisma.generationItem.findFirstOrThrow({
      where: { jobId: job.id, promptId: prompts[0]!.id, policyVersionId: versions[0]!.id, sampleIndex: 0 },
    });
    expect(item).toMatchObject({
      status: 'DONE',
      finishReason: 'stop',
      promptTokens: 5,
      completionTokens: 7,
    });
    expect(item.attempts).toBeGreaterThanOrEqual(1);
    expect(item.latencyMs).not.toBeNull();
  });

  it('waits at least what Retry-After asks before trying again', async () => {
    const { project, versions, deps } = await setUp(1, ['gamma']);
    fake.script((request) =>
      request.index === 0 ? { status: 429, headers: { 'retry-after': '2' }, error: 'Rate limited' } : null,
    );
    const job = await createJob(project.id, { versionIds: [versions[0]!.id] });
    await runGeneration(t.prisma, job.id, deps);
    expect(fake.requests).toHaveLength(2);
    const gap = fake.requests[1]!.at - fake.requests[0]!.at;
    expect(gap).toBeGreaterThanOrEqual(1950);
    expect((await detail(job.id)).job).toMatchObject({ status: 'SUCCEEDED', done: 1, failed: 0 });
  });

  it('fails an item on a 400 at once, with the endpoint’s message and never the key', async () => {
    const { project, prompts, versions, deps } = await setUp(3, ['delta']);
    fake.script((request) =>
      request.lastContent === 'Question 1'
        ? // An endpoint that echoes what it was sent: the key must not reach the stored error.
          { status: 400, error: `Prompt rejected by the content filter (auth ${request.authorization})` }
        : null,
    );
    const job = await createJob(project.id, { versionIds: [versions[0]!.id] });
    await runGeneration(t.prisma, job.id, deps);
    expect(fake.requests.filter((r) => r.lastContent === 'Question 1')).toHaveLength(1);

    const { job: done, failures, failedPrompts } = await detail(job.id);
    expect(done).toMatchObject({ status: 'SUCCEEDED', done: 2, failed: 1 });
    expect(failedPrompts).toBe(1);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ promptId: prompts[1]!.id, externalId: 'p-1', failed: 1 });
    expect(failures[0]!.items[0]).toMatchObject({ versionName: 'delta', sampleIndex: 0, attempts: 1 });
    expect(failures[0]!.items[0]!.error).toContain('content filter');
    const item = await t.prisma.generationItem.findFirstOrThrow({
      where: { jobId: job.id, status: 'FAILED' },
    });
    expect(item.lastError).not.toContain(API_KEY);
    expect(await t.prisma.response.count({ where: { promptId: prompts[1]!.id } })).toBe(0);
  });

  it('gives up after the bounded number of attempts', async () => {
    const { project, versions, deps } = await setUp(1, ['epsilon']);
    fake.script(() => ({ status: 503, error: 'Overloaded' }));
    const job = await createJob(project.id, { versionIds: [versions[0]!.id] });
    await runGeneration(t.prisma, job.id, { ...deps, retry: { ...deps.retry, maxAttempts: 3 } });
    expect(fake.requests).toHaveLength(3);
    const { job: done, failures } = await detail(job.id);
    expect(done).toMatchObject({ status: 'FAILED', done: 0, failed: 1 });
    expect(done.error).toContain('Every request failed');
    expect(failures[0]!.items[0]).toMatchObject({ attempts: 3 });
  });

  it('keeps to each endpoint’s concurrency limit, versions side by side, and sends multi-turn prompts whole', async () => {
    const { project, versions, deps } = await setUp(12, ['zeta', 'eta'], 3);
    const multi = await t.prisma.prompt.create({
      data: {
        projectId: project.id,
        messages: [
          { role: 'user', content: 'Name a colour.' },
          { role: 'assistant', content: 'Blue.' },
          { role: 'user', content: 'Another one?' },
        ],
      },
    });
    fake.script(() => ({ delayMs: 80 }));
    const job = await createJob(project.id, { versionIds: versions.map((v) => v.id) });
    await runGeneration(t.prisma, job.id, deps);
    expect(fake.maxInFlight('zeta')).toBe(3);
    expect(fake.maxInFlight('eta')).toBe(3);
    expect(fake.maxInFlightTotal).toBeGreaterThan(3);
    const sent = fake.requests.find((r) => r.lastContent === 'Another one?' && r.model === 'zeta')!;
    expect(sent.messages).toEqual([
      { role: 'user', content: 'Name a colour.' },
      { role: 'assistant', content: 'Blue.' },
      { role: 'user', content: 'Another one?' },
    ]);
    expect(await t.prisma.response.count({ where: { promptId: multi.id } })).toBe(2);
  });

  it('stops when cancelled: requests in flight are aborted and nothing more is sent', async () => {
    const { project, versions, deps } = await setUp(20, ['theta'], 2);
    fake.script(() => ({ delayMs: 1500 }));
    const job = await createJob(project.id, { versionIds: [versions[0]!.id] });
    const running = runGeneration(t.prisma, job.id, deps);
    await until('requests in flight', async () => fake.inFlight() === 2, 10_000, 20);
    const cancelled = await t.app.inject({
      method: 'POST',
      url: `/api/generations/${job.id}/cancel`,
      headers: admin.headers,
    });
    expect(cancelled.statusCode, cancelled.body).toBe(200);
    expect(cancelled.json()).toMatchObject({ cancelRequested: true });
    const started = Date.now();
    await running;
    expect(Date.now() - started).toBeLessThan(1500);
    const sentBefore = fake.requests.length;
    expect(sentBefore).toBe(2);
    expect(fake.aborted()).toBe(2);
    const { job: done } = await detail(job.id);
    expect(done).toMatchObject({ status: 'CANCELLED', done: 0, failed: 0 });
    expect(await t.prisma.generationItem.count({ where: { jobId: job.id, status: 'PENDING' } })).toBe(20);
    expect(await t.prisma.response.count({ where: { policyVersionId: versions[0]!.id } })).toBe(0);

    const again = await t.app.inject({
      method: 'POST',
      url: `/api/generations/${job.id}/cancel`,
      headers: admin.headers,
    });
    expect(again.statusCode).toBe(409);
    const audit = await t.prisma.auditLog.findMany({ where: { targetId: job.id }, orderBy: { id: 'asc' } });
    expect(audit.map((entry) => entry.action)).toEqual(['generation.create', 'generation.cancel']);
    expect(audit[0]!.actorId).toBe(admin.userId);
  });

  it('stores nothing twice: a second run of the job, and a new job for the same responses', async () => {
    const { project, versions, deps } = await setUp(5, ['iota']);
    const job = await createJob(project.id, { versionIds: [versions[0]!.id], samplesPerPrompt: 2 });
    await runGeneration(t.prisma, job.id, deps);
    expect(fake.requests).toHaveLength(10);

    // The same job once more (as pg-boss would retry it after a crash at the very end).
    await t.prisma.generationJob.update({ where: { id: job.id }, data: { status: 'RUNNING' } });
    await t.prisma.generationItem.updateMany({ where: { jobId: job.id }, data: { status: 'PENDING' } });
    await runGeneration(t.prisma, job.id, deps);
    expect(fake.requests).toHaveLength(10);
    expect((await detail(job.id)).job).toMatchObject({
      status: 'SUCCEEDED',
      done: 10,
      failed: 0,
      attempt: 2,
    });

    // A new job asking for the same keys and one more sample: only the new sample is requested.
    const next = await createJob(project.id, { versionIds: [versions[0]!.id], samplesPerPrompt: 3 });
    await runGeneration(t.prisma, next.id, deps);
    expect(fake.requests).toHaveLength(15);
    expect((await detail(next.id)).job).toMatchObject({ status: 'SUCCEEDED', done: 15, failed: 0 });
    const keys = await keysOf([versions[0]!.id]);
    expect(keys).toHaveLength(15);
    expect(keys.every((key) => key._count === 1)).toBe(true);
  });

  it('selects prompts by split, filter and a seeded random sample', async () => {
    const { project, versions, deps } = await setUp(10, ['kappa']);
    const body = (selection: object) => ({ selection, versionIds: [versions[0]!.id] });
    expect((await createJob(project.id, body({ split: 'TEST' }))).total).toBe(5);
    expect((await createJob(project.id, body({ externalIdPrefix: 'p-1' }))).total).toBe(1);
    expect((await createJob(project.id, body({ textContains: 'question 7' }))).total).toBe(1);
    expect((await createJob(project.id, body({ metadata: { key: 'group', value: '0' } }))).total).toBe(4);
    const a = await createJob(project.id, body({ random: { count: 4, seed: 7 } }));
    const b = await createJob(project.id, body({ random: { count: 4, seed: 7 } }));
    expect(a.total).toBe(4);
    await runGeneration(t.prisma, a.id, deps);
    await runGeneration(t.prisma, b.id, deps);
    const promptsOf = async (jobId: string) =>
      (await t.prisma.generationItem.findMany({ where: { jobId }, orderBy: { promptId: 'asc' } })).map(
        (item) => item.promptId,
      );
    expect(await promptsOf(a.id)).toEqual(await promptsOf(b.id));
    // The second job found every response stored by the first.
    expect(fake.requests).toHaveLength(4);
  });

  it('refuses what it cannot do with a clear 400', async () => {
    const { project, versions } = await setUp(2, ['lambda']);
    const other = await setUp(1, ['mu']);
    const builtin = await t.prisma.policyVersion.create({
      data: { projectId: project.id, name: 'sft', kind: 'BUILTIN' },
    });
    const post = (payload: object) =>
      t.app.inject({
        method: 'POST',
        url: `/api/projects/${project.id}/generations`,
        headers: admin.headers,
        payload,
      });
    const cases: [object, RegExp][] = [
      [{ selection: {}, versionIds: [builtin.id], samplesPerPrompt: 1 }, /external versions only/],
      [
        { selection: {}, versionIds: [other.versions[0]!.id], samplesPerPrompt: 1 },
        /not a version of this project/,
      ],
      [{ selection: {}, versionIds: [versions[0]!.id], samplesPerPrompt: 17 }, /samplesPerPrompt/],
      [{ selection: {}, versionIds: [], samplesPerPrompt: 1 }, /versionIds/],
      [
        {
          selection: { split: 'TEST', textContains: 'nothing like it' },
          versionIds: [versions[0]!.id],
          samplesPerPrompt: 1,
        },
        /No prompt/,
      ],
      [{ selection: { bogus: 1 }, versionIds: [versions[0]!.id], samplesPerPrompt: 1 }, /unknown field/],
    ];
    for (const [payload, message] of cases) {
      const response = await post(payload);
      expect(response.statusCode, response.body).toBe(400);
      expect(response.json<{ message: string }>().message).toMatch(message);
    }
    // 2 prompts × 1 version × 16 samples is fine; the total cap is checked on the product.
    await t.prisma.prompt.createMany({
      data: Array.from({ length: 6249 }, (_, i) => ({
        projectId: project.id,
        messages: [{ role: 'user', content: `x${i}` }],
      })),
    });
    const tooMany = await post({ selection: {}, versionIds: [versions[0]!.id], samplesPerPrompt: 16 });
    expect(tooMany.statusCode).toBe(400);
    expect(tooMany.json<{ message: string }>().message).toMatch(/100000/);
    expect(await t.prisma.generationJob.count({ where: { projectId: project.id } })).toBe(0);
  });

  it('runs from the queue and lists jobs; generated responses pair across versions', async () => {
    const { project, versions, deps } = await setUp(4, ['nu', 'xi']);
    // The worker's handler, for this project's jobs (earlier tests left jobs of theirs queued).
    await t.boss!.work<{ jobId: string }>('generation', { pollingIntervalSeconds: 0.5 }, async ([job]) => {
      const row = job && (await t.prisma.generationJob.findUnique({ where: { id: job.data.jobId } }));
      if (row?.projectId === project.id) await runGeneration(t.prisma, row.id, deps);
    });
    const job = await createJob(project.id, { versionIds: versions.map((v) => v.id), samplesPerPrompt: 2 });
    const final = await until(
      'the job from the queue',
      async () => {
        const { job: current } = await detail(job.id);
        return current.status === 'SUCCEEDED' ? current : null;
      },
      30_000,
    );
    expect(final).toMatchObject({ done: 16, failed: 0, versions: [{ name: 'nu' }, { name: 'xi' }] });
    const list = await t.app.inject({
      method: 'GET',
      url: `/api/projects/${project.id}/generations`,
      headers: admin.headers,
    });
    expect(list.json<{ id: string }[]>().map((j) => j.id)).toEqual([job.id]);

    const paired = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${project.id}/comparisons/generate`,
      headers: admin.headers,
      payload: { strategy: 'cross-source', sourceA: 'nu', sourceB: 'xi' },
    });
    expect(paired.statusCode, paired.body).toBe(200);
    // 4 prompts × 2 samples of nu × 2 samples of xi.
    expect(paired.json()).toMatchObject({ created: 16, skippedIdentical: 0 });
    const comparisons = await t.prisma.comparison.findMany({
      where: { projectId: project.id },
      include: { responseA: true, responseB: true },
    });
    for (const comparison of comparisons) {
      expect(comparison.responseA.policyVersionId).toBe(versions[0]!.id);
      expect(comparison.responseB.policyVersionId).toBe(versions[1]!.id);
      expect(comparison.responseA.promptId).toBe(comparison.promptId);
    }
  });
});
