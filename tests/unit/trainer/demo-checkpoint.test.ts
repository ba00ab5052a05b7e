// The demo's shipped first model (trainer/checkpoints/demo-sft.bin) is the one the seed job would
// fine-tune from the demo's current prompts and default settings, so a first start loads it
// instead of fine-tuning for minutes; it stays small, answers the held-out prompts as the
// fine-tuned policy does, and its README says how it was made and which file it is.
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoPromptRows, isCorrect } from '../../../core/demo.js';
import {
  DEFAULT_DEMO,
  DEMO_CHECKPOINT,
  demoTrainingData,
  loadShippedPolicy,
  type DemoPolicy,
} from '../../../trainer/jobs/seed-demo.js';
import { initBackend, Rng } from '../../../trainer/runtime.js';
import { generate } from '../../../trainer/sampling.js';

const rows = demoPromptRows();
let shipped: DemoPolicy;

beforeAll(async () => {
  await initBackend();
  const data = demoTrainingData(
    rows.map((row) => ({ text: row.prompt, split: row.split, demonstrations: row.demonstrations })),
  );
  const loaded = loadShippedPolicy(DEMO_CHECKPOINT, data, DEFAULT_DEMO);
  // The reason names what differs: rerun `npx tsx trainer/demo-checkpoint.ts` after changing the demo.
  expect('reason' in loaded ? loaded.reason : null).toBeNull();
  shipped = (loaded as { demo: DemoPolicy }).demo;
});
afterAll(() => shipped?.policy.model.dispose());

describe("the demo's shipped first model", () => {
  it('was fine-tuned on the demo as it is now, at the default settings', () => {
    expect(shipped.policy.model.config).toMatchObject(DEFAULT_DEMO.model);
    expect(shipped.validationLoss).toBeGreaterThan(0);
  });

  it('is small enough to keep in the repository', () => {
    expect(statSync(DEMO_CHECKPOINT).size).toBeLessThan(2 * 1024 * 1024);
  });

  it('answers most held-out prompts right when greedy, as the fine-tuned policy does', () => {
    const heldOut = rows.filter((row) => row.split === 'TEST');
    const { model, tokenizer } = shipped.policy;
    const answers = generate(
      model,
      heldOut.map((row) => tokenizer.encodePrompt(row.prompt)),
      { temperature: 0, topK: 0, maxNewTokens: 24, batchSize: 64 },
      new Rng(1),
    ).map((ids) => tokenizer.decode(ids).trim());
    const right = answers.filter((answer, i) => isCorrect(answer, heldOut[i]!.answer)).length;
    expect(right / heldOut.length).toBeGreaterThanOrEqual(0.85);
  });

  it('is named in its README with the command that makes it and its sha256', () => {
    const readme = readFileSync(path.join(path.dirname(DEMO_CHECKPOINT), 'README.md'), 'utf8');
    expect(readme).toContain('npx tsx trainer/demo-checkpoint.ts');
    expect(readme).toContain(createHash('sha256').update(readFileSync(DEMO_CHECKPOINT)).digest('hex'));
  });
});
