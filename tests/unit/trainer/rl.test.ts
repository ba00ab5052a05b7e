// Policy optimization on a fixed synthetic reward (share of the letter "a" in the response):
// RLOO raises the mean reward while the KL to the reference stays bounded; the other algorithms
// move the same way in a few steps.
import { beforeAll, describe, expect, it } from 'vitest';
import { trainBestOfN } from '../../../trainer/best-of-n.js';
import { trainDPO } from '../../../trainer/dpo.js';
import { evaluatePolicy, winRate } from '../../../trainer/evaluate.js';
import { trainGRPO } from '../../../trainer/grpo.js';
import { createPolicy, freezeCopy, trainableCopy, type Policy } from '../../../trainer/policy.js';
import { trainPPO } from '../../../trainer/ppo.js';
import type { RewardScorer } from '../../../trainer/preferences.js';
import { trainRLOO } from '../../../trainer/rloo.js';
import { initBackend, Rng } from '../../../trainer/runtime.js';
import { trainSFT } from '../../../trainer/sft.js';
import { Tokenizer } from '../../../trainer/tokenizer.js';

const letters = 'abcdef';
const rng = new Rng(5);
const word = (n: number): string => Array.from({ length: n }, () => letters[rng.int(6)]).join('');
const shareOfA: RewardScorer = {
  score: (items) =>
    items.map((i) =>
      i.response.length ? [...i.response].filter((c) => c === 'a').length / i.response.length : 0,
    ),
};
const sampling = { temperature: 1, topK: 0, maxNewTokens: 10, batchSize: 64 };
const prompts = Array.from({ length: 200 }, () => word(3));
const heldOut = Array.from({ length: 64 }, () => word(3));
let sft: Policy;
let reference: Policy;
let baseline: number;

beforeAll(async () => {
  await initBackend();
  // The SFT policy writes random strings of 2-6 letters: about 1/6 of them are "a".
  sft = createPolicy(Tokenizer.fromTexts([letters]), { nLayer: 2, nEmbd: 48, nHead: 4, contextLength: 24 });
  await trainSFT(
    sft,
    prompts.map((prompt) => ({ prompt, response: word(2 + rng.int(5)) })),
    [],
    {
      steps: 120,
      batchSize: 32,
      learningRate: 3e-3,
    },
  );
  reference = freezeCopy(sft);
  baseline = evaluatePolicy(sft, reference, shareOfA, heldOut, sampling).meanReward;
}, 120_000);

describe('RLOO', () => {
  it('raises the mean reward with a bounded KL', { timeout: 120_000 }, () => {
    const policy = trainableCopy(sft);
    const { history } = trainRLOO(policy, reference, shareOfA, prompts, {
      iterations: 40,
      promptsPerIteration: 8,
      k: 4,
      learningRate: 1e-3,
      sampling,
    });
    const after = evaluatePolicy(policy, reference, shareOfA, heldOut, sampling);
    expect(baseline).toBeLessThan(0.35);
    expect(after.meanReward).toBeGreaterThan(baseline + 0.3);
    // KL is the price of the reward: it must stay moderate, not run away.
    expect(after.kl).toBeGreaterThan(0);
    expect(after.kl).toBeLessThan(10);
    expect(Math.max(...history.map((h) => h.kl))).toBeLessThan(10);
    expect(winRate(policy, sft, shareOfA, heldOut, sampling).winRate).toBeGreaterThan(0.7);
  });
});

describe('the other algorithms move the reward the same way', () => {
  it('GRPO', { timeout: 120_000 }, () => {
    const policy = trainableCopy(sft);
    trainGRPO(policy, reference, shareOfA, prompts, {
      iterations: 20,
      promptsPerIteration: 4,
      k: 8,
      learningRate: 1e-3,
      sampling,
    });
    expect(evaluatePolicy(policy, reference, shareOfA, heldOut, sampling).meanReward).toBeGreaterThan(
      baseline + 0.15,
    );
  });

  it('PPO', { timeout: 120_000 }, () => {
    const policy = trainableCopy(sft);
    trainPPO(policy, reference, shareOfA, prompts, {
      iterations: 15,
      promptsPerIteration: 32,
      epochs: 2,
      learningRate: 1e-3,
      sampling,
    });
    expect(evaluatePolicy(policy, reference, shareOfA, heldOut, sampling).meanReward).toBeGreaterThan(
      baseline + 0.15,
    );
  });

  it('best-of-n', { timeout: 120_000 }, () => {
    const policy = trainableCopy(sft);
    trainBestOfN(policy, reference, shareOfA, prompts, {
      iterations: 6,
      promptsPerIteration: 32,
      k: 4,
      learningRate: 1e-3,
      sampling,
    });
    expect(evaluatePolicy(policy, reference, shareOfA, heldOut, sampling).meanReward).toBeGreaterThan(
      baseline + 0.15,
    );
  });

  it('DPO on preferences for the response with more "a"', { timeout: 120_000 }, () => {
    const policy = trainableCopy(sft);
    const comparisons = Array.from({ length: 300 }, () => {
      const [a, b] = [word(2 + rng.int(4)), word(2 + rng.int(4))];
      const [ra, rb] = shareOfA.score([
        { prompt: '', response: a },
        { prompt: '', response: b },
      ]);
      return {
        prompt: word(3),
        responseA: a,
        responseB: b,
        choice: (ra ?? 0) >= (rb ?? 0) ? ('A' as const) : ('B' as const),
      };
    });
    const { history } = trainDPO(policy, reference, comparisons, { epochs: 2, learningRate: 1e-3 });
    expect((history.at(-1)?.loss ?? 1) < (history[0]?.loss ?? 0)).toBe(true);
    expect(evaluatePolicy(policy, reference, shareOfA, heldOut, sampling).meanReward).toBeGreaterThan(
      baseline + 0.15,
    );
  });
});
