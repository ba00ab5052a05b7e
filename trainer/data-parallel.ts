// Data-parallel gradients over worker_threads: wasm runs on one thread in Node, so to use both
// cores the batch is split, one shard stays on this thread and the others go to workers, and
// the token-weighted mean gradient is applied here by the one optimizer.
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import {
  gradientLoss,
  lossWeighting,
  sliceRequest,
  SFT_LOSS,
  type GradientLossRequest,
} from './gradient-losses.js';
import type { GPT } from './model.js';
import type { AdamW } from './optimizer.js';
import { initBackend } from './runtime.js';
import type { PackedBatch } from './sequences.js';

/** A worker's share of a gradient step: the weights to load, its rows and the loss (gradient-losses.ts). */
export interface ShardRequest {
  weights: Record<string, Float32Array>;
  shard: PackedBatch;
  loss: GradientLossRequest;
  /** When set, the worker writes its result here and wakes the waiting thread (stepSync). */
  shared?: SharedArrayBuffer;
}

export interface ShardResult {
  loss: number;
  grads: Record<string, Float32Array>;
}

/** Splits a batch by rows into n shards (the last ones may be smaller). */
export function splitBatch(b: PackedBatch, n: number): PackedBatch[] {
  const size = Math.ceil(b.batch / n);
  const shards: PackedBatch[] = [];
  for (let start = 0; start < b.batch; start += size) {
    const rows = Math.min(size, b.batch - start);
    const cut = <T extends Int32Array | Float32Array>(a: T): T =>
      a.slice(start * b.length, (start + rows) * b.length) as T;
    shards.push({
      batch: rows,
      length: b.length,
      input: cut(b.input),
      target: cut(b.target),
      mask: cut(b.mask),
      last: b.last.slice(start, start + rows),
      responseLengths: b.responseLengths.slice(start, start + rows),
    });
  }
  return shards;
}

export class DataParallel {
  private constructor(
    private readonly model: GPT,
    private readonly workers: Worker[],
  ) {}

  /** Starts `workers` helper threads (default: one, so this thread plus one = both cores). */
  static async start(model: GPT, workers = 1): Promise<DataParallel> {
    const backend = await initBackend();
    // Under tsx/vitest the sources are .ts and the worker needs tsx's loader; built code is .js.
    const ts = import.meta.url.endsWith('.ts');
    const url = new URL(`./gradient-worker.${ts ? 'ts' : 'js'}`, import.meta.url);
    const pool = Array.from(
      { length: workers },
      () =>
        new Worker(url, {
          workerData: { config: model.config, backend },
          execArgv: ts ? ['--import', 'tsx'] : [],
        }),
    );
    return new DataParallel(model, pool);
  }

  /**
   * Mean loss and gradients of the whole batch (weighted across shards by tokens or rows, as the
   * loss averages), as if computed in one piece; this thread works on the first shard meanwhile.
   */
  async gradients(
    batch: PackedBatch,
    loss: GradientLossRequest = SFT_LOSS,
  ): Promise<{ loss: number; grads: Map<string, tf.Tensor> }> {
    const shards = splitBatch(batch, this.workers.length + 1);
    const requests = this.requestsOf(shards, loss, batch.length);
    const weights = this.weights();
    const remote = shards.slice(1).map(
      (shard, i) =>
        new Promise<ShardResult>((resolve, reject) => {
          const worker = this.workers[i] as Worker;
          const onError = (e: Error): void => reject(e);
          worker.once('error', onError);
          worker.once('message', (r: ShardResult) => {
            worker.off('error', onError);
            resolve(r);
          });
          worker.postMessage({ weights, shard, loss: requests[i + 1] ?? loss } satisfies ShardRequest);
        }),
    );
    const local = this.localShard(shards, requests);
    const results = await Promise.all(remote);
    return this.combine(shards, loss, local, results);
  }

