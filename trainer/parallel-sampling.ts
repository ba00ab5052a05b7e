// Sampling on both cores with a synchronous API: part of the prompts go to a worker thread, this
// thread samples the rest, then blocks (Atomics.wait) until the worker's responses are in shared
// memory. Synchronous, so the trainers' loops stay as docs/ALGORITHMS.md writes them.
import { Worker } from 'node:worker_threads';
import type { GPT } from './model.js';
import { initBackend, type Rng } from './runtime.js';
import { generate, type SamplingConfig } from './sampling.js';
import type { SampleRequest } from './sampling-worker.js';

export class SamplingHelper {
  private constructor(private readonly worker: Worker) {}

  static async start(model: GPT): Promise<SamplingHelper> {
    const backend = await initBackend();
    const ts = import.meta.url.endsWith('.ts');
    const url = new URL(`./sampling-worker.${ts ? 'ts' : 'js'}`, import.meta.url);
    const worker = new Worker(url, {
      workerData: { config: model.config, backend },
      execArgv: ts ? ['--import', 'tsx'] : [],
    });
    worker.unref(); // an idle helper must not keep the process alive
    return new SamplingHelper(worker);
  }

  /**
   * Same contract as generate(): one response per prompt, in order. The worker's share is drawn
   * from a seed taken from rng, so a run is reproducible for a given seed.
   */
  generate(model: GPT, prompts: number[][], config: SamplingConfig, rng: Rng): number[][] {
    if (prompts.length < 2) return generate(model, prompts, config, rng);
    const half = Math.floor(prompts.length / 2);
    const remote = prompts.slice(half);
    const stride = config.maxNewTokens + 1;
    const shared = new SharedArrayBuffer(4 * (2 + remote.length * stride));
    const weights: Record<string, Float32Array> = {};
    for (const [name, v] of model.params) weights[name] = v.dataSync() as Float32Array;
    const request: SampleRequest = {
      weights,
      prompts: remote,
      sampling: config,
      seed: rng.int(2 ** 31),
      shared,
    };
    this.worker.postMessage(request);
    const local = generate(model, prompts.slice(0, half), config, rng);
    const view = new Int32Array(shared);
    // Bounded: a worker that died at start-up must not hang the trainer forever.
    if (Atomics.wait(view, 0, 0, 600_000) === 'timed-out') throw new Error('sampling worker did not answer');
    if (Atomics.load(view, 1) !== 0) throw new Error('sampling worker failed');
    const others = remote.map((_, i) => {
      const n = view[2 + i * stride] ?? 0;
      return Array.from(view.subarray(3 + i * stride, 3 + i * stride + n));
    });
    return [...local, ...others];
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
