// A round on an external engine, driven by a fake TRL worker over HTTP: launch freezes the
// snapshot and queues the round (the built-in trainer never takes it); a worker claims it,
// heartbeats and sends events; its lease lapses and a second worker takes over; the first's late
// calls are refused; the second's results land as a version with new-vs-parent comparisons.
// A second round is cancelled and the worker learns it on its heartbeat.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Claim } from '../../core/schemas/engine.js';
import type { Round, RoundEvent } from '../../core/schemas/rounds.js';
import { createAndSignIn, createTestApp, type SignedIn, type TestApp } from '../support/app.js';
import { addRaters, createProject, next, submit, type RatingSetup } from '../support/rating.js';

let t: TestApp;
let setup: RatingSetup;
let parentId: string;
let training: { authorization: string };

/** One worker of the fake engine: a name and the training token. */
function worker(name: string) {
  const call = (method: 'GET' | 'POST', url: string, payload?: object) =>
    t.app.inject({ method, url, headers: training, ...(payload === undefined ? {} : { payload }) });
  return {
    claim: (leaseSeconds = 60) =>
      call('POST', '/api/engine/claim', { engine: 'trl', worker: name, leaseSeconds }),
    heartbeat: (claim: Claim, leaseSeconds = 60) => call('POST', claim.paths.heartbeat, { leaseSeconds }),
    events: (claim: Claim, body: object) => call('POST', claim.paths.events, body),
    metrics: (claim: Claim, metrics: Record<string, unknown>) =>
      call('POST', claim.paths.metrics, { metrics }),
    snapshot: (claim: Claim) => call('GET', claim.snapshot.path),
    results: (claim: Claim, body: object) => call('POST', claim.paths.results, body),
    fail: (claim: Claim, error: string) => call('POST', claim.paths.fail, { error }),
  };
}

function launch(admin: SignedIn, body: Record<string, unknown>) {
  return t.app.inject({
    method: 'POST',
    url: `/api/projects/${setup.projectId}/rounds`,
    headers: admin.headers,
    payload: body,
  });
}

async function roundOf(id: string): Promise<Round> {
  const response = await t.app.inject({
    method: 'GET',
    url: `/api/rounds/${id}`,
    headers: setup.admin.headers,
  });
  expect(response.statusCode, response.body).toBe(200);
  return response.json<Round>();
}

/** Lets a lease lapse without waiting for it: its expiry moved into the past. */
async function lapse(roundId: string) {
  await t.prisma.trainingRound.update({
    where: { id: roundId },
    data: { leaseExpiresAt: new Date(Date.now() - 1000) },
  });
}

const TRL = {
  engine: 'trl',
  engineSettings: {
    baseModel: 'org/tiny-llama',
    algorithm: 'dpo',
    lora: true,
    loraRank: 8,
    beta: 0.1,
    epochs: 1,
  },
  config: { comparisonPrompts: 3 },
};

beforeAll(async () => {
  t = await createTestApp({ OUTBOUND_ALLOW_HOSTS: '127.0.0.1:8000' });
  setup = await createProject(t, {}, { prompts: 5, responses: 3 });
  const [rater] = await addRaters(t, setup, 1);
  for (let i = 0; i < 8; i++) {
    const assignment = await next(t, rater!, setup.projectId);
    if (!assignment) break;
    expect((await submit(t, rater!, assignment.id)).statusCode).toBe(201);
  }
  const parent = await t.prisma.policyVersion.create({
    data: { projectId: setup.projectId, name: 'base', kind: 'IMPORTED' },
  });
  parentId = parent.id;
  await t.prisma.project.update({
    where: { id: setup.projectId },
    data: { currentPolicyVersionId: parent.id },
  });
  const created = await t.app.inject({
    method: 'POST',
    url: '/api/tokens',
    headers: setup.admin.headers,
    payload: { name: 'trl workers', scope: 'training' },
  });
  expect(created.statusCode, created.body).toBe(201);
  expect(created.json<{ apiToken: { scope: string } }>().apiToken.scope).toBe('training');
  training = { authorization: `Bearer ${created.json<{ token: string }>().token}` };
}, 60_000);
afterAll(() => t.close());

