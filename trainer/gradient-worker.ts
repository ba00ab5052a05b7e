// Worker-thread side of data-parallel training: holds a copy of the GPT, and for each message
// loads the sent weights, computes the loss and gradients of its shard, and posts them back.
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { GPT, type GPTConfig } from './model.js';
import { initBackend, type BackendName } from './runtime.js';
import type { ShardRequest, ShardResult } from './data-parallel.js';
import { gradientLoss } from './gradient-losses.js';

const { config, backend } = workerData as { config: GPTConfig; backend: BackendName };
await initBackend(backend);
const model = new GPT(config);
const port = parentPort;
if (!port) throw new Error('gradient-worker must run in a worker thread');

port.on('message', (request: ShardRequest) => {
  if (!request.shared) {
    const result = computeShard(request);
    port.postMessage(
      result,
      Object.values(result.grads).map((g) => g.buffer as ArrayBuffer),
    );
    return;
  }
  // Synchronous caller: write into its shared memory (loss, then gradients in parameter order).
  const flags = new Int32Array(request.shared, 0, 2);
  try {
    const result = computeShard(request);
    const data = new Float32Array(request.shared, 8);
    data[0] = result.loss;
    let offset = 1;
    for (const name of model.params.keys()) {
      const g = result.grads[name] ?? new Float32Array(model.p(name).size);
      data.set(g, offset);
      offset += g.length;
    }
  } catch {
    Atomics.store(flags, 1, 1);
  }
  Atomics.store(flags, 0, 1);
  Atomics.notify(flags, 0);
});

function computeShard({ weights, shard, loss }: ShardRequest): ShardResult {
  for (const [name, data] of Object.entries(weights)) {
    const v = model.p(name);
    tf.tidy(() => v.assign(tf.tensor(data, v.shape)));
  }
  const names = [...model.params.keys()];
  const { value, grads } = tf.variableGrads(
    () => gradientLoss(model, shard, loss),
    [...model.params.values()],
  );
  const out: Record<string, Float32Array> = {};
  names.forEach((name) => {
    const g = grads[model.p(name).name];
    if (g) out[name] = g.dataSync() as Float32Array;
  });
  const lossValue = value.dataSync()[0] ?? NaN;
  tf.dispose([value, ...Object.values(grads)]);
  return { loss: lossValue, grads: out };
}
