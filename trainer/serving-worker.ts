// Worker-thread side of serving built-in versions (POST /v1/chat/completions): keeps the few
// policies asked for last in memory (least recently used dropped first) and samples one response
// per request with the trainer's sampler, off the API server's event loop.
import { parentPort, workerData } from 'node:worker_threads';
import { decodePolicy, type Policy } from './policy.js';
import { initBackend, Rng } from './runtime.js';
import { generate } from './sampling.js';
import { END } from './tokenizer.js';

export interface ServeRequest {
  id: number;
  versionId: string;
  /** The version's checkpoint, sent when the worker said it does not hold the version. */
  checkpoint?: Uint8Array;
  prompt: string;
  temperature: number;
  topP: number;
  maxTokens: number | undefined;
  seed: number;
}

export type ServeAnswer =
  | {
      id: number;
      kind: 'done';
      tokens: number[];
      text: string;
      promptTokens: number;
      ended: boolean;
      contextLength: number;
    }
  | { id: number; kind: 'need-checkpoint' }
  | { id: number; kind: 'error'; message: string };

const { cacheSize, backend } = workerData as { cacheSize: number; backend?: 'wasm' | 'cpu' | 'tensorflow' };
await initBackend(backend);
const port = parentPort;
if (!port) throw new Error('serving-worker must run in a worker thread');

/** Insertion order is recency: a hit is moved to the end, the first entry is the least recent. */
const policies = new Map<string, Policy>();

function policyFor(request: ServeRequest): Policy | null {
  const cached = policies.get(request.versionId);
  if (cached) {
    policies.delete(request.versionId);
    policies.set(request.versionId, cached);
    return cached;
  }
  if (!request.checkpoint) return null;
  const { policy } = decodePolicy(Buffer.from(request.checkpoint));
  policies.set(request.versionId, policy);
  while (policies.size > cacheSize) {
    const [oldest, evicted] = policies.entries().next().value as [string, Policy];
    policies.delete(oldest);
    evicted.model.dispose();
  }
  return policy;
}

port.on('message', (request: ServeRequest) => {
  try {
    const policy = policyFor(request);
    if (!policy) {
      port.postMessage({ id: request.id, kind: 'need-checkpoint' } satisfies ServeAnswer);
      return;
    }
    const prompt = policy.tokenizer.encodePrompt(request.prompt);
    const contextLength = policy.model.config.contextLength;
    const [tokens = []] = generate(
      policy.model,
      [prompt],
      {
        temperature: request.temperature,
        topK: 0,
        topP: request.topP,
        maxNewTokens: Math.max(1, request.maxTokens ?? contextLength),
        batchSize: 1,
      },
      new Rng(request.seed),
    );
    port.postMessage({
      id: request.id,
      kind: 'done',
      tokens,
      text: policy.tokenizer.decode(tokens),
      promptTokens: Math.min(prompt.length, contextLength - 1),
      ended: tokens.at(-1) === END,
      contextLength,
    } satisfies ServeAnswer);
  } catch (error) {
    port.postMessage({
      id: request.id,
      kind: 'error',
      message: (error as Error).message,
    } satisfies ServeAnswer);
  }
});
