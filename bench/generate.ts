// Generation throughput against an endpoint's concurrency limit: 5,000 prompts answered by one
// external version through the real job handler (trainer/jobs/generation.ts), the real endpoint
// client (the official openai package) and a fresh database, from a fake OpenAI-compatible server
// on loopback that answers every request after a fixed latency (200 ms) and fails a share of them
// (10%) with a transient error, half 429 with Retry-After, half 500. With a concurrency limit of
// 32 the ceiling is 32 / 0.2 s = 160 responses/s; the ratio is the rate achieved over the whole
// job (expansion, requests, retries, writes) against it. Duplicates and lost responses are
// counted from the database: stored responses per (prompt, version, sample) beyond one, and keys
// with none.
// Ends with `generate: ceiling_ratio=<ratio> duplicates=<n> lost=<n>`.
import { once } from 'node:events';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { benchDatabase } from './database.js';
import { createPrisma } from '../core/db/client.js';
import { createEndpointClient } from '../core/endpoints/client.js';
import { runGeneration } from '../trainer/jobs/generation.js';

const PROMPTS = Number(process.env.BENCH_GENERATE_PROMPTS ?? 5000);
const LATENCY_MS = Number(process.env.BENCH_GENERATE_LATENCY_MS ?? 200);
const ERROR_RATE = Number(process.env.BENCH_GENERATE_ERROR_RATE ?? 0.1);
const CONCURRENCY = 32;
/** What the 429s ask to wait, in seconds (the header's unit). */
const RETRY_AFTER_S = 1;

interface FakeStats {
  requests: number;
  answered: number;
  errors429: number;
  errors500: number;
  maxInFlight: number;
}

/**
 * The endpoint's server, in a thread of its own (an endpoint runs elsewhere; here it must not take
 * the handler's event loop): fixed latency, a seeded share of transient failures.
 */
const FAKE_SERVER = `
const http = require('node:http');
const { parentPort, workerData } = require('node:worker_threads');
const { latencyMs, errorRate, retryAfterS } = workerData;
let state = 12345;
const random = () => { state = (Math.imul(state, 1103515245) + 12345) >>> 0; return state / 4294967296; };
const stats = { requests: 0, answered: 0, errors429: 0, errors500: 0, maxInFlight: 0 };
let inFlight = 0;
const server = http.createServer((request, response) => {
  const chunks = [];
  request.on('data', (chunk) => chunks.push(chunk));
  request.on('end', () => {
    stats.requests++;
    inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, inFlight);
    const roll = random();
    setTimeout(() => {
      inFlight--;
      if (roll < errorRate / 2) {
        stats.errors429++;
        response.writeHead(429, { 'content-type': 'application/json', 'retry-after': String(retryAfterS) });
        response.end(JSON.stringify({ error: { message: 'Rate limit reached', type: 'rate_limit' } }));
        return;
      }
      if (roll < errorRate) {
        stats.errors500++;
        response.writeHead(500, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ error: { message: 'Internal error', type: 'server_error' } }));
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      stats.answered++;
      const last = body.messages[body.messages.length - 1];
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({
        id: 'chatcmpl-' + stats.requests,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model: body.model,
        choices: [{ index: 0, message: { role: 'assistant', content: 'Answer to ' + (last ? last.content : '') }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 12, completion_tokens: 8, total_tokens: 20 },
      }));
    }, latencyMs);
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
parentPort.on('message', () => parentPort.postMessage({ stats }));
`;

async function startFakeEndpoint(): Promise<{
  url: string;
  stats(): Promise<FakeStats>;
  close(): Promise<void>;
}> {
  const worker = new Worker(FAKE_SERVER, {
    eval: true,
    workerData: { latencyMs: LATENCY_MS, errorRate: ERROR_RATE, retryAfterS: RETRY_AFTER_S },
  });
  const [{ port }] = (await once(worker, 'message')) as [{ port: number }];
  return {
    url: `http://127.0.0.1:${port}/v1`,
    async stats() {
      worker.postMessage('stats');
      const [{ stats }] = (await once(worker, 'message')) as [{ stats: FakeStats }];
      return stats;
    },
    close: async () => void (await worker.terminate()),
  };
}

