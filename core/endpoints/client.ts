// The client for a model behind an OpenAI-compatible chat-completions API (vLLM, Ollama,
// llama.cpp's server, TGI, OpenAI): the official openai client, pointed at the endpoint's base
// URL, with no retries of its own (the caller retries, knowing which errors are worth it), a
// timeout, and a fetch that only reaches what the SSRF guard allows.
import OpenAI from 'openai';
import { createGuardedFetch, OutboundRefusedError } from './ssrf.js';

export interface SamplingSettings {
  systemPrompt?: string;
  temperature?: number;
  topP?: number;
  maxTokens?: number;
  seed?: number;
  stop?: string[];
}

export interface EndpointTarget {
  baseUrl: string;
  model: string;
  apiKey?: string;
  settings: SamplingSettings;
  concurrency: number;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface Completion {
  text: string;
  finishReason: string | null;
  usage: { promptTokens: number; completionTokens: number; totalTokens: number } | null;
  latencyMs: number;
  model: string;
}

/**
 * Why a completion failed. status: the HTTP status when the endpoint answered; retryable: 429,
 * 5xx, timeouts, connection resets; retryAfterMs from Retry-After (seconds or HTTP date) or
 * retry-after-ms. The message never contains the API key.
 */
export class EndpointError extends Error {
  override name = 'EndpointError';
  status?: number;
  retryable: boolean;
  retryAfterMs?: number;
  /** The SSRF guard refused the address. */
  refused: boolean;

  constructor(
    message: string,
    options: { status?: number; retryable: boolean; retryAfterMs?: number; refused?: boolean },
  ) {
    super(message);
    this.status = options.status;
    this.retryable = options.retryable;
    this.retryAfterMs = options.retryAfterMs;
    this.refused = options.refused ?? false;
  }
}

export interface EndpointClientOptions {
  allowHosts: readonly string[];
  /** Per request, connection to the end of the answer (default 60 s). */
  timeoutMs?: number;
}

export interface EndpointClient {
  complete(messages: ChatMessage[], init?: { signal?: AbortSignal }): Promise<Completion>;
}

/** Socket errors worth another try: the endpoint may be restarting or overloaded. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
]);

/** undici's codes for a request that cannot succeed by being sent again. */
const PERMANENT_UNDICI_CODES = new Set([
  'UND_ERR_INVALID_ARG',
  'UND_ERR_INVALID_RETURN_VALUE',
  'UND_ERR_NOT_SUPPORTED',
  'UND_ERR_ABORTED',
  'UND_ERR_RES_EXCEEDED_MAX_SIZE',
]);

/** Removes the API key (and any long piece of it an endpoint echoes back) from a message. */
export function scrubSecret(message: string, secret: string | undefined): string {
  if (!secret) return message;
  let scrubbed = message.split(secret).join('[redacted]');
  // Endpoints quote keys in part ("Incorrect API key provided: sk-abc...wxyz"): any run of 6 or
  // more characters that occurs in the key goes too.
  scrubbed = scrubbed.replace(/[A-Za-z0-9_\-+/=.]{6,}/g, (word) =>
    secret.includes(word) ? '[redacted]' : word,
  );
  return scrubbed;
}

/** Milliseconds to wait from retry-after-ms, or Retry-After in seconds or as an HTTP date. */
export function retryAfterMs(headers: Headers | undefined, now = Date.now()): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get('retry-after-ms');
  if (ms !== null && ms.trim() !== '' && Number.isFinite(Number(ms)) && Number(ms) >= 0) return Number(ms);
  const after = headers.get('retry-after');
  if (after === null || after.trim() === '') return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(after)) return Math.round(Number(after) * 1000);
  const date = Date.parse(after);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function causeChain(error: unknown): unknown[] {
  const chain: unknown[] = [];
  let current: unknown = error;
  while (current && chain.length < 6) {
    chain.push(current);
    current = (current as { cause?: unknown }).cause;
  }
  return chain;
}

