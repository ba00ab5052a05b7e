// The demo's first comparisons come quickly: the seed job loads the shipped first model (made from
// exactly the demo's demonstrations and settings) and goes straight to sampling, with no
// fine-tuning; only a mismatching or missing one is fine-tuned here. Either way the project and
// Rate show what is being prepared and how far it is, until the comparisons exist.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoPromptRows, ensureDemoProject } from '../../core/demo.js';
import type { Preparing, Project, RaterProjectList } from '../../core/schemas/index.js';
import { decodeCheckpoint, loadArtifact } from '../../trainer/checkpoint.js';
import {
  demoTrainingData,
  encodeDemoCheckpoint,
  seedDemo,
  trainDemoPolicy,
  type DemoSettings,
} from '../../trainer/jobs/seed-demo.js';
import { initBackend } from '../../trainer/runtime.js';
import { createAndSignIn, createTestApp, type SignedIn, type TestApp } from '../support/app.js';

const SIZES = { train: 40, heldOut: 10 };
const TINY = {
  sftSteps: 30,
  model: { contextLength: 32, nLayer: 1, nHead: 2, nEmbd: 32 },
  samplesPerPrompt: 2,
};

let t: TestApp;
let admin: SignedIn;
let rater: SignedIn;
let checkpoint: string;

/** The demo's training data as the seed job reads it back from the stored prompts. */
function smallDemoData() {
  return demoTrainingData(
    demoPromptRows(SIZES).map((row) => ({
      text: row.prompt,
      split: row.split,
      demonstrations: row.demonstrations,
    })),
  );
}

beforeAll(async () => {
  await initBackend();
  t = await createTestApp({}, { jobs: true });
  admin = await createAndSignIn(t, 'ADMIN');
  rater = await createAndSignIn(t, 'RATER');
  // A shipped first model for the small demo, made as trainer/demo-checkpoint.ts makes the real one.
  const data = smallDemoData();
  const trained = await trainDemoPolicy(data, TINY);
  checkpoint = path.join(mkdtempSync(path.join(os.tmpdir(), 'loom-demo-ckpt-')), 'demo-sft.bin');
  writeFileSync(checkpoint, encodeDemoCheckpoint(trained, data, TINY));
  trained.policy.model.dispose();
}, 120_000);
afterAll(() => t.close());

async function projectView(projectId: string): Promise<Project> {
  const response = await t.app.inject({ url: `/api/projects/${projectId}`, headers: admin.headers });
  expect(response.statusCode, response.body).toBe(200);
  return response.json<Project>();
}

async function rateView(who: SignedIn, projectId: string): Promise<RaterProjectList[number] | undefined> {
  const response = await t.app.inject({ url: '/api/rating/projects', headers: who.headers });
  expect(response.statusCode, response.body).toBe(200);
  return response.json<RaterProjectList>().find((project) => project.id === projectId);
}

/** Seeds, recording what the project API said at every progress report. */
async function seedWatched(projectId: string, settings: DemoSettings) {
  const logs: string[] = [];
  const seen: { phase: string; api: Preparing }[] = [];
  await seedDemo(t.prisma, projectId, settings, (line) => logs.push(line), {
    onProgress: async (phase) => {
      seen.push({ phase, api: (await projectView(projectId)).preparing });
    },
  });
  return { logs, seen };
}

