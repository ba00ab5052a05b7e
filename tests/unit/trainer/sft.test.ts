// SFT on a tiny synthetic task (reverse a short string): validation loss falls and sampling gives
// the taught answers far more often than before training.
import { beforeAll, describe, expect, it } from 'vitest';
import { DataParallel } from '../../../trainer/data-parallel.js';
import { createPolicy, type Policy } from '../../../trainer/policy.js';
import { initBackend, Rng } from '../../../trainer/runtime.js';
import { generate } from '../../../trainer/sampling.js';
import { trainSFT, type Demonstration } from '../../../trainer/sft.js';
import { Tokenizer, END } from '../../../trainer/tokenizer.js';

const rng = new Rng(5);
const letters = 'abcdef';
function reversal(n: number): Demonstration[] {
  return Array.from({ length: n }, () => {
    const s = Array.from({ length: 2 + rng.int(3) }, () => letters[rng.int(6)]).join('');
    return { prompt: s, response: [...s].reverse().join('') };
  });
}

function taughtRate(policy: Policy, demos: Demonstration[]): number {
  const { tokenizer } = policy;
  const sampled = generate(
    policy.model,
    demos.map((d) => tokenizer.encodePrompt(d.prompt)),
    { temperature: 1, topK: 0, maxNewTokens: 8, batchSize: 64 },
    new Rng(1),
  );
  return (
    sampled.filter((s, i) => s.at(-1) === END && tokenizer.decode(s) === demos[i]?.response).length /
    demos.length
  );
}

beforeAll(async () => {
  await initBackend();
});

describe('SFT', () => {
  it('lowers validation loss and teaches the answers', { timeout: 180_000 }, async () => {
    const train = reversal(400);
    const validation = reversal(50);
    const policy = createPolicy(Tokenizer.fromTexts([letters]), {
      nLayer: 2,
      nEmbd: 48,
      nHead: 4,
      contextLength: 16,
    });
    const before = taughtRate(policy, validation);
    // Both cores: half of every batch goes to a worker thread.
    const parallel = await DataParallel.start(policy.model, 1);
    const result = await trainSFT(
      policy,
      train,
      validation,
      {
        steps: 240,
        batchSize: 32,
        learningRate: 3e-3,
        evalEvery: 40,
      },
      { parallel },
    );
    await parallel.close();
    const first = result.validation[0]?.loss ?? NaN;
    const last = result.validation.at(-1)?.loss ?? NaN;
    expect(last).toBeLessThan(first * 0.5);
    const after = taughtRate(policy, validation);
    expect(after).toBeGreaterThan(before + 0.5);
  });
});
