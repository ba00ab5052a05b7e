// A text-only reward model for policies whose weights are not here (external endpoints): hashed
// word and character n-grams plus a few length/overlap features into a small MLP, trained with the
// same Bradley-Terry loss as the GPT reward model. Plain TypeScript: the input is sparse.
import { decodeCheckpoint, encodeCheckpoint, type HostTensor } from './checkpoint.js';
import {
  LLAMA2_MARGINS_LARGE,
  batchesByPrompt,
  toPreferencePairs,
  type ComparisonExample,
  type RewardScorer,
} from './preferences.js';
import { Rng } from './runtime.js';

export interface TextRewardModelConfig {
  /** Hash buckets for n-gram features (a power of two). */
  buckets: number;
  /** Hidden ReLU units; 0 leaves a linear model. */
  hidden: number;
  /** Word n-grams up to this length. */
  wordNgrams: number;
  /** Character n-gram length (0 = none); they catch morphology and punctuation. */
  charNgram: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** L2 penalty on the weights a step touches (the data is small, the features many). */
  l2: number;
  margins: number[] | null;
  centerCoef: number;
  seed: number;
}

export const DEFAULT_TEXT_REWARD_MODEL: TextRewardModelConfig = {
  buckets: 1 << 18, // few collisions for a few thousand comparisons' vocabulary
  hidden: 16, // small: more units overfit a few thousand pairs
  wordNgrams: 2, // unigrams and bigrams
  charNgram: 3, // character trigrams: best of 3/4/5 in 5-fold CV on HH helpful-base
  epochs: 1, // one pass, as for the GPT reward model: more epochs overfit (HH: 62.3% → 59.9% at 3)
  batchSize: 16, // comparisons per step
  learningRate: 3e-3, // Adam
  l2: 1e-4, // keeps rare n-grams from memorizing their pair
  margins: LLAMA2_MARGINS_LARGE, // same margins as the GPT reward model
  centerCoef: 0, // same default as the GPT reward model
  seed: 1, // initialization and batch order
};

/** Dense features first, then hashed n-grams; values of the n-grams are L2-normalized. */
const DENSE = 8;

interface Sparse {
  idx: Int32Array;
  val: Float32Array;
}

export class TextRewardModel implements RewardScorer {
  readonly config: TextRewardModelConfig;
  /** Linear weights over features. */
  w: Float32Array;
  /** [features, hidden] first layer, row-major. */
  w1: Float32Array;
  b1: Float32Array;
  v: Float32Array;
  b: Float32Array;

  constructor(config: Partial<TextRewardModelConfig> = {}) {
    this.config = { ...DEFAULT_TEXT_REWARD_MODEL, ...config };
    const { buckets, hidden, seed } = this.config;
    const rng = new Rng(seed);
    const n = DENSE + buckets;
    this.w = new Float32Array(n);
    this.w1 = new Float32Array(n * hidden).map(() => rng.normal() * 0.01);
    this.b1 = new Float32Array(hidden).fill(0.01);
    this.v = new Float32Array(hidden).map(() => rng.normal() / Math.sqrt(Math.max(1, hidden)));
    this.b = new Float32Array(1);
  }

  features(prompt: string, response: string): Sparse {
    const { buckets, wordNgrams, charNgram } = this.config;
    const words = tokenize(response);
    const lastTurn = prompt.split(/\n\nHuman:|<user>/).at(-1) ?? prompt;
    const promptWords = new Set(tokenize(lastTurn));
    const overlap = words.filter((w) => promptWords.has(w)).length;
    const unique = new Set(words).size;
    const dense = [
      Math.log1p(response.length) / 3,
      Math.log1p(words.length) / 3,
      words.length > 0 ? overlap / words.length : 0,
      promptWords.size > 0 ? new Set(words.filter((w) => promptWords.has(w))).size / promptWords.size : 0,
      words.length > 0 ? unique / words.length : 0,
      (response.match(/\?/g)?.length ?? 0) / 3,
      response.trim().endsWith('?') ? 1 : 0,
      response.trim().length === 0 ? 1 : 0,
    ];
    const counts = new Map<number, number>();
    const add = (key: string): void => {
      const h = DENSE + (fnv1a(key) & (buckets - 1));
      counts.set(h, (counts.get(h) ?? 0) + 1);
    };
    for (let n = 1; n <= wordNgrams; n++) {
      for (let i = 0; i + n <= words.length; i++) add(`w${n}:${words.slice(i, i + n).join(' ')}`);
    }
    if (charNgram > 0) {
      const text = ` ${response.toLowerCase().replace(/\s+/g, ' ')} `;
      for (let i = 0; i + charNgram <= text.length; i++) add(`c:${text.slice(i, i + charNgram)}`);
    }
    let norm = 0;
    for (const c of counts.values()) norm += c * c;
    norm = Math.sqrt(norm) || 1;
    const idx = new Int32Array(DENSE + counts.size);
    const val = new Float32Array(DENSE + counts.size);
    dense.forEach((d, i) => {
      idx[i] = i;
      val[i] = d;
    });
    let j = DENSE;
    for (const [h, c] of counts) {
      idx[j] = h;
      val[j++] = c / norm;
    }
    return { idx, val };
  }

