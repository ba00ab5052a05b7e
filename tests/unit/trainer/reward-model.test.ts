// Reward models learn a synthetic preference ("shorter is better") to > 90% held-out accuracy;
// ties are excluded from the loss, comparisons of one prompt share a batch.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeCheckpoint, encodeCheckpoint } from '../../../trainer/checkpoint.js';
import { createPolicy } from '../../../trainer/policy.js';
import {
  batchesByPrompt,
  toPreferencePairs,
  LLAMA2_MARGINS_LARGE,
  type ComparisonExample,
} from '../../../trainer/preferences.js';
import {
  evaluateRewardModel,
  fitRewardModel,
  RewardModel,
  rewardModelValidationLoss,
  trainRewardModel,
} from '../../../trainer/reward-model.js';
import { initBackend, Rng } from '../../../trainer/runtime.js';
import { packBatch, sequenceLogProbs } from '../../../trainer/sequences.js';
import { TextRewardModel } from '../../../trainer/text-reward-model.js';
import { Tokenizer } from '../../../trainer/tokenizer.js';

const letters = 'abcdef';

/** Two responses of different lengths per prompt; the shorter wins, strength from the gap. */
function shorterIsBetter(n: number, seed: number): ComparisonExample[] {
  const rng = new Rng(seed);
  const word = (k: number): string => Array.from({ length: k }, () => letters[rng.int(6)]).join('');
  return Array.from({ length: n }, () => {
    const a = 1 + rng.int(8);
    let b = 1 + rng.int(8);
    while (b === a) b = 1 + rng.int(8);
    return {
      prompt: word(3),
      responseA: word(a),
      responseB: word(b),
      choice: a < b ? 'A' : 'B',
      strength: Math.max(0, 3 - (Math.abs(a - b) - 1)), // bigger gap → stronger (index 0)
    };
  });
}

beforeAll(async () => {
  await initBackend();
});

describe('preference handling', () => {
  it('turns choices into directed pairs with Llama 2 margins and skips ties', () => {
    const { pairs, bothBad, ties } = toPreferencePairs(
      [
        { prompt: 'p', responseA: 'x', responseB: 'y', choice: 'B', strength: 0 },
        { prompt: 'p', responseA: 'x', responseB: 'y', choice: 'A', strength: 3 },
        { prompt: 'p', responseA: 'x', responseB: 'y', choice: 'TIE' },
        { prompt: 'p', responseA: 'x', responseB: 'y', choice: 'BOTH_BAD' },
      ],
      LLAMA2_MARGINS_LARGE,
    );
    expect(pairs.map((p) => [p.chosen, p.margin])).toEqual([
      ['y', 3],
      ['x', 0],
    ]);
    expect(ties).toBe(1);
    expect(bothBad).toHaveLength(1);
  });

  it('keeps all comparisons of one prompt in the same batch', () => {
    const items = Array.from({ length: 30 }, (_, i) => ({ group: `p${i % 7}`, i }));
    const batches = batchesByPrompt(items, 8, new Rng(1));
    expect(batches.flat()).toHaveLength(30);
    for (let g = 0; g < 7; g++)
      expect(batches.filter((b) => b.some((x) => x.group === `p${g}`))).toHaveLength(1);
  });
});

describe('reward models learn "shorter is better"', () => {
  it('GPT reward model: > 90% held-out accuracy, reported by strength', { timeout: 180_000 }, () => {
    const tokenizer = Tokenizer.fromTexts([letters]);
    const rm = new RewardModel(
      { nLayer: 2, nEmbd: 32, nHead: 4, contextLength: 16, vocabSize: tokenizer.vocabSize, seed: 3 },
      tokenizer,
    );
    trainRewardModel(rm, shorterIsBetter(1000, 1), { batchSize: 32, learningRate: 1e-3 });
    const result = evaluateRewardModel(rm, shorterIsBetter(200, 2));
    expect(result.accuracy).toBeGreaterThan(0.9);
    expect(Object.keys(result.byStrength).sort()).toEqual(['0', '1', '2', '3']);
    expect(result.pairs).toBe(200);
  });

  it('text reward model: > 90% held-out accuracy', { timeout: 60_000 }, () => {
    const rm = new TextRewardModel({ buckets: 1 << 12, hidden: 8, charNgram: 0 });
    rm.train(shorterIsBetter(600, 3));
    expect(evaluateRewardModel(rm, shorterIsBetter(200, 4)).accuracy).toBeGreaterThan(0.9);
  });
});

