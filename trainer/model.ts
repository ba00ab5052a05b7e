// The small GPT shared by the policy, the reward model and PPO's value head: pre-LayerNorm
// transformer, tied embeddings, one-hot × matrix lookups (wasm has no gather gradient), KV cache.
import * as tf from '@tensorflow/tfjs';
import { addPositions, gelu, layerNorm } from './fast-ops.js';
import { bmm, mm, swapLast } from './matmul.js';
import { Rng } from './runtime.js';

export interface GPTConfig {
  /** Tokens in the vocabulary (the tokenizer decides). */
  vocabSize: number;
  /** Longest sequence (prompt + response) the model attends over. */
  contextLength: number;
  /** Transformer blocks. */
  nLayer: number;
  /** Attention heads per block; must divide nEmbd. */
  nHead: number;
  /** Width of the residual stream. */
  nEmbd: number;
  /** Seed of the weight initialization, so two runs start from the same model. */
  seed: number;
}

/** Default size: about 0.8M parameters, which trains in minutes on two cores. */
export const DEFAULT_GPT: Omit<GPTConfig, 'vocabSize'> = {
  contextLength: 128, // prompts and responses of this project are short; attention cost is O(T²)
  nLayer: 4, // nanoGPT's "baby" depth; deeper trains slower than it helps at this size
  nHead: 4, // head width 32
  nEmbd: 128, // ~0.8M parameters in the blocks
  seed: 1337, // nanoGPT's seed
};

/** Keys and values of every layer for the tokens seen so far; sampling appends to it. */
export interface KVCache {
  keys: tf.Tensor4D[]; // [B, H, T, headDim] per layer
  values: tf.Tensor4D[];
  /** Additive attention bias over cached keys: 0 for real tokens, -1e9 for left padding. */
  keyBias: tf.Tensor4D; // [B, 1, 1, T]
}

const NEG = -1e9;

export class GPT {
  readonly config: GPTConfig;
  /** Parameters in a fixed order; the order is the checkpoint's order. */
  readonly params = new Map<string, tf.Variable>();

  constructor(config: GPTConfig, options: { trainable?: boolean; prefix?: string } = {}) {
    if (config.nEmbd % config.nHead !== 0) throw new Error('nHead must divide nEmbd');
    this.config = { ...config };
    const { vocabSize: V, contextLength: T, nLayer: L, nEmbd: D } = config;
    const rng = new Rng(config.seed);
    const trainable = options.trainable ?? true;
    const prefix = options.prefix ?? 'gpt';
    const add = (name: string, shape: number[], init: 'normal' | 'zeros' | 'ones', std = 0.02): void => {
      const size = shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(size);
      if (init === 'ones') data.fill(1);
      if (init === 'normal') for (let i = 0; i < size; i++) data[i] = rng.normal() * std;
      this.params.set(name, tf.variable(tf.tensor(data, shape), trainable, `${prefix}/${name}/${uid()}`));
    };
    add('wte', [V, D], 'normal');
    add('wpe', [T, D], 'normal', 0.01);
    // GPT-2 scales the residual projections by 1/sqrt(2L) so the stream's variance stays put.
    const residStd = 0.02 / Math.sqrt(2 * L);
    for (let l = 0; l < L; l++) {
      add(`h${l}.ln1.g`, [D], 'ones');
      add(`h${l}.ln1.b`, [D], 'zeros');
      // Bias-free projections (nanoGPT's bias=False: a bit better and faster).
      add(`h${l}.attn.wq`, [D, D], 'normal');
      add(`h${l}.attn.wk`, [D, D], 'normal');
      add(`h${l}.attn.wv`, [D, D], 'normal');
      add(`h${l}.attn.wo`, [D, D], 'normal', residStd);
      add(`h${l}.ln2.g`, [D], 'ones');
      add(`h${l}.ln2.b`, [D], 'zeros');
      add(`h${l}.mlp.w1`, [D, 4 * D], 'normal');
      add(`h${l}.mlp.w2`, [4 * D, D], 'normal', residStd);
    }
    add('lnf.g', [D], 'ones');
    add('lnf.b', [D], 'zeros');
  }

  get parameterCount(): number {
    let n = 0;
    for (const v of this.params.values()) n += v.size;
    return n;
  }

