// A trainer worker killed (SIGKILL) in the middle of a generation job: pg-boss hands the job to the
// next worker once the heartbeat lapses, the new attempt requests only the items still pending,
// and every (prompt, version, sample) ends with exactly one response.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndSignIn, createTestApp, type TestApp } from '../support/app.js';
import { startScriptedEndpoint, type ScriptedEndpoint } from '../support/scripted-endpoint.js';
import { startTrainerWorker } from '../support/trainer-worker.js';
import { until } from '../support/wait.js';

let t: TestApp;
let fake: ScriptedEndpoint;
const workers: ChildProcess[] = [];

function startWorker(): ChildProcess {
  const child = startTrainerWorker(t, { OUTBOUND_ALLOW_HOSTS: '127.0.0.1' });
  workers.push(child);
  return child;
}

beforeAll(async () => {
  t = await createTestApp({ OUTBOUND_ALLOW_HOSTS: '127.0.0.1' }, { jobs: true });
  fake = await startScriptedEndpoint();
}, 120_000);
afterAll(async () => {
  for (const worker of workers) if (worker.exitCode === null) worker.kill('SIGKILL');
  await fake.close();
  await t.close();
});

describe('a worker killed mid-generation', () => {
  it('is retried by another and every (prompt, version, sample) has exactly one response', async () => {
    const admin = await createAndSignIn(t, 'ADMIN');
    const project = await t.prisma.project.create({ data: { name: 'generation kill' } });
    await t.prisma.prompt.createMany({
      data: Array.from({ length: 40 }, (_, i) => ({
        projectId: project.id,
        messages: [{ role: 'user', content: `Question ${i}` }],
      })),
    });
    const versions = [];
    for (const name of ['left', 'right'])
      versions.push(
        await t.prisma.policyVersion.create({
          data: {
            projectId: project.id,
            name,
            kind: 'EXTERNAL',
            endpointUrl: fake.url,
            endpointModel: name,
            endpointConcurrency: 4,
            endpointSettings: { temperature: 0.8 },
          },
        }),
      );
    // 160 requests, 8 at a time, 150 ms each: about 3 s of work to be killed in.
    fake.script(() => ({ delayMs: 150 }));

    const first = startWorker();
    const created = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${project.id}/generations`,
      headers: admin.headers,
      payload: { selection: {}, versionIds: versions.map((v) => v.id), samplesPerPrompt: 2 },
    });
    expect(created.statusCode, created.body).toBe(201);
    const jobId = created.json<{ id: string }>().id;

    await until(
      'a third of the responses',
      async () => {
        const job = await t.prisma.generationJob.findUniqueOrThrow({ where: { id: jobId } });
        if (job.status === 'SUCCEEDED') throw new Error('finished before it could be killed');
        return job.done >= 50;
      },
      60_000,
      50,
    );
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));
    const killed = await t.prisma.generationJob.findUniqueOrThrow({ where: { id: jobId } });
    expect(killed).toMatchObject({ status: 'RUNNING', attempt: 1 });
    expect(killed.done).toBeLessThan(160);
    const requestsBefore = fake.requests.length;

    startWorker();
    const done = await until(
      'the retried job',
      async () => {
        const job = await t.prisma.generationJob.findUniqueOrThrow({ where: { id: jobId } });
        if (job.status === 'FAILED') throw new Error(`job failed: ${job.error}`);
        return job.status === 'SUCCEEDED' ? job : null;
      },
      90_000,
    );
    expect(done).toMatchObject({ attempt: 2, total: 160, done: 160, failed: 0 });

    // Exactly one response per key, and each item done.
    const keys = await t.prisma.response.groupBy({
      by: ['promptId', 'policyVersionId', 'sampleIndex'],
      where: { policyVersionId: { in: versions.map((v) => v.id) } },
      _count: true,
    });
    expect(keys).toHaveLength(160);
    expect(keys.every((key) => key._count === 1)).toBe(true);
    expect(await t.prisma.generationItem.count({ where: { jobId, status: 'DONE' } })).toBe(160);
    // The second attempt asked only for what the first had not stored (plus what was in flight).
    const asked = fake.requests.length - requestsBefore;
    expect(asked).toBeLessThanOrEqual(160 - killed.done);
    expect(asked).toBeGreaterThan(0);
  }, 180_000);
});