describe('the likelihood term', () => {
  const tokenizer = Tokenizer.fromTexts([letters]);
  const config = { nLayer: 1, nEmbd: 16, nHead: 2, contextLength: 32 };
  const items = [
    { prompt: 'abc', response: 'cba' },
    { prompt: 'fe', response: 'The answer is ef.' },
    { prompt: 'd', response: '' },
  ];

  it('is the response log-likelihood under the policy a reward model starts from', () => {
    const policy = createPolicy(tokenizer, config);
    const rm = RewardModel.fromPolicy(policy);
    expect(rm.likelihoodWeight.dataSync()[0]).toBe(1);
    rm.head.params.get('w')!.assign(tf.zeros(rm.head.params.get('w')!.shape));
    const pairs = items.map((i) => ({
      prompt: tokenizer.encodePrompt(i.prompt),
      response: tokenizer.encodeResponse(i.response),
    }));
    const logp = sequenceLogProbs(policy.model, packBatch(pairs, config.contextLength));
    const expected = [...logp.dataSync()];
    logp.dispose();
    const scores = rm.score(items);
    scores.forEach((score, i) => expect(score).toBeCloseTo(expected[i]!, 4));
    // With its weight at zero only the head is left (its bias here).
    rm.head.params.get('b')!.assign(tf.tensor1d([0.25]));
    rm.likelihoodWeight.assign(tf.scalar(0));
    for (const score of rm.score(items)) expect(score).toBeCloseTo(0.25, 6);
  });

  it('learns its weight, keeps its policy frozen, and checkpoints without it load with weight 0', () => {
    const policy = createPolicy(tokenizer, config);
    const rm = RewardModel.fromPolicy(policy);
    trainRewardModel(rm, shorterIsBetter(64, 7), { batchSize: 16 });
    expect(rm.likelihoodWeight.dataSync()[0]).not.toBe(1);
    for (const [name, v] of rm.prior.params) expect(v.dataSync()).toEqual(policy.model.p(name).dataSync());
    expect(rm.backbone.p('wte').dataSync()).not.toEqual(policy.model.p('wte').dataSync());
    expect(RewardModel.decode(rm.encode()).score(items)).toEqual(rm.score(items));

    const { header, tensors } = decodeCheckpoint(rm.encode());
    tensors.delete('likelihood/weight');
    for (const name of [...tensors.keys()]) if (name.startsWith('prior/')) tensors.delete(name);
    const { format: _format, tensors: _specs, ...fields } = header;
    const old = RewardModel.decode(encodeCheckpoint(fields, tensors));
    expect(old.likelihoodWeight.dataSync()[0]).toBe(0);
    rm.likelihoodWeight.assign(tf.scalar(0));
    expect(old.score(items)).toEqual(rm.score(items));
  });
});

describe('reward-model fitting with early stopping', () => {
  it('keeps the epoch with the lowest held-out loss and stops after `patience` worse ones', async () => {
    const tokenizer = Tokenizer.fromTexts([letters]);
    const rm = new RewardModel(
      { nLayer: 1, nEmbd: 16, nHead: 2, contextLength: 16, vocabSize: tokenizer.vocabSize, seed: 5 },
      tokenizer,
    );
    // Few comparisons, a quarter of them flipped: the model soon fits the noise.
    const noisy = shorterIsBetter(60, 7).map((e, i) =>
      i % 4 === 0 ? { ...e, choice: e.choice === 'A' ? ('B' as const) : ('A' as const) } : e,
    );
    const validation = shorterIsBetter(60, 8);
    const seen: number[] = [];
    const fit = await fitRewardModel(
      rm,
      noisy,
      validation,
      { maxEpochs: 12, patience: 2, config: { batchSize: 8, learningRate: 3e-3 } },
      (epoch) => {
        seen.push(epoch);
      },
    );
    expect(seen).toEqual(fit.history.map((h) => h.epoch));
    const losses = fit.history.map((h) => h.validationLoss!);
    const best = Math.min(...losses);
    expect(fit.bestEpoch).toBe(losses.indexOf(best) + 1);
    expect(fit.epochs === 12 || fit.epochs - fit.bestEpoch === 2).toBe(true);
    // The weights in the model are the kept epoch's, not the last one's.
    expect(rewardModelValidationLoss(rm, validation, { batchSize: 8 })).toBeCloseTo(best, 4);
  });

  it('trains every epoch when there is nothing held out', async () => {
    const tokenizer = Tokenizer.fromTexts([letters]);
    const rm = new RewardModel(
      { nLayer: 1, nEmbd: 16, nHead: 2, contextLength: 16, vocabSize: tokenizer.vocabSize, seed: 5 },
      tokenizer,
    );
    const fit = await fitRewardModel(rm, shorterIsBetter(20, 9), [], { maxEpochs: 3, patience: 1 });
    expect(fit.epochs).toBe(3);
    expect(fit.bestEpoch).toBe(3);
    expect(fit.history.every((h) => h.validationLoss === null)).toBe(true);
  });
});