describe('tokens scoped to training', () => {
  it('only they claim; they reach nothing else; only admins create them', async () => {
    for (const role of ['RATER', 'RESEARCHER', 'ADMIN'] as const) {
      const user = await createAndSignIn(t, role);
      const viaSession = await t.app.inject({
        method: 'POST',
        url: '/api/engine/claim',
        headers: user.headers,
        payload: { engine: 'trl' },
      });
      expect(viaSession.statusCode).toBe(403);
      if (role === 'RATER') continue; // raters make no tokens at all
      const plain = await t.app.inject({
        method: 'POST',
        url: '/api/tokens',
        headers: user.headers,
        payload: { name: 'p' },
      });
      const bearer = { authorization: `Bearer ${plain.json<{ token: string }>().token}` };
      const claimed = await t.app.inject({
        method: 'POST',
        url: '/api/engine/claim',
        headers: bearer,
        payload: { engine: 'trl' },
      });
      expect(claimed.statusCode, claimed.body).toBe(403);
      expect(claimed.json<{ message: string }>().message).toMatch(/scoped to training/);
      const scoped = await t.app.inject({
        method: 'POST',
        url: '/api/tokens',
        headers: user.headers,
        payload: { name: 't', scope: 'training' },
      });
      expect(scoped.statusCode).toBe(role === 'ADMIN' ? 201 : 403);
    }
    const elsewhere = await t.app.inject({ method: 'GET', url: '/api/projects', headers: training });
    expect(elsewhere.statusCode).toBe(403);
    expect(
      (
        await t.app.inject({
          method: 'POST',
          url: '/api/engine/claim',
          headers: training,
          payload: { engine: 'trl' },
        })
      ).statusCode,
    ).toBe(204);
  });
});

