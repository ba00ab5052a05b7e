// Picks the TensorFlow.js backend once per thread: tfjs-node when it is installed (an optional
// dependency), otherwise WebAssembly; plus the seeded random numbers every trainer shares.
import * as tf from '@tensorflow/tfjs';
import { installWasmKernels } from './wasm-kernels.js';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

let ready: Promise<BackendName> | undefined;

/** Initializes the fastest available backend; safe to call many times. */
export function initBackend(preferred?: BackendName): Promise<BackendName> {
  ready ??= selectBackend(preferred ?? (process.env.LOOM_TF_BACKEND as BackendName | undefined));
  return ready;
}

async function selectBackend(preferred: BackendName | undefined): Promise<BackendName> {
  if (preferred !== 'wasm' && preferred !== 'cpu') {
    // A string variable keeps TypeScript from needing the package's types, which are absent here.
    const nodeBackend = '@tensorflow/tfjs-node';
    try {
      await import(nodeBackend);
      if (await tf.setBackend('tensorflow')) return 'tensorflow';
    } catch {
      // Not installed (its install needs a download host): fall through to wasm.
    }
  }
  if (preferred !== 'cpu') {
    await import('@tensorflow/tfjs-backend-wasm');
    if (await tf.setBackend('wasm')) {
      await tf.ready();
      installWasmKernels();
      return 'wasm';
    }
  }
  await tf.setBackend('cpu');
  await tf.ready();
  return 'cpu';
}

/** Small deterministic PRNG (mulberry32) so sampling and data order repeat for a seed. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  normal(): number {
    const u = 1 - this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j] as T, items[i] as T];
    }
    return items;
  }
}