  /**
   * The same as gradients() but synchronous: workers write into shared memory and this thread
   * blocks on Atomics.wait, so the RL trainers' loops stay synchronous.
   */
  gradientsSync(
    batch: PackedBatch,
    loss: GradientLossRequest = SFT_LOSS,
  ): { loss: number; grads: Map<string, tf.Tensor> } {
    const shards = splitBatch(batch, this.workers.length + 1);
    const requests = this.requestsOf(shards, loss, batch.length);
    const weights = this.weights();
    const names = [...this.model.params.keys()];
    const sizes = names.map((n) => this.model.p(n).size);
    const buffers = shards.slice(1).map((shard, i) => {
      // [done flag, error flag] as int32, then the loss and every gradient as float32.
      const shared = new SharedArrayBuffer(4 * (3 + sizes.reduce((a, b) => a + b, 0)));
      const request: ShardRequest = { weights, shard, loss: requests[i + 1] ?? loss, shared };
      (this.workers[i] as Worker).postMessage(request);
      return shared;
    });
    const local = this.localShard(shards, requests);
    const results = buffers.map((shared): ShardResult => {
      const flags = new Int32Array(shared, 0, 2);
      // Bounded: a worker that died must not hang the trainer forever.
      if (Atomics.wait(flags, 0, 0, 600_000) === 'timed-out')
        throw new Error('gradient worker did not answer');
      if (Atomics.load(flags, 1) !== 0) throw new Error('gradient worker failed');
      const data = new Float32Array(shared, 8);
      const grads: Record<string, Float32Array> = {};
      let offset = 1;
      names.forEach((n, j) => {
        const size = sizes[j] ?? 0;
        grads[n] = data.slice(offset, offset + size);
        offset += size;
      });
      return { loss: data[0] ?? NaN, grads };
    });
    return this.combine(shards, loss, local, results);
  }

  private weights(): Record<string, Float32Array> {
    const weights: Record<string, Float32Array> = {};
    for (const [name, v] of this.model.params) weights[name] = v.dataSync() as Float32Array;
    return weights;
  }

  /** The loss request of each shard: its rows of the per-row and per-token inputs. */
  private requestsOf(
    shards: PackedBatch[],
    loss: GradientLossRequest,
    length: number,
  ): GradientLossRequest[] {
    let start = 0;
    return shards.map((s) => {
      const request = sliceRequest(loss, start, s.batch, length);
      start += s.batch;
      return request;
    });
  }

  private localShard(
    shards: PackedBatch[],
    requests: GradientLossRequest[],
  ): { value: tf.Scalar; grads: tf.NamedTensorMap } {
    return tf.variableGrads(
      () => gradientLoss(this.model, shards[0] as PackedBatch, requests[0] ?? SFT_LOSS),
      [...this.model.params.values()],
    );
  }

  /** Weighted mean of the shards' losses and gradients (by tokens or by rows, per loss). */
  private combine(
    shards: PackedBatch[],
    loss: GradientLossRequest,
    local: { value: tf.Scalar; grads: tf.NamedTensorMap },
    results: ShardResult[],
  ): { loss: number; grads: Map<string, tf.Tensor> } {
    const { value, grads } = local;
    const weight = shards.map((s) =>
      lossWeighting(loss) === 'rows'
        ? s.batch
        : Math.max(
            1,
            s.mask.reduce((a, x) => a + x, 0),
          ),
    );
    const total = weight.reduce((a, b) => a + b, 0);
    const out = new Map<string, tf.Tensor>();
    tf.tidy(() => {
      for (const [name, v] of this.model.params) {
        let g = tf.mul(grads[v.name] ?? tf.zerosLike(v), (weight[0] ?? 0) / total);
        results.forEach((r, i) => {
          const data = r.grads[name];
          if (data) g = tf.add(g, tf.mul(tf.tensor(data, v.shape), (weight[i + 1] ?? 0) / total));
        });
        out.set(name, tf.keep(g));
      }
    });
    const lossValue =
      ((value.dataSync()[0] ?? 0) * (weight[0] ?? 0) +
        results.reduce((a, r, i) => a + r.loss * (weight[i + 1] ?? 0), 0)) /
      total;
    tf.dispose([value, ...Object.values(grads)]);
    return { loss: lossValue, grads: out };
  }

  /** One optimizer step on the batch; returns the loss. */
  async step(optimizer: AdamW, batch: PackedBatch, loss: GradientLossRequest = SFT_LOSS): Promise<number> {
    const { loss: value, grads } = await this.gradients(batch, loss);
    optimizer.apply(this.model.params, grads);
    tf.dispose([...grads.values()]);
    return value;
  }

  /** step() for synchronous loops (gradientStep in gradient-losses.ts). */
  stepSync(optimizer: AdamW, batch: PackedBatch, loss: GradientLossRequest = SFT_LOSS): number {
    const { loss: value, grads } = this.gradientsSync(batch, loss);
    optimizer.apply(this.model.params, grads);
    tf.dispose([...grads.values()]);
    return value;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
