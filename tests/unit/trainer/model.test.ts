// The GPT, its response masking, the KV cache against a full forward pass, tensor hygiene of the
// training loops, and checkpoints (Buffer, and PostgreSQL when TEST_DATABASE_URL is set).
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeCheckpoint, readCheckpointHeader, CHECKPOINT_FORMAT } from '../../../trainer/checkpoint.js';
import { trainDPO } from '../../../trainer/dpo.js';
import { trainGRPO } from '../../../trainer/grpo.js';
import { trainPPO } from '../../../trainer/ppo.js';
import { createPolicy, decodePolicy, encodePolicy, freezeCopy } from '../../../trainer/policy.js';
import { RewardModel, trainRewardModel } from '../../../trainer/reward-model.js';
import { trainRLOO } from '../../../trainer/rloo.js';
import { initBackend, Rng } from '../../../trainer/runtime.js';
import { generate } from '../../../trainer/sampling.js';
import { packBatch, sequenceLogProbs } from '../../../trainer/sequences.js';
import { trainSFT } from '../../../trainer/sft.js';
import { TextRewardModel } from '../../../trainer/text-reward-model.js';
import { Tokenizer, END } from '../../../trainer/tokenizer.js';

const tokenizer = Tokenizer.fromTexts(['abcdef']);
const tiny = { nLayer: 2, nEmbd: 32, nHead: 4, contextLength: 16 };
const sampling = { temperature: 1, topK: 0, maxNewTokens: 6, batchSize: 64 };
const countA = {
  score: (items: { response: string }[]) => items.map((i) => [...i.response].filter((c) => c === 'a').length),
};

function seqLogProbs(
  policy: ReturnType<typeof createPolicy>,
  pairs: { prompt: number[]; response: number[] }[],
) {
  const t = sequenceLogProbs(policy.model, packBatch(pairs, policy.model.config.contextLength));
  const out = Array.from(t.dataSync());
  t.dispose();
  return out;
}

beforeAll(async () => {
  await initBackend();
});

describe('tokenizer', () => {
  it('round-trips text and stops decoding at <end>', () => {
    const ids = tokenizer.encodeResponse('cab');
    expect(ids.at(-1)).toBe(END);
    expect(tokenizer.decode([...ids, ...tokenizer.encodeText('zzz')])).toBe('cab');
    expect(Tokenizer.fromJson(tokenizer.toJson()).encodeText('fade')).toEqual(tokenizer.encodeText('fade'));
  });
});

describe('response log-probs', () => {
  it('mask the prompt and the padding', () => {
    const b = packBatch(
      [
        { prompt: [2, 5, 3], response: [6, 4] },
        { prompt: [2, 3], response: [7] },
      ],
      16,
    );
    expect(b.length).toBe(4);
    expect(Array.from(b.input.slice(0, 4))).toEqual([2, 5, 3, 6]);
    expect(Array.from(b.target.slice(0, 4))).toEqual([5, 3, 6, 4]);
    expect(Array.from(b.mask)).toEqual([0, 0, 1, 1, 0, 1, 0, 0]);
  });

  it('sum only response tokens and do not depend on the other rows of the batch', () => {
    const policy = createPolicy(tokenizer, tiny);
    const a = { prompt: tokenizer.encodePrompt('abc'), response: tokenizer.encodeResponse('de') };
    const long = { prompt: tokenizer.encodePrompt('ffffff'), response: tokenizer.encodeResponse('abcdef') };
    const alone = seqLogProbs(policy, [a])[0] ?? NaN;
    const padded = seqLogProbs(policy, [a, long])[0] ?? NaN;
    expect(padded).toBeCloseTo(alone, 4);
    // By hand: Σ over the 3 response targets (d, e, <end>) of log softmax at the previous position.
    const manual = tf.tidy(() => {
      const ids = [...a.prompt, ...a.response];
      const logits = policy.model.logits(
        policy.model.hidden(tf.tensor2d([ids.slice(0, -1)], undefined, 'int32')),
      );
      const lsm = tf.logSoftmax(logits).arraySync() as number[][];
      let s = 0;
      for (let t = a.prompt.length - 1; t < ids.length - 1; t++) s += lsm[t]?.[ids[t + 1] ?? 0] ?? 0;
      return s;
    });
    expect(alone).toBeCloseTo(manual, 4);
    policy.model.dispose();
  });
});

