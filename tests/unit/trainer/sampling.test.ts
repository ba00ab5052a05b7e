// Token sampling: temperature 0 is greedy, top-k never leaves the k best, temperature flattens,
// and generation stops at `<end>` or the length cap.
import { beforeAll, describe, expect, it } from 'vitest';
import { createPolicy } from '../../../trainer/policy.js';
import { initBackend, Rng } from '../../../trainer/runtime.js';
import { generate, sampleToken } from '../../../trainer/sampling.js';
import { END, Tokenizer } from '../../../trainer/tokenizer.js';

beforeAll(async () => {
  await initBackend();
});

describe('sampleToken', () => {
  const logits = [0.1, 2, 1.9, -3];

  it('is greedy at temperature 0 and with top-k 1', () => {
    expect(sampleToken(logits, 0, 0, new Rng(1))).toBe(1);
    const rng = new Rng(2);
    for (let i = 0; i < 50; i++) expect(sampleToken(logits, 1, 1, rng)).toBe(1);
  });

  it('never leaves the top k', () => {
    const rng = new Rng(3);
    const seen = new Set<number>();
    for (let i = 0; i < 300; i++) seen.add(sampleToken(logits, 1, 2, rng));
    expect([...seen].sort()).toEqual([1, 2]);
  });

  it('follows softmax(logits / T)', () => {
    const rng = new Rng(4);
    const counts = [0, 0];
    for (let i = 0; i < 4000; i++) counts[sampleToken([0, Math.log(3)], 1, 0, rng)]! += 1;
    expect((counts[1] ?? 0) / 4000).toBeCloseTo(0.75, 1);
    let hot = 0;
    for (let i = 0; i < 4000; i++) hot += sampleToken([0, Math.log(3)], 100, 0, rng);
    expect(hot / 4000).toBeCloseTo(0.5, 1); // a high temperature is nearly uniform
  });
  it('keeps to the nucleus with top-p', () => {
    // Probabilities 0.5, 0.3, 0.2: top-p 0.6 keeps the first two, renormalised to 5/8 and 3/8.
    const nucleus = [Math.log(0.5), Math.log(0.3), Math.log(0.2)];
    const rng = new Rng(5);
    const counts = [0, 0, 0];
    for (let i = 0; i < 4000; i++) counts[sampleToken(nucleus, 1, 0, rng, 0.6)]! += 1;
    expect(counts[2]).toBe(0);
    expect((counts[0] ?? 0) / 4000).toBeCloseTo(0.625, 1);
    for (let i = 0; i < 50; i++) expect(sampleToken(nucleus, 1, 0, rng, 0.4)).toBe(0);
  });
});

describe('generate', () => {
  it('stops at <end> or at maxNewTokens', () => {
    const tokenizer = Tokenizer.fromTexts(['ab']);
    const policy = createPolicy(tokenizer, { nLayer: 1, nEmbd: 16, nHead: 2, contextLength: 16 });
    const prompts = Array.from({ length: 20 }, () => tokenizer.encodePrompt('ab'));
    const out = generate(
      policy.model,
      prompts,
      { temperature: 1, topK: 0, maxNewTokens: 5, batchSize: 8 },
      new Rng(5),
    );
    expect(out).toHaveLength(20);
    for (const r of out) {
      expect(r.length).toBeLessThanOrEqual(5);
      expect(r.length).toBeGreaterThan(0);
      expect(r.slice(0, -1)).not.toContain(END); // nothing after <end>
    }
    // The context caps the length too: a prompt of 14 tokens leaves room for 2.
    const long = generate(
      policy.model,
      [tokenizer.encodePrompt('abababababab')],
      { temperature: 1, topK: 0, maxNewTokens: 10, batchSize: 8 },
      new Rng(6),
    );
    expect(long[0]?.length ?? 0).toBeLessThanOrEqual(2);
  });
});
