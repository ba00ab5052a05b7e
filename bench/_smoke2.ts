import * as tf from '@tensorflow/tfjs';
import { initBackend, Rng } from '../trainer/runtime.js';
import { Tokenizer } from '../trainer/tokenizer.js';
import { createPolicy, freezeCopy } from '../trainer/policy.js';
import { trainSFT } from '../trainer/sft.js';
import { RewardModel, trainRewardModel, evaluateRewardModel } from '../trainer/reward-model.js';
import { trainRLOO } from '../trainer/rloo.js';
import type { ComparisonExample } from '../trainer/preferences.js';
await initBackend();
const rng = new Rng(5);
const letters = 'abcdef';
const word = (n: number) => Array.from({ length: n }, () => letters[rng.int(6)]).join('');
const tok = Tokenizer.fromTexts([letters]);
const cfg = { nLayer: 2, nEmbd: 48, nHead: 4, contextLength: 24 };
// RM: shorter is better
const comps = (n: number): ComparisonExample[] => Array.from({ length: n }, () => {
  const p = word(3); let a = 1 + rng.int(8), b = 1 + rng.int(8); while (b === a) b = 1 + rng.int(8);
  return { prompt: p, responseA: word(a), responseB: word(b), choice: a < b ? 'A' : 'B', strength: Math.min(3, Math.abs(a - b) - 1) };
});
let t = performance.now();
const rm = new RewardModel({ ...cfg, vocabSize: tok.vocabSize, seed: 3 }, tok);
const res = trainRewardModel(rm, comps(1500), { epochs: 1, batchSize: 32, learningRate: 1e-3 });
console.log('rm train ms', performance.now() - t, res.steps, res.losses.slice(-5));
console.log(evaluateRewardModel(rm, comps(200)));
// SFT + RLOO
const demos = Array.from({ length: 300 }, () => ({ prompt: word(3), response: word(2 + rng.int(5)) }));
const policy = createPolicy(tok, cfg);
t = performance.now();
trainSFT(policy, demos, [], { steps: 150, batchSize: 32, learningRate: 3e-3 });
console.log('sft ms', performance.now() - t);
const ref = freezeCopy(policy);
const scorer = { score: (items: { response: string }[]) => items.map((i) => i.response.length ? [...i.response].filter((c) => c === 'a').length / i.response.length : 0) };
t = performance.now();
const n0 = tf.memory().numTensors;
const out = trainRLOO(policy, ref, scorer, demos.map((d) => d.prompt), { iterations: 40, promptsPerIteration: 8, k: 4, learningRate: 1e-3, sampling: { temperature: 1, topK: 0, maxNewTokens: 12, batchSize: 64 } }, { onIteration: (s) => { if (s.iteration % 5 === 0) console.log(s, tf.memory().numTensors); } });
console.log('rloo ms', performance.now() - t, out.history.at(-1), n0, tf.memory().numTensors);
