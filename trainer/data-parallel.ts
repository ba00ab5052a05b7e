// Data-parallel gradients over worker_threads: wasm runs on one thread in Node, so to use both
// cores the batch is split, one shard stays on this thread and the others go to workers, and
// the token-weighted mean gradient is applied here by the one optimizer.
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import type { GPT } from './model.js';
import type { AdamW } from './optimizer.js';
import { initBackend } from './runtime.js';
import { maskTensor, responseTokenLogProbs, type PackedBatch } from './sequences.js';

/** Losses a worker knows how to compute (the loss must be rebuilt there from plain data). */
export type ShardLossName = 'sft';

export interface ShardRequest {
  weights: Record<string, Float32Array>;
  shard: PackedBatch;
  loss: ShardLossName;
}

export interface ShardResult {
  loss: number;
  grads: Record<string, Float32Array>;
}

/** The per-token mean negative log-likelihood of a shard's response tokens. */
export function shardLoss(model: GPT, shard: PackedBatch, loss: ShardLossName): tf.Scalar {
  if (loss !== 'sft') throw new Error(`unknown shard loss ${String(loss)}`);
  return tf.tidy(() => {
    const { logp } = responseTokenLogProbs(model, shard);
    return tf.div(tf.neg(tf.sum(logp)), tf.maximum(tf.sum(maskTensor(shard)), 1)) as tf.Scalar;
  });
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
   * Mean loss and gradients of the whole batch (token-weighted across shards), as if computed in
   * one piece; this thread works on the first shard while the workers do the rest.
   */
  async gradients(
    batch: PackedBatch,
    loss: ShardLossName = 'sft',
  ): Promise<{ loss: number; grads: Map<string, tf.Tensor> }> {
    const shards = splitBatch(batch, this.workers.length + 1);
    const weights: Record<string, Float32Array> = {};
    for (const [name, v] of this.model.params) weights[name] = v.dataSync() as Float32Array;
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
          worker.postMessage({ weights, shard, loss } satisfies ShardRequest);
        }),
    );
    const local = shards[0] as PackedBatch;
    const { value, grads } = tf.variableGrads(
      () => shardLoss(this.model, local, loss),
      [...this.model.params.values()],
    );
    const results = await Promise.all(remote);
    const tokens = shards.map((s) =>
      Math.max(
        1,
        s.mask.reduce((a, x) => a + x, 0),
      ),
    );
    const total = tokens.reduce((a, b) => a + b, 0);
    const out = new Map<string, tf.Tensor>();
    tf.tidy(() => {
      for (const [name, v] of this.model.params) {
        let g = tf.mul(grads[v.name] ?? tf.zerosLike(v), (tokens[0] ?? 0) / total);
        results.forEach((r, i) => {
          const data = r.grads[name];
          if (data) g = tf.add(g, tf.mul(tf.tensor(data, v.shape), (tokens[i + 1] ?? 0) / total));
        });
        out.set(name, tf.keep(g));
      }
    });
    const lossValue =
      ((value.dataSync()[0] ?? 0) * (tokens[0] ?? 0) +
        results.reduce((a, r, i) => a + r.loss * (tokens[i + 1] ?? 0), 0)) /
      total;
    tf.dispose([value, ...Object.values(grads)]);
    return { loss: lossValue, grads: out };
  }

  /** One optimizer step on the batch; returns the loss. */
  async step(optimizer: AdamW, batch: PackedBatch, loss: ShardLossName = 'sft'): Promise<number> {
    const { loss: value, grads } = await this.gradients(batch, loss);
    optimizer.apply(this.model.params, grads);
    tf.dispose([...grads.values()]);
    return value;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