function toEndpointError(error: unknown, apiKey: string | undefined, timeoutMs: number): EndpointError {
  const scrub = (message: string) => scrubSecret(message, apiKey);
  if (error instanceof EndpointError) return error;
  if (error instanceof OpenAI.APIUserAbortError)
    return new EndpointError('The request was cancelled', { retryable: false });
  if (error instanceof OpenAI.APIConnectionTimeoutError)
    return new EndpointError(`The endpoint did not answer within ${timeoutMs} ms`, { retryable: true });
  if (error instanceof OpenAI.APIError && error.status !== undefined) {
    const status = error.status;
    const body = error.error as { message?: unknown } | string | undefined;
    const detail =
      typeof body === 'string'
        ? body
        : typeof body?.message === 'string'
          ? body.message
          : error.message.replace(/^\d{3}\s*/, '');
    return new EndpointError(
      scrub(`The endpoint answered ${status}: ${detail || 'no message'}`.slice(0, 2000)),
      {
        status,
        retryable: status === 429 || status === 408 || status >= 500,
        retryAfterMs: retryAfterMs(error.headers),
      },
    );
  }
  const chain = causeChain(error);
  const refused = chain.find((item) => item instanceof OutboundRefusedError) as
    OutboundRefusedError | undefined;
  if (refused) return new EndpointError(scrub(refused.message), { retryable: false, refused: true });
  const coded = chain.find((item) => typeof (item as { code?: unknown })?.code === 'string') as
    { code: string; message?: string } | undefined;
  const innermost = chain[chain.length - 1] as { message?: string } | undefined;
  const message = innermost?.message ?? String(error);
  // A broken connection is worth another try (a loaded endpoint drops or stalls them in many
  // ways, with codes from the OS or from undici); a name that does not resolve, a TLS certificate
  // that does not verify or a malformed address is not.
  const code = coded?.code;
  const retryable =
    code === undefined
      ? error instanceof OpenAI.APIConnectionError
      : TRANSIENT_CODES.has(code) || (code.startsWith('UND_ERR') && !PERMANENT_UNDICI_CODES.has(code));
  return new EndpointError(scrub(`Could not reach the endpoint: ${message}`), { retryable });
}

/** The messages sent: the settings' system prompt first unless the messages bring their own. */
export function withSystemPrompt(messages: ChatMessage[], settings: SamplingSettings): ChatMessage[] {
  if (!settings.systemPrompt || messages.some((message) => message.role === 'system')) return messages;
  return [{ role: 'system', content: settings.systemPrompt }, ...messages];
}

export function createEndpointClient(target: EndpointTarget, options: EndpointClientOptions): EndpointClient {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const client = new OpenAI({
    baseURL: target.baseUrl.replace(/\/+$/, ''),
    // The client insists on a key; endpoints without one (a local vLLM, Ollama) ignore the header.
    apiKey: target.apiKey ?? 'none',
    maxRetries: 0,
    timeout: timeoutMs,
    fetch: createGuardedFetch({
      allowHosts: options.allowHosts,
      maxSockets: Math.max(1, target.concurrency),
    }),
    dangerouslyAllowBrowser: false,
    logLevel: 'off',
  });
  const { settings } = target;

  return {
    async complete(messages, init = {}) {
      const started = performance.now();
      try {
        const response = await client.chat.completions.create(
          {
            model: target.model,
            messages: withSystemPrompt(messages, settings),
            ...(settings.temperature !== undefined ? { temperature: settings.temperature } : {}),
            ...(settings.topP !== undefined ? { top_p: settings.topP } : {}),
            ...(settings.maxTokens !== undefined ? { max_tokens: settings.maxTokens } : {}),
            ...(settings.seed !== undefined ? { seed: settings.seed } : {}),
            ...(settings.stop !== undefined && settings.stop.length > 0 ? { stop: settings.stop } : {}),
          },
          { signal: init.signal },
        );
        const choice = response.choices?.[0];
        if (!choice) throw new EndpointError('The endpoint answered without a choice', { retryable: false });
        const usage = response.usage;
        return {
          text: choice.message?.content ?? '',
          finishReason: choice.finish_reason ?? null,
          usage: usage
            ? {
                promptTokens: usage.prompt_tokens ?? 0,
                completionTokens: usage.completion_tokens ?? 0,
                totalTokens:
                  usage.total_tokens ?? (usage.prompt_tokens ?? 0) + (usage.completion_tokens ?? 0),
              }
            : null,
          latencyMs: Math.round(performance.now() - started),
          model: response.model ?? target.model,
        };
      } catch (error) {
        throw toEndpointError(error, target.apiKey, timeoutMs);
      }
    },
  };
}