describe('KV cache', () => {
  it('gives the same next-token logits as a full forward pass, with left padding', () => {
    const policy = createPolicy(tokenizer, tiny);
    const prompts = [tokenizer.encodePrompt('ab'), tokenizer.encodePrompt('cdef')];
    const responses = generate(policy.model, prompts, { ...sampling, temperature: 0 }, new Rng(1));
    // Greedy decoding through the cache must equal greedy decoding by re-running the whole prefix.
    prompts.forEach((prompt, i) => {
      const seq = [...prompt];
      for (let step = 0; step < (responses[i]?.length ?? 0); step++) {
        const next = tf.tidy(() => {
          const logits = policy.model.logits(policy.model.hidden(tf.tensor2d([seq], undefined, 'int32')));
          return tf.argMax(logits, 1).dataSync()[seq.length - 1] ?? -1;
        });
        expect(responses[i]?.[step]).toBe(next);
        seq.push(next);
        if (next === END) break;
      }
    });
    policy.model.dispose();
  });
});

describe('training loops', () => {
  it('do not leak tensors (tf.memory().numTensors flat across steps)', { timeout: 120_000 }, async () => {
    const rng = new Rng(3);
    const word = (): string => Array.from({ length: 1 + rng.int(4) }, () => 'abcdef'[rng.int(6)]).join('');
    const policy = createPolicy(tokenizer, tiny);
    const reference = freezeCopy(policy);
    const prompts = Array.from({ length: 8 }, word);
    const comparisons = prompts.map((prompt) => ({
      prompt,
      responseA: word(),
      responseB: word(),
      choice: 'A' as const,
    }));
    const rm = RewardModel.fromPolicy(policy);
    // One warm-up call of each creates the optimizer's slots; after that nothing may grow.
    const counts: number[] = [];
    const sft = await trainSFT(
      policy,
      prompts.map((p) => ({ prompt: p, response: p })),
      [],
      { steps: 1, batchSize: 4 },
    );
    const rloo = trainRLOO(policy, reference, countA, prompts, {
      iterations: 1,
      promptsPerIteration: 2,
      k: 2,
      sampling,
    });
    const grpo = trainGRPO(policy, reference, countA, prompts, {
      iterations: 1,
      promptsPerIteration: 2,
      k: 2,
      sampling,
    });
    const ppo = trainPPO(policy, reference, countA, prompts, {
      iterations: 1,
      promptsPerIteration: 2,
      epochs: 1,
      sampling,
    });
    const rmRun = trainRewardModel(rm, comparisons, { batchSize: 4 });
    const dpo = trainDPO(policy, reference, comparisons, { batchSize: 4 });
    for (let round = 0; round < 3; round++) {
      await trainSFT(
        policy,
        prompts.map((p) => ({ prompt: p, response: p })),
        prompts.map((p) => ({ prompt: p, response: p })),
        { steps: 2, batchSize: 4, evalEvery: 1 },
        { optimizer: sft.optimizer },
      );
      trainRLOO(
        policy,
        reference,
        countA,
        prompts,
        { iterations: 1, promptsPerIteration: 2, k: 2, epochs: 2, sampling },
        { optimizer: rloo.optimizer },
      );
      trainGRPO(
        policy,
        reference,
        countA,
        prompts,
        { iterations: 1, promptsPerIteration: 2, k: 2, sampling },
        { optimizer: grpo.optimizer },
      );
      trainPPO(
        policy,
        reference,
        countA,
        prompts,
        { iterations: 1, promptsPerIteration: 2, epochs: 1, sampling },
        { optimizer: ppo.optimizer, valueHead: ppo.valueHead },
      );
      trainRewardModel(
        rm,
        comparisons,
        { batchSize: 4, bothBadCoef: 0.1, centerCoef: 0.01 },
        { optimizer: rmRun.optimizer },
      );
      trainDPO(policy, reference, comparisons, { batchSize: 4 }, { optimizer: dpo.optimizer });
      counts.push(tf.memory().numTensors);
    }
    expect(new Set(counts).size).toBe(1);
  });
});

