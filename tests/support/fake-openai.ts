// A fake OpenAI-compatible chat-completions server on loopback for tests and benchmarks. It
// answers POST <base>/chat/completions in OpenAI's shape with a deterministic text (the model
// and the last user message, reversed), after a configurable latency; failures can be scripted
// (429 with Retry-After, 500, 401, a redirect) for the next requests or by request number.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeFailure {
  status: number;
  /** Retry-After header value (seconds or an HTTP date). */
  retryAfter?: string;
  /** retry-after-ms header value. */
  retryAfterMs?: number;
  /** For 3xx: the Location header. */
  location?: string;
  message?: string;
}

export interface FakeRequest {
  index: number;
  path: string;
  authorization: string | undefined;
  body: {
    model?: string;
    messages?: { role: string; content: string }[];
    temperature?: number;
    top_p?: number;
    max_tokens?: number;
    seed?: number;
    stop?: string[];
  };
}

export interface FakeOpenAIOptions {
  /** The loopback port to listen on (default: any free one). */
  port?: number;
  /** Milliseconds before each answer. */
  latencyMs?: number;
  /** When set, requests without `Authorization: Bearer <apiKey>` get 401, quoting what they sent. */
  apiKey?: string;
  /** A failure for the request with this number (1-based, in order of arrival), or none. */
  failWhen?: (index: number, request: FakeRequest) => FakeFailure | undefined;
}

export interface FakeOpenAI {
  /** The base URL to register: http://127.0.0.1:<port>/v1 */
  baseUrl: string;
  port: number;
  /** Requests received so far, failed ones included. */
  readonly requests: number;
  /** Requests being answered now, and the most at once. */
  readonly inFlight: number;
  readonly maxInFlight: number;
  received: FakeRequest[];
  /** Answer the next requests with these failures, in order. */
  failNext(...failures: FakeFailure[]): void;
  close(): Promise<void>;
}

/** The text the fake answers for a request: deterministic in the model and the last user message. */
export function fakeAnswer(
  model: string | undefined,
  messages: { role: string; content: string }[] | undefined,
): string {
  const last = [...(messages ?? [])].reverse().find((message) => message.role === 'user')?.content ?? '';
  return `${model ?? 'model'} says: ${[...last].reverse().join('')}`;
}

export async function startFakeOpenAI(options: FakeOpenAIOptions = {}): Promise<FakeOpenAI> {
  let requests = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const queued: FakeFailure[] = [];
  const received: FakeRequest[] = [];

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      requests += 1;
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      let body: FakeRequest['body'] = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as FakeRequest['body'];
      } catch {
        body = {};
      }
      const request: FakeRequest = {
        index: requests,
        path: req.url ?? '',
        authorization: req.headers.authorization,
        body,
      };
      received.push(request);
      const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
        inFlight -= 1;
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(payload));
      };
      setTimeout(() => {
        if (req.method !== 'POST' || !request.path.endsWith('/chat/completions'))
          return send(404, {
            error: { message: `No route ${req.method} ${request.path}`, type: 'invalid_request_error' },
          });
        if (options.apiKey !== undefined && request.authorization !== `Bearer ${options.apiKey}`)
          return send(401, {
            error: {
              message: `Incorrect API key provided: ${request.authorization?.replace(/^Bearer /, '') ?? '(none)'}.`,
              type: 'invalid_request_error',
              code: 'invalid_api_key',
            },
          });
        const failure = queued.shift() ?? options.failWhen?.(request.index, request);
        if (failure) {
          const headers: Record<string, string> = {};
          if (failure.retryAfter !== undefined) headers['retry-after'] = failure.retryAfter;
          if (failure.retryAfterMs !== undefined) headers['retry-after-ms'] = String(failure.retryAfterMs);
          if (failure.location !== undefined) headers.location = failure.location;
          return send(
            failure.status,
            {
              error: {
                message: failure.message ?? `Scripted failure ${failure.status}`,
                type: 'server_error',
              },
            },
            headers,
          );
        }
        const text = fakeAnswer(body.model, body.messages);
        const promptTokens = (body.messages ?? []).reduce((sum, message) => sum + message.content.length, 0);
        const maxTokens = body.max_tokens ?? Infinity;
        const words = text.split(' ');
        const cut = words.length > maxTokens;
        const content = cut ? words.slice(0, maxTokens).join(' ') : text;
        const completionTokens = Math.min(words.length, maxTokens);
        send(200, {
          id: `chatcmpl-${request.index}`,
          object: 'chat.completion',
          created: Math.floor(Date.now() / 1000),
          model: body.model ?? 'model',
          choices: [
            { index: 0, message: { role: 'assistant', content }, finish_reason: cut ? 'length' : 'stop' },
          ],
          usage: {
            prompt_tokens: promptTokens,
            completion_tokens: completionTokens,
            total_tokens: promptTokens + completionTokens,
          },
        });
      }, options.latencyMs ?? 0);
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    port,
    get requests() {
      return requests;
    },
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    received,
    failNext(...failures) {
      queued.push(...failures);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