  p(name: string): tf.Variable {
    const v = this.params.get(name);
    if (!v) throw new Error(`no parameter ${name}`);
    return v;
  }

  /** Copies every parameter from another model of the same config (e.g. SFT → reference). */
  copyFrom(other: GPT): void {
    for (const [name, v] of this.params) v.assign(other.p(name));
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
  }

  /**
   * Final hidden states for token ids [B, T] (right padding is harmless under the causal mask).
   * positions/keyBias serve left-padded batches; by default positions are 0..T-1.
   */
  hidden(ids: tf.Tensor2D, positions?: tf.Tensor2D, keyBias?: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => {
      const [B, T] = ids.shape;
      let x = this.embed(ids, positions); // [B*T, D]
      const causal = causalBias(T);
      const bias = keyBias ? tf.add(causal, keyBias) : causal;
      for (let l = 0; l < this.config.nLayer; l++) {
        const h = this.layerNorm(x, `h${l}.ln1`);
        const { q, k, v } = this.qkv(h, B, T, l);
        x = tf.add(x, this.attend(q, k, v, bias, B, T, l));
        x = tf.add(x, this.mlp(this.layerNorm(x, `h${l}.ln2`), l));
      }
      return this.layerNorm(x, 'lnf') as tf.Tensor2D; // [B*T, D]
    });
  }

  /** Next-token logits [B*T, V] from hidden states [B*T, D] (tied with the token embedding). */
  logits(hidden: tf.Tensor2D): tf.Tensor2D {
    return mm(hidden, swapLast(this.p('wte')));
  }

  /** Runs the prompt (left-padded to one length) and returns the cache and last-token logits. */
  prefill(
    ids: tf.Tensor2D,
    positions: tf.Tensor2D,
    keyBias: tf.Tensor4D,
  ): { logits: tf.Tensor2D; cache: KVCache } {
    const [B, T] = ids.shape;
    const keys: tf.Tensor4D[] = [];
    const values: tf.Tensor4D[] = [];
    const logits = tf.tidy(() => {
      let x = this.embed(ids, positions);
      const bias = tf.add(causalBias(T), keyBias);
      for (let l = 0; l < this.config.nLayer; l++) {
        const { q, k, v } = this.qkv(this.layerNorm(x, `h${l}.ln1`), B, T, l);
        keys.push(tf.keep(k));
        values.push(tf.keep(v));
        x = tf.add(x, this.attend(q, k, v, bias, B, T, l));
        x = tf.add(x, this.mlp(this.layerNorm(x, `h${l}.ln2`), l));
      }
      const last = tf
        .slice(tf.reshape(x, [B, T, -1]), [0, T - 1, 0], [B, 1, -1])
        .reshape([B, -1]) as tf.Tensor2D;
      return this.logits(this.layerNorm(last, 'lnf') as tf.Tensor2D);
    });
    return { logits, cache: { keys, values, keyBias: tf.clone(keyBias) } };
  }

  /** One decoding step for tokens [B] at positions [B]: cost grows linearly with the cache. */
  step(tokens: tf.Tensor1D, positions: tf.Tensor1D, cache: KVCache): { logits: tf.Tensor2D; cache: KVCache } {
    const B = tokens.shape[0];
    const keys: tf.Tensor4D[] = [];
    const values: tf.Tensor4D[] = [];
    const keyBias = tf.tidy(() => tf.concat([cache.keyBias, tf.zeros([B, 1, 1, 1])], 3) as tf.Tensor4D);
    const logits = tf.tidy(() => {
      let x = this.embed(tokens.reshape([B, 1]), positions.reshape([B, 1]));
      for (let l = 0; l < this.config.nLayer; l++) {
        const { q, k, v } = this.qkv(this.layerNorm(x, `h${l}.ln1`), B, 1, l);
        const kAll = tf.keep(tf.concat([cache.keys[l] as tf.Tensor4D, k], 2));
        const vAll = tf.keep(tf.concat([cache.values[l] as tf.Tensor4D, v], 2));
        keys.push(kAll);
        values.push(vAll);
        x = tf.add(x, this.attend(q, kAll, vAll, keyBias, B, 1, l));
        x = tf.add(x, this.mlp(this.layerNorm(x, `h${l}.ln2`), l));
      }
      return this.logits(this.layerNorm(x, 'lnf') as tf.Tensor2D);
    });
    return { logits, cache: { keys, values, keyBias } };
  }

  private embed(ids: tf.Tensor2D, positions?: tf.Tensor2D): tf.Tensor2D {
    const [B, T] = ids.shape;
    const { vocabSize: V, contextLength: C } = this.config;
    const tok = mm(tf.oneHot(ids.reshape([B * T]), V).toFloat(), this.p('wte'));
    if (positions) {
      const pos = mm(tf.oneHot(tf.cast(positions.reshape([B * T]), 'int32'), C).toFloat(), this.p('wpe'));
      return tf.add(tok, pos);
    }
    const wpe = this.p('wpe');
    return addPositions(tok, T === C ? wpe : tf.slice(wpe, [0, 0], [T, -1]));
  }

  private layerNorm(x: tf.Tensor, name: string): tf.Tensor2D {
    return layerNorm(x, this.p(`${name}.g`), this.p(`${name}.b`)) as tf.Tensor2D;
  }

  private qkv(
    h: tf.Tensor2D,
    B: number,
    T: number,
    l: number,
  ): { q: tf.Tensor4D; k: tf.Tensor4D; v: tf.Tensor4D } {
    const { nHead: H, nEmbd: D } = this.config;
    // Three products instead of one split: wasm's SplitV on the last axis is slow.
    const heads = (w: string): tf.Tensor4D =>
      tf.transpose(tf.reshape(mm(h, this.p(`h${l}.attn.${w}`)), [B, T, H, D / H]), [0, 2, 1, 3]);
    return { q: heads('wq'), k: heads('wk'), v: heads('wv') };
  }

  private attend(
    q: tf.Tensor4D,
    k: tf.Tensor4D,
    v: tf.Tensor4D,
    bias: tf.Tensor,
    B: number,
    T: number,
    l: number,
  ): tf.Tensor2D {
    const { nHead: H, nEmbd: D } = this.config;
    const scores = tf.add(tf.mul(bmm(q, swapLast(k)), 1 / Math.sqrt(D / H)), bias);
    const out = bmm(tf.softmax(scores), v); // [B, H, T, hd]
    const merged = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [B * T, D]) as tf.Tensor2D;
    return mm(merged, this.p(`h${l}.attn.wo`));
  }

  private mlp(h: tf.Tensor2D, l: number): tf.Tensor2D {
    return mm(gelu(mm(h, this.p(`h${l}.mlp.w1`))) as tf.Tensor2D, this.p(`h${l}.mlp.w2`));
  }
}