describe('checkpoints', () => {
  it('save → load gives identical log-probs, optimizer state and step', async () => {
    const policy = createPolicy(tokenizer, tiny);
    const { optimizer } = await trainSFT(policy, [{ prompt: 'ab', response: 'ba' }], [], {
      steps: 2,
      batchSize: 1,
    });
    const buf = encodePolicy(policy, { optimizer, step: 2, meta: { bestValLoss: 1.5 } });
    const header = readCheckpointHeader(buf);
    expect(header.format).toBe(CHECKPOINT_FORMAT);
    expect(header.step).toBe(2);
    const loaded = decodePolicy(buf);
    const pairs = [{ prompt: tokenizer.encodePrompt('abc'), response: tokenizer.encodeResponse('fed') }];
    expect(seqLogProbs(loaded.policy, pairs)).toEqual(seqLogProbs(policy, pairs));
    expect(loaded.optimizer.step).toBe(optimizer.step);
    const m = loaded.optimizer.m.get('wte');
    expect(Array.from(m?.dataSync() ?? [])).toEqual(Array.from(optimizer.m.get('wte')?.dataSync() ?? [1]));
    // Same seed → same samples.
    const prompts = [tokenizer.encodePrompt('a')];
    expect(generate(loaded.policy.model, prompts, sampling, new Rng(9))).toEqual(
      generate(policy.model, prompts, sampling, new Rng(9)),
    );
    // Encoding the loaded model reproduces the same bytes.
    expect(
      encodePolicy(loaded.policy, {
        optimizer: loaded.optimizer,
        step: 2,
        meta: { bestValLoss: 1.5 },
      }).equals(buf),
    ).toBe(true);
  });

  it('round-trips both reward models', () => {
    const rm = new RewardModel({ ...tiny, vocabSize: tokenizer.vocabSize, seed: 4 }, tokenizer);
    const items = [{ prompt: 'ab', response: 'cd' }];
    expect(RewardModel.decode(rm.encode()).score(items)).toEqual(rm.score(items));
    const text = new TextRewardModel({ buckets: 1 << 10, hidden: 4 });
    text.train([{ prompt: 'p', responseA: 'short', responseB: 'much longer answer', choice: 'A' }]);
    expect(TextRewardModel.decode(text.encode()).score(items)).toEqual(text.score(items));
    expect(decodeCheckpoint(text.encode()).header.kind).toBe('text-reward-model');
  });

  // On a fresh migrated database of this file's own, on the server the test run uses.
  it('round-trips through the ModelArtifact table', async () => {
    const { createTestDatabase } = await import('../../support/database.js');
    const { createPrisma } = await import('../../../core/db/client.js');
    const { saveArtifact, loadArtifact } = await import('../../../trainer/checkpoint.js');
    const database = await createTestDatabase();
    const prisma = createPrisma(database.url);
    try {
      const policy = createPolicy(tokenizer, tiny);
      const buf = encodePolicy(policy, { step: 7 });
      const id = await saveArtifact(prisma, buf);
      const row = await prisma.modelArtifact.findUniqueOrThrow({ where: { id } });
      expect(row).toMatchObject({ kind: 'policy', format: CHECKPOINT_FORMAT, step: 7, byteSize: buf.length });
      const back = await loadArtifact(prisma, id);
      expect(back.equals(buf)).toBe(true);
      const pairs = [{ prompt: tokenizer.encodePrompt('abc'), response: tokenizer.encodeResponse('fed') }];
      expect(seqLogProbs(decodePolicy(back).policy, pairs)).toEqual(seqLogProbs(policy, pairs));
    } finally {
      await prisma.$disconnect();
      await database.drop();
    }
  });
});
