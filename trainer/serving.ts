// Samples built-in policy versions for the API server's OpenAI-compatible route, in a worker
// thread of its own (started on the first request, so the server starts without TensorFlow.js),
// which keeps the last few versions loaded. Requests are answered one at a time, in order.
import { Worker } from 'node:worker_threads';
import type { PolicyGenerator, GenerateRequest, GenerateResult } from '../core/services/serving.js';
import type { ServeAnswer, ServeRequest } from './serving-worker.js';

/** Versions kept loaded in the worker. */
const CACHE_SIZE = 4;

class WorkerGenerator implements PolicyGenerator {
  private nextId = 1;
  private readonly pending = new Map<number, (answer: ServeAnswer) => void>();
  private failure: Error | null = null;

  constructor(private readonly worker: Worker) {
    worker.on('message', (answer: ServeAnswer) => {
      const resolve = this.pending.get(answer.id);
      this.pending.delete(answer.id);
      resolve?.(answer);
    });
    worker.on('error', (error) => this.fail(error));
    worker.on('exit', (code) => this.fail(new Error(`the sampling thread stopped (exit code ${code})`)));
    worker.unref();
  }

  private fail(error: Error): void {
    this.failure = error;
    for (const [id, resolve] of this.pending) resolve({ id, kind: 'error', message: error.message });
    this.pending.clear();
    generator = undefined;
  }

  private send(request: ServeRequest): Promise<ServeAnswer> {
    if (this.failure)
      return Promise.resolve({ id: request.id, kind: 'error', message: this.failure.message });
    return new Promise((resolve) => {
      this.pending.set(request.id, resolve);
      this.worker.postMessage(request);
    });
  }

  async generate(request: GenerateRequest): Promise<GenerateResult> {
    const base = {
      versionId: request.versionId,
      prompt: request.prompt,
      temperature: request.temperature,
      topP: request.topP,
      maxTokens: request.maxTokens,
      seed: request.seed,
    };
    let answer = await this.send({ id: this.nextId++, ...base });
    if (answer.kind === 'need-checkpoint')
      answer = await this.send({ id: this.nextId++, ...base, checkpoint: await request.checkpoint() });
    if (answer.kind === 'error') throw new Error(answer.message);
    if (answer.kind !== 'done') throw new Error('the sampling thread did not load the version');
    return {
      text: answer.text,
      promptTokens: answer.promptTokens,
      completionTokens: answer.tokens.length,
      ended: answer.ended,
    };
  }

  close(): Promise<number> {
    return this.worker.terminate();
  }
}

let generator: WorkerGenerator | undefined;

/** The process's sampling thread, started on first use. */
export function policyGenerator(): PolicyGenerator {
  if (!generator) {
    const ts = import.meta.url.endsWith('.ts');
    const url = new URL(`./serving-worker.${ts ? 'ts' : 'js'}`, import.meta.url);
    generator = new WorkerGenerator(
      new Worker(url, { workerData: { cacheSize: CACHE_SIZE }, execArgv: ts ? ['--import', 'tsx'] : [] }),
    );
  }
  return generator;
}

/** Stops the sampling thread (tests, shutdown). */
export async function stopPolicyGenerator(): Promise<void> {
  const current = generator;
  generator = undefined;
  await current?.close();
}