/** A linear map from the hidden state to one number: the reward model's and PPO's value head. */
export class ScalarHead {
  readonly params = new Map<string, tf.Variable>();
  constructor(nEmbd: number, seed: number, prefix = 'head') {
    const rng = new Rng(seed);
    const w = new Float32Array(nEmbd).map(() => rng.normal() / Math.sqrt(nEmbd + 1));
    this.params.set('w', tf.variable(tf.tensor2d(w, [nEmbd, 1]), true, `${prefix}/w/${uid()}`));
    this.params.set('b', tf.variable(tf.zeros([1]), true, `${prefix}/b/${uid()}`));
  }
  /** One value per position: hidden [B*T, D] → [B, T]. */
  apply(hidden: tf.Tensor2D, B: number, T: number): tf.Tensor2D {
    return tf.tidy(() =>
      tf
        .add(tf.matMul(hidden, this.params.get('w') as tf.Variable), this.params.get('b') as tf.Variable)
        .reshape([B, T]),
    );
  }
  dispose(): void {
    for (const v of this.params.values()) v.dispose();
  }
}

/** [T, T] additive mask: 0 on and below the diagonal, -1e9 above it (no looking ahead). */
function causalBias(T: number): tf.Tensor2D {
  const data = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) data[i * T + j] = NEG;
  return tf.tensor2d(data, [T, T]);
}

let counter = 0;
/** Unique variable names: tfjs refuses two variables with the same name in one process. */
function uid(): number {
  return counter++;
}
