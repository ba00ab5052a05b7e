// Samples responses from the policy with temperature, top-k, a length cap and a stop on `<end>`,
// through the KV cache so each new token costs one position, not a re-run of the whole prefix.
import * as tf from '@tensorflow/tfjs';
import type { GPT, KVCache } from './model.js';
import { Rng } from './runtime.js';
import { END, PAD } from './tokenizer.js';

export interface SamplingConfig {
  temperature: number;
  topK: number;
  maxNewTokens: number;
  /** Rows decoded together; bounds memory of the cache. */
  batchSize: number;
  /** Nucleus sampling: the smallest set of tokens whose probability reaches topP (1 or unset = off). */
  topP?: number;
}

export const DEFAULT_SAMPLING: SamplingConfig = {
  temperature: 1.0, // RL needs the policy's own distribution; lower it only for demos
  topK: 0, // 0 = no truncation; truncation would make log π of the samples wrong for RL
  maxNewTokens: 64, // responses here are short; the context caps it anyway
  batchSize: 64, // rows per decoding batch
};

/** Draws a token id from logits with temperature, top-k and top-p (nucleus); temperature 0 is greedy. */
export function sampleToken(
  logits: ArrayLike<number>,
  temperature: number,
  topK: number,
  rng: Rng,
  topP = 1,
): number {
  const n = logits.length;
  let best = 0;
  for (let i = 1; i < n; i++) if ((logits[i] ?? -Infinity) > (logits[best] ?? -Infinity)) best = i;
  if (temperature <= 0) return best;
  let threshold = -Infinity;
  if (topK > 0 && topK < n) threshold = [...Array.from(logits)].sort((a, b) => b - a)[topK - 1] ?? -Infinity;
  const max = logits[best] ?? 0;
  const weights = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const l = logits[i] ?? -Infinity;
    const w = l >= threshold ? Math.exp((l - max) / temperature) : 0;
    weights[i] = w;
    total += w;
  }
  if (topP < 1) {
    // Keep the most probable tokens until their mass reaches topP; the rest get no weight.
    const order = Array.from(weights.keys()).sort((a, b) => (weights[b] ?? 0) - (weights[a] ?? 0));
    let mass = 0;
    let kept = 0;
    for (const i of order) {
      if (mass >= topP * total && kept > 0) weights[i] = 0;
      else {
        mass += weights[i] ?? 0;
        kept += 1;
      }
    }
    total = mass;
  }
  let u = rng.next() * total;
  for (let i = 0; i < n; i++) {
    u -= weights[i] ?? 0;
    if (u <= 0 && (weights[i] ?? 0) > 0) return i;
  }
  return best;
}

/**
 * Samples one response per prompt (repeat a prompt for several samples). Each response is its
 * token ids, ending with `<end>` unless the length cap or the context stopped it first.
 */
export function generate(model: GPT, prompts: number[][], config: SamplingConfig, rng: Rng): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < prompts.length; i += config.batchSize) {
    out.push(...generateBatch(model, prompts.slice(i, i + config.batchSize), config, rng));
  }
  return out;
}

function generateBatch(model: GPT, prompts: number[][], config: SamplingConfig, rng: Rng): number[][] {
  const C = model.config.contextLength;
  // Keep the prompt's newest tokens and leave room for at least one response token.
  const kept = prompts.map((p) => p.slice(-(C - 1)));
  const B = kept.length;
  const L = Math.max(...kept.map((p) => p.length));
  const maxNew = Math.min(config.maxNewTokens, C - L);
  // Left padding lines the last prompt tokens up; positions restart at 0 after the padding.
  const ids = new Int32Array(B * L).fill(PAD);
  const pos = new Int32Array(B * L);
  const bias = new Float32Array(B * L);
  kept.forEach((p, b) => {
    const pad = L - p.length;
    for (let t = 0; t < L; t++) {
      if (t < pad) bias[b * L + t] = -1e9;
      else {
        ids[b * L + t] = p[t - pad] ?? PAD;
        pos[b * L + t] = t - pad;
      }
    }
  });
  const responses: number[][] = kept.map(() => []);
  const done = new Array<boolean>(B).fill(maxNew <= 0);
  if (maxNew <= 0) return responses;
  const inputs = [
    tf.tensor2d(ids, [B, L], 'int32'),
    tf.tensor2d(pos, [B, L], 'int32'),
    tf.tensor4d(bias, [B, 1, 1, L]),
  ];
  let { logits, cache } = model.prefill(
    inputs[0] as tf.Tensor2D,
    inputs[1] as tf.Tensor2D,
    inputs[2] as tf.Tensor4D,
  );
  tf.dispose(inputs);
  for (let step = 0; step < maxNew; step++) {
    const data = logits.dataSync();
    logits.dispose();
    const V = data.length / B;
    const next = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      if (done[b]) {
        next[b] = PAD;
        continue;
      }
      const token = sampleToken(
        data.subarray(b * V, (b + 1) * V),
        config.temperature,
        config.topK,
        rng,
        config.topP ?? 1,
      );
      responses[b]?.push(token);
      next[b] = token;
      if (token === END) done[b] = true;
    }
    if (done.every(Boolean) || step === maxNew - 1) break;
    const tokens = tf.tensor1d(next, 'int32');
    const positions = tf.tensor1d(
      kept.map((p) => p.length + step),
      'int32',
    );
    const result = model.step(tokens, positions, cache);
    disposeCache(cache);
    tf.dispose([tokens, positions]);
    logits = result.logits;
    cache = result.cache;
  }
  if (!logits.isDisposed) logits.dispose();
  disposeCache(cache);
  return responses;
}

function disposeCache(cache: KVCache): void {
  tf.dispose([...cache.keys, ...cache.values, cache.keyBias]);
}
