// A round's policy update: every algorithm of the round's map steps a policy, and a round's steps
// continue one run (one prompt cycle, one random stream), the same run the CLI's train* makes.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROUND_DEFAULTS } from '../../../core/schemas/round-defaults.js';
import type { Algorithm } from '../../../core/schemas/rounds.js';
import { ROUND_ALGORITHMS, roundAlgorithm, type RoundTraining } from '../../../trainer/jobs/algorithms.js';
import { createPolicy, freezeCopy, trainableCopy, type Policy } from '../../../trainer/policy.js';
import { trainRLOO } from '../../../trainer/rloo.js';
import { initBackend } from '../../../trainer/runtime.js';
import { Tokenizer } from '../../../trainer/tokenizer.js';

const countA = {
  score: (items: { response: string }[]) => items.map((i) => [...i.response].filter((c) => c === 'a').length),
};
const prompts = ['a', 'bc', 'def', 'fa', 'e', 'cab', 'dd', 'f'];
const examples = prompts.map((prompt, i) => ({
  prompt,
  responseA: 'a'.repeat(1 + (i % 3)),
  responseB: 'bd',
  choice: 'A' as const,
}));
const config = { ...ROUND_DEFAULTS, iterations: 3, promptsPerIteration: 3, samplesPerPrompt: 2, seed: 11 };
let base: Policy;

beforeAll(async () => {
  await initBackend();
  base = createPolicy(Tokenizer.fromTexts(['abcdef']), { nLayer: 1, nEmbd: 16, nHead: 2, contextLength: 16 });
});

function training(policy: Policy): RoundTraining {
  return { policy, reference: freezeCopy(base), scorer: countA, prompts, examples, config };
}

function weights(policy: Policy): number[] {
  return [...policy.model.params.values()].flatMap((v) => Array.from(v.dataSync()));
}

describe('a round’s algorithms', () => {
  it.each(Object.keys(ROUND_ALGORITHMS) as Algorithm[])(
    '%s takes its steps and moves the policy',
    { timeout: 60_000 },
    (name) => {
      const policy = trainableCopy(base);
      const before = weights(policy);
      const algorithm = ROUND_ALGORITHMS[name];
      const { step, setBeta } = algorithm.start(training(policy));
      expect(algorithm.iterations(config)).toBe(3);
      for (let it = 0; it < algorithm.iterations(config); it++) {
        // The adaptive KL controller's β between steps, where the algorithm has a KL penalty.
        if (it > 0) setBeta?.(0.1);
        const stats = step();
        for (const value of [stats.meanScore, stats.kl, stats.meanLength, stats.loss])
          expect(Number.isFinite(value), `${name} step ${it}`).toBe(true);
      }
      expect(weights(policy)).not.toEqual(before);
      policy.model.dispose();
    },
  );

  it('DPO caps a round at 20 epochs; an unknown name trains with RLOO', () => {
    expect(ROUND_ALGORITHMS.DPO.iterations({ ...config, iterations: 150 })).toBe(20);
    expect(roundAlgorithm('SOMETHING')).toBe(ROUND_ALGORITHMS.RLOO);
  });

  it('continue one run: three round steps are trainRLOO’s three iterations', { timeout: 60_000 }, () => {
    const stepped = trainableCopy(base);
    const { step } = ROUND_ALGORITHMS.RLOO.start(training(stepped));
    const fromRound = [step(), step(), step()];
    const trained = trainableCopy(base);
    const { history } = trainRLOO(trained, freezeCopy(base), countA, prompts, {
      iterations: 3,
      promptsPerIteration: config.promptsPerIteration,
      k: config.samplesPerPrompt,
      beta: config.beta,
      learningRate: config.learningRate,
      seed: config.seed,
    });
    expect(fromRound).toEqual(history);
    expect(weights(stepped)).toEqual(weights(trained));
    tf.dispose([...stepped.model.params.values(), ...trained.model.params.values()]);
  });
});
