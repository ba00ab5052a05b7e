// An OpenAI-compatible chat-completions server on loopback whose every answer a test can script
// (status, headers, error message, delay), recording each request: when it came, what it carried,
// how many were in flight per model, and which ones the client gave up on (closed before the answer).
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ScriptedRequest {
  /** 0, 1, 2, ... in arrival order since the last reset. */
  index: number;
  /** Arrival time (ms since the epoch). */
  at: number;
  model: string;
  messages: { role: string; content: string }[];
  lastContent: string;
  authorization: string | undefined;
  body: Record<string, unknown>;
  /** The status answered (0 until answered, or when the client went away first). */
  status: number;
}

export interface ScriptedAnswer {
  status?: number;
  headers?: Record<string, string>;
  /** For an error status: the error message in OpenAI's error body. */
  error?: string;
  /** Wait this long before answering. */
  delayMs?: number;
  /** For a success: the text (default "<model> says: <last message>"). */
  text?: string;
}

export interface ScriptedEndpoint {
  /** The base URL, ending in /v1. */
  url: string;
  requests: ScriptedRequest[];
  /** The answer to each request; null (or no script) answers 200 at once. */
  script(fn: (request: ScriptedRequest) => ScriptedAnswer | null): void;
  inFlight(): number;
  maxInFlight(model: string): number;
  maxInFlightTotal: number;
  /** Requests whose connection closed before they were answered. */
  aborted(): number;
  reset(): void;
  close(): Promise<void>;
}

export async function startScriptedEndpoint(): Promise<ScriptedEndpoint> {
  let scriptFn: ((request: ScriptedRequest) => ScriptedAnswer | null) | null = null;
  let requests: ScriptedRequest[] = [];
  let inFlight = new Map<string, number>();
  let maxPerModel = new Map<string, number>();
  let abortedCount = 0;
  let total = 0;

  const endpoint: ScriptedEndpoint = {
    url: '',
    get requests() {
      return requests;
    },
    script: (fn) => (scriptFn = fn),
    inFlight: () => total,
    maxInFlight: (model) => maxPerModel.get(model) ?? 0,
    maxInFlightTotal: 0,
    aborted: () => abortedCount,
    reset() {
      scriptFn = null;
      requests = [];
      inFlight = new Map();
      maxPerModel = new Map();
      abortedCount = 0;
      endpoint.maxInFlightTotal = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'Not found' } }));
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      const messages = (body.messages ?? []) as { role: string; content: string }[];
      const request: ScriptedRequest = {
        index: requests.length,
        at: Date.now(),
        model: String(body.model),
        messages,
        lastContent: messages.at(-1)?.content ?? '',
        authorization: req.headers.authorization,
        body,
        status: 0,
      };
      requests.push(request);
      const model = request.model;
      inFlight.set(model, (inFlight.get(model) ?? 0) + 1);
      total++;
      maxPerModel.set(model, Math.max(maxPerModel.get(model) ?? 0, inFlight.get(model)!));
      endpoint.maxInFlightTotal = Math.max(endpoint.maxInFlightTotal, total);
      let settled = false;
      const settle = () => {
        if (settled) return false;
        settled = true;
        inFlight.set(model, inFlight.get(model)! - 1);
        total--;
        return true;
      };
      res.on('close', () => {
        if (!res.writableFinished && settle()) abortedCount++;
      });
      const answer = scriptFn?.(request) ?? {};
      const respond = () => {
        if (!settle()) return;
        const status = answer.status ?? 200;
        request.status = status;
        res.writeHead(status, { 'content-type': 'application/json', ...answer.headers });
        if (status >= 400) {
          res.end(JSON.stringify({ error: { message: answer.error ?? `Error ${status}`, type: 'error' } }));
          return;
        }
        res.end(
          JSON.stringify({
            id: `chatcmpl-${request.index}`,
            object: 'chat.completion',
            created: Math.floor(Date.now() / 1000),
            model,
            choices: [
              {
                index: 0,
                message: {
                  role: 'assistant',
                  content: answer.text ?? `${model} says: ${request.lastContent}`,
                },
                finish_reason: 'stop',
              },
            ],
            usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 },
          }),
        );
      };
      if (answer.delayMs) setTimeout(respond, answer.delayMs);
      else respond();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  return endpoint;
}