describe('a round on the trl engine', () => {
  it('is claimed, taken over after a lapsed lease, fences the first worker and publishes the second’s results', async () => {
    const refused = await launch(setup.admin, { engine: 'trl', engineSettings: { baseModel: ' ' } });
    expect(refused.statusCode).toBe(400);
    const launched = await launch(setup.admin, TRL);
    expect(launched.statusCode, launched.body).toBe(201);
    const queued = launched.json<Round>();
    expect(queued).toMatchObject({
      engine: 'trl',
      status: 'QUEUED',
      phase: 'waiting-for-worker',
      attempt: 0,
    });
    expect(queued.snapshotId).not.toBeNull();
    // No job for the built-in trainer: this app runs without a job queue, where a built-in launch is 503.
    expect((await launch(setup.admin, {})).statusCode).toBe(503);

    const first = worker('gpu-a');
    const claimedA = await first.claim();
    expect(claimedA.statusCode, claimedA.body).toBe(200);
    const a = claimedA.json<Claim>();
    expect(a).toMatchObject({ roundId: queued.id, attempt: 1, engine: 'trl', parent: { id: parentId } });
    expect(a.settings).toMatchObject({
      baseModel: 'org/tiny-llama',
      algorithm: 'dpo',
      loraRank: 8,
      learningRate: 5e-6,
    });
    expect(a.comparisonPrompts).toHaveLength(3);
    expect(a.comparisonPrompts[0]!.text).toMatch(/^Question \d+/);
    // Nothing else to claim while the lease holds.
    expect((await worker('gpu-b').claim()).statusCode).toBe(204);

    const snapshot = await first.snapshot(a);
    expect(snapshot.statusCode, snapshot.body).toBe(200);
    expect(snapshot.headers['x-loom-sha256']).toBe(a.snapshot.sha256);
    const rows = snapshot.body
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(rows).toHaveLength(a.snapshot.rows);
    expect(rows[0]).toHaveProperty('chosen');
    expect(rows[0]).toHaveProperty('margin');

    const beat = await first.heartbeat(a, 30);
    expect(beat.statusCode, beat.body).toBe(200);
    expect(beat.json()).toMatchObject({ cancel: false });
    const sent = await first.events(a, {
      phase: 'reward-model',
      progress: 0.2,
      events: [
        { phase: 'reward-model', message: 'Fitting the reward model' },
        ...[0, 1, 2].map((step) => ({ phase: 'reward-model', step, data: { loss: [0.7, 0.6, 0.5][step] } })),
      ],
    });
    expect(sent.statusCode, sent.body).toBe(200);
    expect((await first.metrics(a, { rewardModelValAccuracy: 0.75 })).statusCode).toBe(200);
    const live = await roundOf(queued.id);
    expect(live).toMatchObject({
      status: 'RUNNING',
      phase: 'reward-model',
      progress: 0.2,
      workerName: 'gpu-a',
    });
    expect(live.metrics).toMatchObject({ rewardModelValAccuracy: 0.75 });
    const events = await t.app.inject({
      method: 'GET',
      url: `/api/rounds/${queued.id}/events`,
      headers: setup.admin.headers,
    });
    const losses = events.json<RoundEvent[]>().filter((e) => e.phase === 'reward-model' && e.step !== null);
    expect(losses.map((e) => e.data.loss)).toEqual([0.7, 0.6, 0.5]);

    // The first worker goes silent; its lease lapses and a second worker takes the round over.
    await lapse(queued.id);
    const second = worker('gpu-b');
    const claimedB = await second.claim();
    expect(claimedB.statusCode, claimedB.body).toBe(200);
    const b = claimedB.json<Claim>();
    expect(b).toMatchObject({ roundId: queued.id, attempt: 2 });
    expect(b.snapshot.sha256).toBe(a.snapshot.sha256);

    const results = (claim: Claim, text: (i: number) => string) => ({
      rewardModel: { metrics: { heldOutAccuracy: 0.8, trainAccuracy: 0.9 } },
      version: { kind: 'EXTERNAL', endpointUrl: 'http://127.0.0.1:8000/v1', endpointModel: 'round-1-lora' },
      responses: claim.comparisonPrompts.map((prompt, i) => ({
        promptId: prompt.id,
        text: text(i),
        parentText: i === 2 ? text(i) : `parent answer ${i}`,
      })),
      metrics: { dpoLoss: 0.41 },
    });
    // Everything the fenced-out first attempt sends now is refused, and changes nothing.
    for (const late of [
      await first.results(
        a,
        results(a, (i) => `late ${i}`),
      ),
      await first.heartbeat(a),
      await first.events(a, { events: [{ phase: 'policy', step: 9, data: { loss: 9 } }] }),
      await first.snapshot(a),
      await first.fail(a, 'out of memory'),
    ]) {
      expect(late.statusCode, late.body).toBe(409);
      expect(late.json<{ message: string }>().message).toMatch(
        /Attempt 1 no longer holds round 1: attempt 2 took it over/,
      );
    }
    expect(await t.prisma.policyVersion.count({ where: { roundId: queued.id } })).toBe(0);

    // Bad results are refused with a reason and store nothing.
    const outsider = await second.results(b, {
      ...results(b, (i) => `new ${i}`),
      responses: [{ promptId: parentId, text: 'x', parentText: 'y' }],
    });
    expect(outsider.statusCode).toBe(400);
    const noEndpoint = await second.results(b, {
      ...results(b, (i) => `new ${i}`),
      version: { kind: 'EXTERNAL' },
    });
    expect(noEndpoint.statusCode).toBe(400);
    const refusedHost = await second.results(b, {
      ...results(b, (i) => `new ${i}`),
      version: { kind: 'EXTERNAL', endpointUrl: 'http://10.0.0.1/v1', endpointModel: 'm' },
    });
    expect(refusedHost.statusCode).toBe(400);
    expect(await t.prisma.rewardModel.count({ where: { roundId: queued.id } })).toBe(0);

    await second.events(b, {
      phase: 'policy',
      progress: 0.8,
      events: [{ phase: 'policy', step: 1, data: { loss: 0.55 }, message: 'DPO' }],
    });
    const published = await second.results(
      b,
      results(b, (i) => `new answer ${i}`),
    );
    expect(published.statusCode, published.body).toBe(200);
    const done = published.json<Round>();
    expect(done).toMatchObject({ status: 'SUCCEEDED', progress: 1, attempt: 2 });
    expect(done.metrics).toMatchObject({ rewardModelValAccuracy: 0.8, dpoLoss: 0.41 });
    const version = await t.prisma.policyVersion.findUniqueOrThrow({ where: { roundId: queued.id } });
    expect(version).toMatchObject({
      kind: 'EXTERNAL',
      status: 'READY',
      parentId,
      snapshotId: queued.snapshotId,
      endpointUrl: 'http://127.0.0.1:8000/v1',
      endpointModel: 'round-1-lora',
    });
    const rm = await t.prisma.rewardModel.findUniqueOrThrow({ where: { roundId: queued.id } });
    expect(rm.metrics).toMatchObject({ heldOutAccuracy: 0.8 });
    expect(version.rewardModelId).toBe(rm.id);
    // Two comparisons for raters: the third prompt's texts were equal, so it has none.
    const comparisons = await t.prisma.comparison.findMany({
      where: { roundId: queued.id },
      include: { responseA: true, responseB: true },
    });
    expect(comparisons).toHaveLength(2);
    for (const comparison of comparisons) {
      expect(comparison.responseA.policyVersionId).toBe(version.id);
      expect(comparison.responseB.policyVersionId).toBe(parentId);
      expect(comparison.responseA.text).toMatch(/^new answer/);
    }
    // Raters get them like any other comparison.
    const listed = await t.app.inject({
      method: 'GET',
      url: `/api/projects/${setup.projectId}/policy-versions`,
      headers: setup.admin.headers,
    });
    expect(listed.json<{ id: string; kind: string }[]>().find((v) => v.id === version.id)?.kind).toBe(
      'EXTERNAL',
    );
    // After the end, even the attempt that published is refused.
    expect((await second.heartbeat(b)).statusCode).toBe(409);
  });

  it('tells the worker on its heartbeat that the round was cancelled', async () => {
    const launched = await launch(setup.admin, { ...TRL, engineSettings: { baseModel: '/models/base' } });
    expect(launched.statusCode, launched.body).toBe(201);
    const round = launched.json<Round>();
    const gpu = worker('gpu-c');
    const claim = (await gpu.claim()).json<Claim>();
    expect(claim).toMatchObject({ roundId: round.id, attempt: 1 });
    expect(claim.settings).toMatchObject({ baseModel: '/models/base', algorithm: 'dpo', lora: true });
    const cancelled = await t.app.inject({
      method: 'POST',
      url: `/api/rounds/${round.id}/cancel`,
      headers: setup.admin.headers,
    });
    expect(cancelled.statusCode, cancelled.body).toBe(200);
    const beat = await gpu.heartbeat(claim);
    expect(beat.statusCode, beat.body).toBe(200);
    expect(beat.json()).toEqual({ cancel: true, leaseExpiresAt: null });
    expect(await roundOf(round.id)).toMatchObject({ status: 'CANCELLED', phase: 'cancelled' });
    const late = await gpu.events(claim, { events: [{ phase: 'policy', step: 1, data: { loss: 1 } }] });
    expect(late.statusCode).toBe(409);
    expect(late.json<{ message: string }>().message).toMatch(/cancelled/);

    // A worker may also give up: the round fails with its reason.
    const third = (await launch(setup.admin, TRL)).json<Round>();
    const claimed = (await gpu.claim()).json<Claim>();
    expect(claimed.roundId).toBe(third.id);
    const failed = await gpu.fail(claimed, 'CUDA out of memory');
    expect(failed.statusCode, failed.body).toBe(200);
    expect(failed.json<Round>()).toMatchObject({ status: 'FAILED', error: 'CUDA out of memory' });
  });
});
