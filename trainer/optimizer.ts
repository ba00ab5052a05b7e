// AdamW with global-norm gradient clipping, written out (rather than tf.train.adam) so its state
// is a plain named map that checkpoints save and load exactly.
import * as tf from '@tensorflow/tfjs';

export interface AdamWConfig {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  weightDecay: number;
  /** Clip the global gradient norm to this; 0 disables. */
  gradClip: number;
}

export const DEFAULT_ADAMW: AdamWConfig = {
  learningRate: 1e-3, // nanoGPT's rate for baby models
  beta1: 0.9, // standard
  beta2: 0.99, // nanoGPT's choice for small models (fewer tokens per step)
  epsilon: 1e-8, // standard
  weightDecay: 0.01, // light decay on matrices only
  gradClip: 1.0, // nanoGPT's clip
};

export class AdamW {
  config: AdamWConfig;
  step = 0;
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();

  constructor(config: Partial<AdamWConfig> = {}) {
    this.config = { ...DEFAULT_ADAMW, ...config };
  }

  /**
   * Computes gradients of loss() over vars (named), updates them, returns the loss value.
   * Nothing but the optimizer's own state survives the call.
   */
  minimize(vars: Map<string, tf.Variable>, loss: () => tf.Scalar): number {
    const list = [...vars.values()];
    const { value, grads } = tf.variableGrads(loss, list);
    const lossValue = value.dataSync()[0] ?? NaN;
    const named = new Map<string, tf.Tensor>();
    for (const [name, v] of vars) {
      const g = grads[v.name];
      if (g) named.set(name, g);
    }
    this.apply(vars, named);
    tf.dispose([value, ...Object.values(grads)]);
    return lossValue;
  }

  /** Applies gradients (already averaged) to the named variables. */
  apply(vars: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>): void {
    const { learningRate, beta1, beta2, epsilon, weightDecay, gradClip } = this.config;
    this.step += 1;
    const t = this.step;
    tf.tidy(() => {
      let scale = 1;
      if (gradClip > 0) {
        const norm = Math.sqrt(
          [...grads.values()].reduce((a, g) => a + (tf.sum(tf.square(g)).dataSync()[0] ?? 0), 0),
        );
        if (norm > gradClip) scale = gradClip / (norm + 1e-6);
      }
      const lrT = (learningRate * Math.sqrt(1 - beta2 ** t)) / (1 - beta1 ** t);
      for (const [name, p] of vars) {
        const g0 = grads.get(name);
        if (!g0) continue;
        const g = scale === 1 ? g0 : tf.mul(g0, scale);
        const m = this.slot(this.m, name, p);
        const v = this.slot(this.v, name, p);
        m.assign(tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1)));
        v.assign(tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2)));
        let update = tf.div(tf.mul(m, lrT), tf.add(tf.sqrt(v), epsilon));
        // Decoupled decay on matrices only: gains, biases and 1-D vectors are not shrunk.
        if (weightDecay > 0 && p.rank >= 2) update = tf.add(update, tf.mul(p, learningRate * weightDecay));
        p.assign(tf.sub(p, update));
      }
    });
  }

  private slot(slots: Map<string, tf.Variable>, name: string, like: tf.Variable): tf.Variable {
    let s = slots.get(name);
    if (!s) {
      s = tf.variable(tf.zerosLike(like), false);
      slots.set(name, s);
    }
    return s;
  }

  /** State as named tensors (m/<name>, v/<name>) for checkpoints. */
  state(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [n, t] of this.m) out.set(`m/${n}`, t);
    for (const [n, t] of this.v) out.set(`v/${n}`, t);
    return out;
  }

  loadState(step: number, tensors: Map<string, tf.Tensor>): void {
    this.dispose();
    this.step = step;
    for (const [key, t] of tensors) {
      const [slot, ...rest] = key.split('/');
      const name = rest.join('/');
      if (slot === 'm') this.m.set(name, tf.variable(t, false));
      else if (slot === 'v') this.v.set(name, tf.variable(t, false));
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}