describe("the demo's first model", () => {
  it('is loaded from the shipped checkpoint and sampled at once, with no fine-tuning, while Rate shows the progress', async () => {
    const projectId = (await ensureDemoProject(t.prisma, t.boss!, SIZES))!;
    await t.prisma.projectMember.create({ data: { projectId, userId: rater.userId } });

    // Before the trainer has started: shown as being prepared, not as "all done".
    expect((await projectView(projectId)).preparing).toEqual({ phase: 'waiting', progress: 0 });
    const waiting = await rateView(rater, projectId);
    expect(waiting).toMatchObject({ isDemo: true, preparing: { phase: 'waiting', progress: 0 } });
    expect(waiting!.progress.availableToMe).toBe(0);

    const { logs, seen } = await seedWatched(projectId, { ...TINY, checkpoint });

    // Loaded, sampled, saved: never fine-tuned.
    const phases = [...new Set(seen.map((s) => s.phase))];
    expect(phases).toEqual(['loading', 'sampling', 'saving']);
    expect(logs.join('\n')).toMatch(/loaded the shipped first model/);
    expect(logs.join('\n')).not.toMatch(/fine-tuning/);
    // The API said the same at every report, and its progress only grew.
    for (const { phase, api } of seen) expect(api?.phase).toBe(phase);
    const progress = seen.map((s) => s.api!.progress);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(progress.at(-1)).toBeGreaterThan(0.5);
    expect(progress.at(-1)).toBeLessThan(1);

    // Done: nothing being prepared, the first comparisons waiting for the rater.
    const done = await projectView(projectId);
    expect(done.preparing).toBeNull();
    // One comparison per prompt (fewer only where both samples kept the same text).
    expect(done.counts.responses).toBe(2 * SIZES.train);
    expect(done.counts.comparisons).toBeGreaterThan(SIZES.train / 2);
    const ready = await rateView(rater, projectId);
    expect(ready).toMatchObject({ preparing: null, progress: { availableToMe: done.counts.comparisons } });

    // The first version is the shipped model, weight for weight.
    const version = await t.prisma.policyVersion.findUniqueOrThrow({
      where: { id: done.currentPolicyVersionId! },
    });
    const shipped = readFileSync(checkpoint);
    expect(version.metrics).toMatchObject({
      firstModel: 'shipped',
      checkpointSha256: createHash('sha256').update(shipped).digest('hex'),
      sftSteps: TINY.sftSteps,
    });
    const stored = decodeCheckpoint(await loadArtifact(t.prisma, version.artifactId!));
    const original = decodeCheckpoint(shipped);
    for (const [name, tensor] of original.tensors) {
      expect(Array.from(stored.tensors.get(name)!.dataSync()), name).toEqual(Array.from(tensor.dataSync()));
    }
  });

  it('is fine-tuned here, with progress, when the shipped checkpoint was made with other settings', async () => {
    const projectId = await preparedProject('Other settings');
    const { logs, seen } = await seedWatched(projectId, { ...TINY, sftSteps: TINY.sftSteps + 5, checkpoint });
    expect([...new Set(seen.map((s) => s.phase))]).toEqual(['loading', 'fine-tuning', 'sampling', 'saving']);
    expect(logs[0]).toMatch(
      /fine-tuning the first model .* for 35 steps \(the shipped first model was made from other/,
    );
    // A console line at each quarter of the fine-tuning, not one per step.
    expect(logs.filter((line) => /fine-tuning step/.test(line))).toHaveLength(3);
    const fineTuning = seen.filter((s) => s.phase === 'fine-tuning').map((s) => s.api!.progress);
    expect(fineTuning.length).toBeGreaterThan(0);
    expect(fineTuning.every((p) => p > 0 && p < 1)).toBe(true);
    const done = await projectView(projectId);
    expect(done.preparing).toBeNull();
    const version = await t.prisma.policyVersion.findUniqueOrThrow({
      where: { id: done.currentPolicyVersionId! },
    });
    expect(version.metrics).toMatchObject({ firstModel: 'fine-tuned', sftSteps: TINY.sftSteps + 5 });
  });

  it('shows a failed attempt as failed until the retry', async () => {
    const projectId = await preparedProject('Failing');
    // nHead must divide nEmbd: the model cannot be built.
    await expect(
      seedDemo(t.prisma, projectId, { ...TINY, model: { ...TINY.model, nHead: 3 }, checkpoint: null }),
    ).rejects.toThrow(/nHead/);
    expect((await projectView(projectId)).preparing).toMatchObject({ phase: 'failed' });
    await seedDemo(t.prisma, projectId, { ...TINY, checkpoint: null });
    expect((await projectView(projectId)).preparing).toBeNull();
  });
});

/** A project with the small demo's prompts, waiting for its first model (as ensureDemoProject leaves it). */
async function preparedProject(name: string): Promise<string> {
  const project = await t.prisma.project.create({
    data: { name, overlap: 1, preparingPhase: 'waiting' },
  });
  await t.prisma.prompt.createMany({
    data: demoPromptRows(SIZES).map((row) => ({
      projectId: project.id,
      externalId: row.externalId,
      messages: [{ role: 'user', content: row.prompt }],
      metadata: { answer: row.answer, demonstrations: row.demonstrations },
      split: row.split,
    })),
  });
  return project.id;
}
