import * as tf from '@tensorflow/tfjs';
import { initBackend, Rng } from '../trainer/runtime.js';
import { Tokenizer } from '../trainer/tokenizer.js';
import { createPolicy, freezeCopy, trainableCopy } from '../trainer/policy.js';
import { trainSFT } from '../trainer/sft.js';
import { trainGRPO } from '../trainer/grpo.js';
import { trainPPO } from '../trainer/ppo.js';
import { trainDPO } from '../trainer/dpo.js';
import { trainBestOfN } from '../trainer/best-of-n.js';
import { evaluatePolicy, winRate } from '../trainer/evaluate.js';
await initBackend();
const rng = new Rng(5);
const letters = 'abcdef';
const word = (n: number) => Array.from({ length: n }, () => letters[rng.int(6)]).join('');
const tok = Tokenizer.fromTexts([letters]);
const cfg = { nLayer: 2, nEmbd: 48, nHead: 4, contextLength: 24 };
const demos = Array.from({ length: 300 }, () => ({ prompt: word(3), response: word(2 + rng.int(5)) }));
const base = createPolicy(tok, cfg);
trainSFT(base, demos, [], { steps: 150, batchSize: 32, learningRate: 3e-3 });
const ref = freezeCopy(base);
const scorer = { score: (items: { response: string }[]) => items.map((i) => i.response.length ? [...i.response].filter((c) => c === 'a').length / i.response.length : 0) };
const prompts = demos.map((d) => d.prompt);
const sampling = { temperature: 1, topK: 0, maxNewTokens: 12, batchSize: 64 };
const ev = (p: typeof base) => { const e = evaluatePolicy(p, ref, scorer, prompts.slice(0, 64), sampling); return { r: e.meanReward.toFixed(3), kl: e.kl.toFixed(2), len: e.meanLength.toFixed(1) }; };
console.log('base', ev(base), tf.memory().numTensors);
for (const [name, fn] of [
  ['grpo', (p: typeof base) => trainGRPO(p, ref, scorer, prompts, { iterations: 30, promptsPerIteration: 4, k: 8, learningRate: 1e-3, sampling })],
  ['ppo', (p: typeof base) => trainPPO(p, ref, scorer, prompts, { iterations: 30, promptsPerIteration: 32, learningRate: 1e-3, sampling })],
  ['bon', (p: typeof base) => trainBestOfN(p, ref, scorer, prompts, { iterations: 10, promptsPerIteration: 32, k: 4, learningRate: 1e-3, sampling })],
  ['dpo', (p: typeof base) => trainDPO(p, ref, Array.from({ length: 400 }, () => { const a = word(4), b = word(4); const fa = scorer.score([{ response: a }])[0]!, fb = scorer.score([{ response: b }])[0]!; return { prompt: word(3), responseA: a, responseB: b, choice: fa >= fb ? 'A' as const : 'B' as const }; }), { epochs: 2, learningRate: 1e-3 })],
] as const) {
  const p = trainableCopy(base);
  const t = performance.now();
  fn(p);
  console.log(name, (performance.now() - t).toFixed(0), 'ms', ev(p), tf.memory().numTensors);
  if (name === 'dpo') console.log('winrate vs base', winRate(p, base, scorer, prompts.slice(0, 64), sampling));
}