export async function main(): Promise<void> {
  const database = await benchDatabase('generate');
  const prisma = createPrisma(database.url, { max: 2 });
  const fake = await startFakeEndpoint();
  try {
    const project = await prisma.project.create({ data: { name: 'Generation bench' } });
    await prisma.$executeRaw`
      INSERT INTO "Prompt" ("projectId", messages, "externalId")
      SELECT ${project.id}::uuid,
        jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'Question ' || g || ': what is ' || g || ' + 1?')),
        'q-' || g
      FROM generate_series(1, ${PROMPTS}) g`;
    const version = await prisma.policyVersion.create({
      data: {
        projectId: project.id,
        name: 'fake-model',
        kind: 'EXTERNAL',
        endpointUrl: fake.url,
        endpointModel: 'fake-model',
      },
    });
    const job = await prisma.generationJob.create({
      data: {
        projectId: project.id,
        selection: {},
        versionIds: [version.id],
        samplesPerPrompt: 1,
        total: PROMPTS,
      },
    });
    const target = {
      baseUrl: fake.url,
      model: 'fake-model',
      settings: { temperature: 1, maxTokens: 64 },
      concurrency: CONCURRENCY,
    };
    console.log(
      `${PROMPTS} responses, concurrency ${CONCURRENCY}, latency ${LATENCY_MS} ms, ${ERROR_RATE * 100}% transient errors (429 with Retry-After: ${RETRY_AFTER_S} s, 500)`,
    );
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    await runGeneration(prisma, job.id, {
      target: async () => target,
      client: (t) => createEndpointClient(t, { allowHosts: ['127.0.0.1'] }),
      log: (message) => console.log(message),
    });
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);

    const [row] = await prisma.$queryRaw<{ stored: bigint; keys: bigint }[]>`
      SELECT count(*) AS stored, count(DISTINCT ("promptId", "policyVersionId", "sampleIndex")) AS keys
      FROM "Response" WHERE "policyVersionId" = ${version.id}::uuid`;
    const stored = Number(row?.stored ?? 0);
    const keys = Number(row?.keys ?? 0);
    const duplicates = stored - keys;
    const lost = PROMPTS - keys;
    const final = await prisma.generationJob.findUniqueOrThrow({ where: { id: job.id } });
    const rate = keys / seconds;
    const ceiling = CONCURRENCY / (LATENCY_MS / 1000);
    console.log(
      `job ${final.status}: ${final.done} done, ${final.failed} failed in ${seconds.toFixed(1)} s (${rate.toFixed(1)} responses/s, ceiling ${ceiling}/s)`,
    );
    // What made items fail (a lost response is a failed item; its error says why).
    const failures = await prisma.$queryRaw<{ error: string | null; attempts: number; n: bigint }[]>`
      SELECT "lastError" AS error, attempts, count(*) AS n FROM "GenerationItem"
      WHERE "jobId" = ${job.id}::uuid AND status <> 'DONE'
      GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 5`;
    for (const failure of failures)
      console.log(
        `not done: ${failure.n} × after ${failure.attempts} attempts: ${failure.error ?? 'no error'}`,
      );
    // This process: the handler, the client and the fake endpoint's thread together.
    console.log(
      `cpu: ${((cpu.user + cpu.system) / 1000 / keys).toFixed(2)} ms per response (${(((cpu.user + cpu.system) / 1e6 / seconds) * 100).toFixed(0)}% of a core); load average ${os.loadavg()[0]!.toFixed(1)}`,
    );
    const stats = await fake.stats();
    console.log(
      `endpoint: ${stats.requests} requests, ${stats.answered} answered, ${stats.errors429} × 429, ${stats.errors500} × 500, at most ${stats.maxInFlight} at once`,
    );
    console.log(
      `generate: ceiling_ratio=${(rate / ceiling).toFixed(3)} duplicates=${duplicates} lost=${lost}`,
    );
  } finally {
    await prisma.$disconnect();
    await fake.close();
    await database.drop();
  }
}