  /** r = w·x + v·relu(W1ᵀx + b1) + b, with the hidden activations for backprop. */
  private forward(x: Sparse): { r: number; pre: Float32Array } {
    const H = this.config.hidden;
    const pre = new Float32Array(this.b1);
    let r = this.b[0] ?? 0;
    for (let k = 0; k < x.idx.length; k++) {
      const i = x.idx[k] ?? 0;
      const xi = x.val[k] ?? 0;
      r += (this.w[i] ?? 0) * xi;
      for (let j = 0; j < H; j++) pre[j] = (pre[j] ?? 0) + (this.w1[i * H + j] ?? 0) * xi;
    }
    for (let j = 0; j < H; j++) r += (this.v[j] ?? 0) * Math.max(0, pre[j] ?? 0);
    return { r, pre };
  }

  score(items: { prompt: string; response: string }[]): number[] {
    return items.map((i) => this.forward(this.features(i.prompt, i.response)).r);
  }

  /** Trains with L = −mean log σ(r⁺ − r⁻ − m) + c·mean((r⁺ + r⁻)²); ties and BOTH_BAD are skipped. */
  train(
    comparisons: ComparisonExample[],
    onStep?: (step: number, loss: number, total: number) => void,
  ): number[] {
    const cfg = this.config;
    const rng = new Rng(cfg.seed + 1);
    const pairs = toPreferencePairs(comparisons, cfg.margins).pairs.map((p) => ({
      ...p,
      xc: this.features(p.prompt, p.chosen),
      xr: this.features(p.prompt, p.rejected),
    }));
    const adam = new SparseAdam(cfg.learningRate);
    const H = cfg.hidden;
    const emptyGrads = (): Gradients => {
      const g = new Gradients();
      g.b1 = new Float32Array(H);
      g.v = new Float32Array(H);
      return g;
    };
    const losses: number[] = [];
    const total = cfg.epochs * batchesByPrompt(pairs, cfg.batchSize, new Rng(0)).length;
    for (let epoch = 0; epoch < cfg.epochs; epoch++) {
      for (const batch of batchesByPrompt(pairs, cfg.batchSize, rng)) {
        const grads = emptyGrads();
        let loss = 0;
        for (const p of batch) {
          const c = this.forward(p.xc);
          const r = this.forward(p.xr);
          const d = c.r - r.r - p.margin;
          const s = c.r + r.r;
          loss += Math.log1p(Math.exp(-d)) + cfg.centerCoef * s * s;
          const sig = 1 / (1 + Math.exp(d)); // σ(−d) = −∂softplus(−d)/∂d
          const n = batch.length;
          this.backward(p.xc, c.pre, ((-sig + 2 * cfg.centerCoef * s) * p.weight) / n, grads);
          this.backward(p.xr, r.pre, ((sig + 2 * cfg.centerCoef * s) * p.weight) / n, grads);
        }
        adam.step(this, grads, H, cfg.l2);
        losses.push(loss / batch.length);
        onStep?.(losses.length, loss / batch.length, total);
      }
    }
    return losses;
  }

