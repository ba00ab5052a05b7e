// Worker-thread side of parallel sampling: receives the policy's weights and some prompts,
// samples their responses, and writes them into shared memory for the waiting main thread.
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { GPT, type GPTConfig } from './model.js';
import { initBackend, Rng, type BackendName } from './runtime.js';
import { generate, type SamplingConfig } from './sampling.js';

export interface SampleRequest {
  weights: Record<string, Float32Array>;
  prompts: number[][];
  sampling: SamplingConfig;
  seed: number;
  /** [0] = done flag, [1] = error flag, then per row: length, tokens (maxNewTokens slots). */
  shared: SharedArrayBuffer;
}

const { config, backend } = workerData as { config: GPTConfig; backend: BackendName };
await initBackend(backend);
const model = new GPT(config);
const port = parentPort;
if (!port) throw new Error('sampling-worker must run in a worker thread');

port.on('message', ({ weights, prompts, sampling, seed, shared }: SampleRequest) => {
  const view = new Int32Array(shared);
  try {
    for (const [name, data] of Object.entries(weights)) {
      const v = model.p(name);
      tf.tidy(() => v.assign(tf.tensor(data, v.shape)));
    }
    const responses = generate(model, prompts, sampling, new Rng(seed));
    const stride = sampling.maxNewTokens + 1;
    responses.forEach((r, i) => {
      view[2 + i * stride] = r.length;
      view.set(r.slice(0, sampling.maxNewTokens), 3 + i * stride);
    });
  } catch {
    Atomics.store(view, 1, 1);
  }
  Atomics.store(view, 0, 1);
  Atomics.notify(view, 0);
});
