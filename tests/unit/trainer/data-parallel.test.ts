// Both cores: data-parallel gradients over a worker thread equal the gradients of the whole batch
// computed in one piece, and parallel sampling returns what one thread would (greedy decoding).
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { DataParallel, splitBatch } from '../../../trainer/data-parallel.js';
import { gradientLoss, SFT_LOSS, type GradientLossRequest } from '../../../trainer/gradient-losses.js';
import { SamplingHelper } from '../../../trainer/parallel-sampling.js';
import { createPolicy, freezeCopy } from '../../../trainer/policy.js';
import { trainRLOO } from '../../../trainer/rloo.js';
import { generate } from '../../../trainer/sampling.js';
import { initBackend, Rng } from '../../../trainer/runtime.js';
import { packBatch } from '../../../trainer/sequences.js';
import { Tokenizer } from '../../../trainer/tokenizer.js';

beforeAll(async () => {
  await initBackend();
});

describe('parallel sampling', () => {
  it('gives the same greedy responses as one thread, in prompt order', { timeout: 60_000 }, async () => {
    const tokenizer = Tokenizer.fromTexts(['abcdef']);
    const policy = createPolicy(tokenizer, { nLayer: 1, nEmbd: 16, nHead: 2, contextLength: 16 });
    const prompts = ['a', 'bc', 'def', 'fa', 'e'].map((p) => tokenizer.encodePrompt(p));
    const greedy = { temperature: 0, topK: 0, maxNewTokens: 6, batchSize: 64 };
    const helper = await SamplingHelper.start(policy.model);
    try {
      expect(helper.generate(policy.model, prompts, greedy, new Rng(1))).toEqual(
        generate(policy.model, prompts, greedy, new Rng(1)),
      );
      // And inside a training loop: RLOO with both helpers (sampling, gradients) runs every iteration.
      const parallel = await DataParallel.start(policy.model, 1);
      const reference = freezeCopy(policy);
      const scorer = { score: (items: { response: string }[]) => items.map((i) => i.response.length) };
      const { history } = trainRLOO(
        policy,
        reference,
        scorer,
        ['a', 'b', 'c'],
        { iterations: 2, promptsPerIteration: 2, k: 2, sampling: { ...greedy, temperature: 1 } },
        { helper, parallel },
      );
      await parallel.close();
      expect(history).toHaveLength(2);
    } finally {
      await helper.close();
    }
  });
});

describe('data-parallel gradients', () => {
  it('split a batch by rows', () => {
    const tokenizer = Tokenizer.fromTexts(['abc']);
    const b = packBatch(
      ['a', 'bb', 'ccc'].map((s) => ({
        prompt: tokenizer.encodePrompt(s),
        response: tokenizer.encodeResponse(s),
      })),
      16,
    );
    const shards = splitBatch(b, 2);
    expect(shards.map((s) => s.batch)).toEqual([2, 1]);
    expect(Array.from(shards[1]?.input ?? [])).toEqual(Array.from(b.input.slice(2 * b.length)));
  });

  it('match the single-thread gradient of the whole batch', { timeout: 60_000 }, async () => {
    const tokenizer = Tokenizer.fromTexts(['abcdef']);
    const { model } = createPolicy(tokenizer, { nLayer: 1, nEmbd: 16, nHead: 2, contextLength: 16 });
    const texts = ['abc', 'de', 'fabcd', 'a', 'cc'];
    const batch = packBatch(
      texts.map((s) => ({ prompt: tokenizer.encodePrompt(s), response: tokenizer.encodeResponse(s + s) })),
      16,
    );
    const { value, grads } = tf.variableGrads(
      () => gradientLoss(model, batch, SFT_LOSS),
      [...model.params.values()],
    );
    const parallel = await DataParallel.start(model, 1);
    try {
      const result = await parallel.gradients(batch);
      expect(result.loss).toBeCloseTo(value.dataSync()[0] ?? NaN, 4);
      for (const [name, v] of model.params) {
        const expected = Array.from(grads[v.name]?.dataSync() ?? []);
        const actual = Array.from(result.grads.get(name)?.dataSync() ?? []);
        const maxDiff = expected.reduce(
          (m: number, x, i) => Math.max(m, Math.abs(x - (actual[i] ?? NaN))),
          0,
        );
        expect(maxDiff, name).toBeLessThan(1e-4);
      }
      tf.dispose([...result.grads.values()]);
    } finally {
      await parallel.close();
      tf.dispose([value, ...Object.values(grads)]);
    }
  });

  it('match for the RL losses too, synchronously (RLOO, clipped, GRPO)', { timeout: 60_000 }, async () => {
    const tokenizer = Tokenizer.fromTexts(['abcdef']);
    const { model } = createPolicy(tokenizer, { nLayer: 1, nEmbd: 16, nHead: 2, contextLength: 16 });
    const texts = ['abc', 'de', 'fabcd', 'a', 'cc', 'ef'];
    const batch = packBatch(
      texts.map((s) => ({ prompt: tokenizer.encodePrompt(s), response: tokenizer.encodeResponse(s) })),
      16,
    );
    const noise = (i: number): number => Math.sin(i * 12.9898) * 0.3;
    const grid = (shift: number): Float32Array => batch.mask.map((m, i) => m * (noise(i + shift) - 1.5));
    const cases: GradientLossRequest[] = [
      { name: 'reinforce', inputs: { advantages: [1, -1, 0.5, -0.5, 2, -2] } },
      { name: 'clipped', inputs: { logpOld: grid(1), advantages: grid(2), epsilon: 0.2 } },
      {
        name: 'grpo',
        inputs: {
          advantages: [1, -1, 0.5, -0.5, 2, -2],
          logpOld: grid(3),
          logpRef: grid(4),
          epsilon: 0.2,
          beta: 0.1,
        },
      },
    ];
    const parallel = await DataParallel.start(model, 1);
    try {
      for (const request of cases) {
        const loss = request.name;
        const { value, grads } = tf.variableGrads(
          () => gradientLoss(model, batch, request),
          [...model.params.values()],
        );
        const result = parallel.gradientsSync(batch, request);
        expect(result.loss, loss).toBeCloseTo(value.dataSync()[0] ?? NaN, 4);
        for (const [name, v] of model.params) {
          const expected = Array.from(grads[v.name]?.dataSync() ?? []);
          const actual = Array.from(result.grads.get(name)?.dataSync() ?? []);
          const maxDiff = expected.reduce(
            (m: number, x, i) => Math.max(m, Math.abs(x - (actual[i] ?? NaN))),
            0,
          );
          expect(maxDiff, `${loss} ${name}`).toBeLessThan(1e-4);
        }
        tf.dispose([value, ...Object.values(grads), ...result.grads.values()]);
      }
    } finally {
      await parallel.close();
    }
  });
});