  /** Accumulates ∂L/∂θ given ∂L/∂r for one input. */
  private backward(x: Sparse, pre: Float32Array, dr: number, grads: Gradients): void {
    const H = this.config.hidden;
    grads.b += dr;
    const dh = new Float32Array(H);
    for (let j = 0; j < H; j++) {
      const a = pre[j] ?? 0;
      grads.v[j] = (grads.v[j] ?? 0) + dr * Math.max(0, a);
      dh[j] = a > 0 ? dr * (this.v[j] ?? 0) : 0;
    }
    for (let j = 0; j < H; j++) grads.b1[j] = (grads.b1[j] ?? 0) + (dh[j] ?? 0);
    for (let k = 0; k < x.idx.length; k++) {
      const i = x.idx[k] ?? 0;
      const xi = x.val[k] ?? 0;
      grads.w.set(i, (grads.w.get(i) ?? 0) + dr * xi);
      let row = grads.w1.get(i);
      if (!row) {
        row = new Float32Array(H);
        grads.w1.set(i, row);
      }
      for (let j = 0; j < H; j++) row[j] = (row[j] ?? 0) + (dh[j] ?? 0) * xi;
    }
  }

  encode(meta: Record<string, unknown> = {}): Buffer {
    const H = this.config.hidden;
    const n = this.w.length;
    const tensors = new Map<string, HostTensor>([
      ['w', { shape: [n], data: this.w }],
      ['w1', { shape: [n, H], data: this.w1 }],
      ['b1', { shape: [H], data: this.b1 }],
      ['v', { shape: [H], data: this.v }],
      ['b', { shape: [1], data: this.b }],
    ]);
    return encodeCheckpoint(
      { kind: 'text-reward-model', config: { ...this.config }, tokenizer: {}, step: 0, meta },
      tensors,
    );
  }

  static decode(buf: Buffer): TextRewardModel {
    const { header, tensors } = decodeCheckpoint(buf);
    if (header.kind !== 'text-reward-model')
      throw new Error(`expected a text reward model, got ${header.kind}`);
    const model = new TextRewardModel(header.config as Partial<TextRewardModelConfig>);
    for (const name of ['w', 'w1', 'b1', 'v', 'b'] as const) {
      const t = tensors.get(name);
      if (!t) throw new Error(`text reward model checkpoint lacks ${name}`);
      model[name] = t.dataSync() as Float32Array;
      t.dispose();
    }
    return model;
  }
}

class Gradients {
  w = new Map<number, number>();
  w1 = new Map<number, Float32Array>();
  b1: Float32Array = new Float32Array(0);
  v: Float32Array = new Float32Array(0);
  b = 0;
}

/** Adam that only updates the rows a batch touched (lazy Adam), so a step costs O(batch features). */
class SparseAdam {
  private t = 0;
  private readonly m = new Map<string, Float32Array>();
  private readonly s = new Map<string, Float32Array>();
  constructor(private readonly lr: number) {}

  step(model: TextRewardModel, g: Gradients, H: number, l2: number): void {
    this.t += 1;
    const c1 = 1 - 0.9 ** this.t;
    const c2 = 1 - 0.999 ** this.t;
    const update = (
      key: string,
      params: Float32Array,
      offset: number,
      grad: ArrayLike<number>,
      decay: boolean,
    ): void => {
      let m = this.m.get(key);
      let s = this.s.get(key);
      if (!m || !s) {
        m = new Float32Array(grad.length);
        s = new Float32Array(grad.length);
        this.m.set(key, m);
        this.s.set(key, s);
      }
      for (let j = 0; j < grad.length; j++) {
        const p = params[offset + j] ?? 0;
        const gj = (grad[j] ?? 0) + (decay ? l2 * p : 0);
        m[j] = 0.9 * (m[j] ?? 0) + 0.1 * gj;
        s[j] = 0.999 * (s[j] ?? 0) + 0.001 * gj * gj;
        params[offset + j] = p - (this.lr * ((m[j] ?? 0) / c1)) / (Math.sqrt((s[j] ?? 0) / c2) + 1e-8);
      }
    };
    for (const [i, gi] of g.w) update(`w${i}`, model.w, i, [gi], true);
    for (const [i, row] of g.w1) update(`w1:${i}`, model.w1, i * H, row, true);
    if (g.b1.length) update('b1', model.b1, 0, g.b1, false);
    if (g.v.length) update('v', model.v, 0, g.v, true);
    update('b', model.b, 0, [g.b], false);
  }
}

function tokenize(text: string): string[] {
  return text.toLowerCase().match(/[a-z0-9']+|[^\sa-z0-9']/g) ?? [];
}

/** 32-bit FNV-1a: a stable hash, so a saved model maps text to the same buckets after loading. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
