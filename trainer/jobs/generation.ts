// A generation job, keyed by its id: the items (prompt × version × sample index) are written once,
// then the pending ones are sent to their versions' OpenAI-compatible endpoints, each version
// keeping to its endpoint's concurrency limit (versions run side by side). Retryable errors (429,
// 5xx, timeouts, broken connections) are retried with exponential backoff and full jitter, waiting
// at least what Retry-After asks; other errors fail the item at once. Results are written in
// batches, at most every `progressMs`: one statement stores the responses (at most one per
// prompt, version and sample index: ON CONFLICT DO NOTHING), closes their items and adds to the
// job's counts, so a retried, restarted or killed attempt never stores a response twice, and the
// next attempt sends only the items still pending.
import type {
  ChatMessage,
  EndpointClient,
  EndpointError as EndpointErrorType,
  EndpointTarget,
} from '../../core/endpoints/client.js';
import { poolOf, type GenerationJob, type PrismaClient } from '../../core/db/client.js';
import type { PromptSelection } from '../../core/schemas/generations.js';
import { selectedPromptsSql } from '../../core/services/generations.js';

export interface RetryPolicy {
  /** Requests per item, the first included. */
  maxAttempts: number;
  /** Backoff before retry n is uniform in [0, min(capMs, baseMs · 2^(n-1))] (full jitter). */
  baseMs: number;
  capMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 6, baseMs: 500, capMs: 30_000 };

export interface GenerationDeps {
  /** An external version's endpoint, its key decrypted. */
  target(versionId: string): Promise<EndpointTarget>;
  client(target: EndpointTarget): EndpointClient;
  log?(message: string): void;
  retry?: Partial<RetryPolicy>;
  /** How often results and counts are written, and cancellation looked for. */
  progressMs?: number;
  /** Aborted when the worker stops or loses the job: the attempt ends, the job stays pending. */
  signal?: AbortSignal;
  random?: () => number;
}

/** Raised when the worker's own signal stopped the attempt; pg-boss retries the job. */
export class GenerationInterrupted extends Error {}

interface Item {
  id: string;
  promptId: string;
  versionId: string;
  sampleIndex: number;
  attempts: number;
}

interface Outcome {
  id: string;
  promptId: string;
  versionId: string;
  sampleIndex: number;
  ok: boolean;
  text: string | null;
  samplingParams: Record<string, unknown> | null;
  metadata: Record<string, unknown> | null;
  attempts: number;
  error: string | null;
  latencyMs: number | null;
  finishReason: string | null;
  promptTokens: number | null;
  completionTokens: number | null;
}

/** What an endpoint error says about retrying, whether or not it is the client's EndpointError. */
function retryInfo(error: unknown): { retryable: boolean; retryAfterMs?: number } {
  const e = error as Partial<EndpointErrorType> | null;
  if (e && typeof e === 'object' && typeof e.retryable === 'boolean')
    return { retryable: e.retryable, retryAfterMs: e.retryAfterMs };
  return { retryable: false };
}

/** An error's message with the key taken out, bounded in length. */
export function safeMessage(error: unknown, apiKey: string | undefined): string {
  let message = error instanceof Error ? error.message : String(error);
  if (apiKey && apiKey.length >= 4) message = message.split(apiKey).join('[redacted]');
  return message.slice(0, 500);
}

/** A prompt's stored conversation as chat messages (other roles and non-text parts left out). */
export function chatMessages(messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages)) return [];
  return messages.flatMap((message: unknown) => {
    const { role, content } = (message ?? {}) as { role?: unknown; content?: unknown };
    if (typeof content !== 'string') return [];
    if (role !== 'system' && role !== 'user' && role !== 'assistant') return [];
    return [{ role, content }];
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function runGeneration(
  prisma: PrismaClient,
  jobId: string,
  deps: GenerationDeps,
): Promise<void> {
  const log = deps.log ?? (() => {});
  const job = await claim(prisma, jobId);
  if (!job) return;
  try {
    await expand(prisma, job);
    await settleExisting(prisma, job.id);
    const items = await pendingItems(prisma, job.id);
    if (items.length === 0) {
      await finish(prisma, job, 'SUCCEEDED', null);
      return;
    }
    log(`generation ${job.id}: ${items.length} responses to request (attempt ${job.attempt})`);
    const outcome = await new GenerationRun(prisma, job, items, deps).run();
    if (outcome === 'interrupted') throw new GenerationInterrupted('The worker stopped; the job is retried.');
    if (outcome === 'cancelled') {
      await finish(prisma, job, 'CANCELLED', null);
      log(`generation ${job.id}: cancelled`);
      return;
    }
    const counts = await prisma.generationJob.findUniqueOrThrow({ where: { id: job.id } });
    if (counts.done === 0 && counts.failed > 0) {
      const example = await prisma.generationItem.findFirst({
        where: { jobId: job.id, status: 'FAILED' },
        select: { lastError: true },
      });
      await finish(
        prisma,
        job,
        'FAILED',
        `Every request failed; for example: ${example?.lastError ?? 'unknown error'}`,
      );
    } else await finish(prisma, job, 'SUCCEEDED', null);
    log(`generation ${job.id}: ${counts.done} done, ${counts.failed} failed of ${counts.total}`);
  } catch (error) {
    if (error instanceof GenerationInterrupted) throw error;
    if (error instanceof JobConfigurationError) {
      await finish(prisma, job, 'FAILED', error.message);
      return;
    }
    // The database or something unforeseen: pg-boss retries the job, which resumes the pending items.
    throw error;
  }
}

/** A reason the job cannot run at all (a version without a usable endpoint): it fails, no retry. */
class JobConfigurationError extends Error {}

/** Claims the job for this attempt; a cancelled or finished job ends here. */
async function claim(prisma: PrismaClient, jobId: string): Promise<GenerationJob | null> {
  const claimed = await prisma.$queryRaw<GenerationJob[]>`
    UPDATE "GenerationJob"
    SET status = 'RUNNING', attempt = attempt + 1, "startedAt" = COALESCE("startedAt", now()),
        error = NULL, "updatedAt" = now()
    WHERE id = ${jobId}::uuid AND status IN ('QUEUED', 'RUNNING') AND "cancelRequestedAt" IS NULL
    RETURNING *`;
  if (claimed[0]) return claimed[0];
  await prisma.generationJob.updateMany({
    where: { id: jobId, status: { in: ['QUEUED', 'RUNNING'] } },
    data: { status: 'CANCELLED', finishedAt: new Date() },
  });
  return null;
}

/**
 * Writes the job's items once (the first attempt; a later one finds them written). An item whose
 * response exists already (an earlier job asked for the same prompt, version and sample) is done.
 */
async function expand(prisma: PrismaClient, job: GenerationJob): Promise<void> {
  if (job.expandedAt) return;
  const prompts = selectedPromptsSql(job.projectId, job.selection as PromptSelection);
  await prisma.$transaction(async (tx) => {
    await tx.$executeRaw`
      INSERT INTO "GenerationItem" ("jobId", "promptId", "policyVersionId", "sampleIndex", status)
      SELECT ${job.id}::uuid, p.id, v.id, s.i,
        CASE WHEN EXISTS (
          SELECT 1 FROM "Response" r
          WHERE r."promptId" = p.id AND r."policyVersionId" = v.id AND r."sampleIndex" = s.i
        ) THEN 'DONE' ELSE 'PENDING' END::"GenerationItemStatus"
      FROM (${prompts}) p
      CROSS JOIN (
        SELECT pv.id FROM "PolicyVersion" pv
        WHERE pv.id = ANY(string_to_array(${job.versionIds.join(',')}::text, ',')::uuid[])
      ) v
      CROSS JOIN generate_series(0, ${job.samplesPerPrompt}::int - 1) s(i)
      ON CONFLICT ("jobId", "promptId", "policyVersionId", "sampleIndex") DO NOTHING`;
    await tx.$executeRaw`
      UPDATE "GenerationJob" j SET "expandedAt" = now(), "updatedAt" = now(),
        total = c.total, done = c.done, failed = c.failed
      FROM (
        SELECT count(*)::int AS total,
          count(*) FILTER (WHERE status = 'DONE')::int AS done,
          count(*) FILTER (WHERE status = 'FAILED')::int AS failed
        FROM "GenerationItem" WHERE "jobId" = ${job.id}::uuid
      ) c
      WHERE j.id = ${job.id}::uuid`;
  });
}

/** Pending items whose response another job stored meanwhile are done; the counts are recounted. */
async function settleExisting(prisma: PrismaClient, jobId: string): Promise<void> {
  await prisma.$transaction(async (tx) => {
    await tx.$executeRaw`
      UPDATE "GenerationItem" i SET status = 'DONE', "updatedAt" = now()
      FROM "Response" r
      WHERE i."jobId" = ${jobId}::uuid AND i.status = 'PENDING'
        AND r."promptId" = i."promptId" AND r."policyVersionId" = i."policyVersionId"
        AND r."sampleIndex" = i."sampleIndex"`;
    await tx.$executeRaw`
      UPDATE "GenerationJob" j SET done = c.done, failed = c.failed, "updatedAt" = now()
      FROM (
        SELECT count(*) FILTER (WHERE status = 'DONE')::int AS done,
          count(*) FILTER (WHERE status = 'FAILED')::int AS failed
        FROM "GenerationItem" WHERE "jobId" = ${jobId}::uuid
      ) c
      WHERE j.id = ${jobId}::uuid`;
  });
}

/** The items still pending, in the order they were written (read without Prisma: up to 100,000). */
async function pendingItems(prisma: PrismaClient, jobId: string): Promise<Item[]> {
  const { rows } = await poolOf(prisma).query<Item>(
    `SELECT id::text AS id, "promptId", "policyVersionId" AS "versionId", "sampleIndex", attempts
     FROM "GenerationItem" WHERE "jobId" = $1 AND status = 'PENDING' ORDER BY id`,
    [jobId],
  );
  return rows;
}

/** Ends the job, if this attempt still owns it. */
async function finish(
  prisma: PrismaClient,
  job: GenerationJob,
  status: 'SUCCEEDED' | 'FAILED' | 'CANCELLED',
  error: string | null,
): Promise<void> {
  await prisma.generationJob.updateMany({
    where: { id: job.id, attempt: job.attempt, status: 'RUNNING' },
    data: { status, error, finishedAt: new Date() },
  });
}

/** The results of one flush, stored in one statement (see the file's head). */
const FLUSH_SQL = `
WITH input AS (
  SELECT * FROM jsonb_to_recordset($2::jsonb) AS t(
    id bigint, "promptId" uuid, "versionId" uuid, "sampleIndex" int, ok boolean, text text,
    "samplingParams" jsonb, metadata jsonb, attempts int, error text, "latencyMs" int,
    "finishReason" text, "promptTokens" int, "completionTokens" int)
), stored AS (
  INSERT INTO "Response" ("promptId", "policyVersionId", "sampleIndex", text, "samplingParams", metadata)
  SELECT t."promptId", t."versionId", t."sampleIndex", t.text, t."samplingParams", t.metadata
  FROM input t
  WHERE t.ok AND EXISTS (SELECT 1 FROM "Prompt" p WHERE p.id = t."promptId")
    AND EXISTS (SELECT 1 FROM "PolicyVersion" v WHERE v.id = t."versionId")
  ORDER BY t.id
  ON CONFLICT ("promptId", "policyVersionId", "sampleIndex") DO NOTHING
  RETURNING 1
), closed AS (
  UPDATE "GenerationItem" i
  SET status = (CASE WHEN t.ok THEN 'DONE' ELSE 'FAILED' END)::"GenerationItemStatus",
      attempts = t.attempts, "lastError" = t.error, "latencyMs" = t."latencyMs",
      "finishReason" = t."finishReason", "promptTokens" = t."promptTokens",
      "completionTokens" = t."completionTokens", "updatedAt" = now()
  FROM input t
  WHERE i.id = t.id AND i.status = 'PENDING'
  RETURNING i.status
)
UPDATE "GenerationJob"
SET done = done + (SELECT count(*) FROM closed WHERE status = 'DONE'),
    failed = failed + (SELECT count(*) FROM closed WHERE status = 'FAILED'),
    "updatedAt" = now()
WHERE id = $1::uuid
RETURNING "cancelRequestedAt" IS NOT NULL AS cancel`;

type RunOutcome = 'finished' | 'cancelled' | 'interrupted';

/** One attempt's work: lanes per version, a shared writer, cancellation. */
class GenerationRun {
  private readonly retry: RetryPolicy;
  private readonly random: () => number;
  private readonly abort = new AbortController();
  private readonly buffer: Outcome[] = [];
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private stopping: 'cancelled' | 'interrupted' | null = null;
  private inFlight = 0;
  private waiting = 0;
  private wake: (() => void) | null = null;
  /** Set once the lanes are idle: the write loop ends. */
  private done = false;
  private messages = new Map<string, ChatMessage[]>();
  private readonly clients = new Map<string, EndpointClient>();

  constructor(
    private readonly prisma: PrismaClient,
    private readonly job: GenerationJob,
    private readonly items: Item[],
    private readonly deps: GenerationDeps,
  ) {
    this.retry = { ...DEFAULT_RETRY, ...deps.retry };
    this.random = deps.random ?? Math.random;
  }

  async run(): Promise<RunOutcome> {
    const targets = new Map<string, EndpointTarget>();
    for (const versionId of new Set(this.items.map((item) => item.versionId))) {
      try {
        targets.set(versionId, await this.deps.target(versionId));
      } catch (error) {
        const version = await this.prisma.policyVersion.findUnique({ where: { id: versionId } });
        throw new JobConfigurationError(
          `Version "${version?.name ?? versionId}" cannot be called: ${safeMessage(error, undefined)}`,
        );
      }
    }
    this.messages = await this.promptMessages();
    const lanes = [...targets].map(
      ([versionId, target]) =>
        new Lane(
          target,
          this.items.filter((item) => item.versionId === versionId),
          (item) => this.clientFor(target, item.sampleIndex),
        ),
    );
    const onExternalAbort = () => this.stop('interrupted');
    this.deps.signal?.addEventListener('abort', onExternalAbort);
    if (this.deps.signal?.aborted) this.stop('interrupted');

    const writer = this.writeLoop();
    try {
      for (const lane of lanes) this.pump(lane);
      await new Promise<void>((resolve) => {
        this.wake = () => {
          const idle = this.inFlight === 0 && (this.stopping || this.waiting === 0);
          const empty = lanes.every((lane) => lane.queue.length === 0);
          if (idle && (this.stopping || empty)) resolve();
        };
        this.wake();
      });
    } finally {
      this.deps.signal?.removeEventListener('abort', onExternalAbort);
      for (const timer of this.timers) clearTimeout(timer);
      this.done = true;
      await writer;
    }
    await this.flush();
    return this.stopping ?? 'finished';
  }

  /** Every `progressMs`: write the results so far and look for a cancellation. */
  private async writeLoop(): Promise<void> {
    const interval = this.deps.progressMs ?? 500;
    while (!this.done) {
      await sleep(interval);
      if (this.done) return;
      const cancel = await this.flush();
      if (cancel) this.stop('cancelled');
    }
  }

  /** Writes buffered results; answers whether the job's cancellation was asked for. */
  private async flush(): Promise<boolean> {
    const batch = this.buffer.splice(0, this.buffer.length);
    if (batch.length === 0) {
      const job = await this.prisma.generationJob.findUnique({
        where: { id: this.job.id },
        select: { cancelRequestedAt: true },
      });
      return !job || job.cancelRequestedAt !== null;
    }
    try {
      const result = await poolOf(this.prisma).query<{ cancel: boolean }>(FLUSH_SQL, [
        this.job.id,
        JSON.stringify(batch),
      ]);
      return result.rows[0]?.cancel ?? true;
    } catch (error) {
      // Kept for the next flush; the database may be back by then.
      this.buffer.unshift(...batch);
      this.deps.log?.(`generation ${this.job.id}: could not write results: ${safeMessage(error, undefined)}`);
      return false;
    }
  }

  private stop(why: 'cancelled' | 'interrupted'): void {
    if (this.stopping) return;
    this.stopping = why;
    this.abort.abort(new Error(`generation ${why}`));
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.waiting = 0;
    this.wake?.();
  }

  /** One client per version, or per version and sample when a seed is set (sample i: seed + i). */
  private clientFor(target: EndpointTarget, sampleIndex: number): EndpointClient {
    const seeded = target.settings.seed !== undefined;
    const key = `${target.baseUrl}\u0000${target.model}\u0000${seeded ? sampleIndex : ''}`;
    let client = this.clients.get(key);
    if (!client) {
      client = this.deps.client(
        seeded
          ? { ...target, settings: { ...target.settings, seed: target.settings.seed! + sampleIndex } }
          : target,
      );
      this.clients.set(key, client);
    }
    return client;
  }

  /** The conversations of the prompts still pending. */
  private async promptMessages(): Promise<Map<string, ChatMessage[]>> {
    const { rows } = await poolOf(this.prisma).query<{ id: string; messages: unknown }>(
      `SELECT p.id, p.messages FROM "Prompt" p
       WHERE p.id IN (SELECT "promptId" FROM "GenerationItem" WHERE "jobId" = $1 AND status = 'PENDING')`,
      [this.job.id],
    );
    return new Map(rows.map((row) => [row.id, chatMessages(row.messages)]));
  }

  /** Starts items of the lane while it has free slots. */
  private pump(lane: Lane): void {
    while (!this.stopping && lane.active < lane.limit && lane.queue.length > 0) {
      const item = lane.queue.shift()!;
      lane.active++;
      this.inFlight++;
      void this.attempt(lane, item, this.messages.get(item.promptId) ?? []).finally(() => {
        lane.active--;
        this.inFlight--;
        this.pump(lane);
        this.wake?.();
      });
    }
  }

  private async attempt(lane: Lane, item: Item, messages: ChatMessage[]): Promise<void> {
    const { target } = lane;
    if (messages.length === 0) {
      this.buffer.push(this.failure(item, 'The prompt has no messages to send.'));
      return;
    }
    item.attempts++;
    try {
      const completion = await lane.client(item).complete(messages, { signal: this.abort.signal });
      if (this.stopping) return;
      const usage = completion.usage;
      this.buffer.push({
        id: item.id,
        promptId: item.promptId,
        versionId: item.versionId,
        sampleIndex: item.sampleIndex,
        ok: true,
        text: completion.text,
        samplingParams: {
          model: target.model,
          ...target.settings,
          ...(target.settings.seed !== undefined ? { seed: target.settings.seed + item.sampleIndex } : {}),
        },
        metadata: {
          generationJobId: this.job.id,
          model: completion.model,
          finishReason: completion.finishReason,
          latencyMs: completion.latencyMs,
          usage,
          attempts: item.attempts,
        },
        attempts: item.attempts,
        error: null,
        latencyMs: Math.round(completion.latencyMs),
        finishReason: completion.finishReason,
        promptTokens: usage?.promptTokens ?? null,
        completionTokens: usage?.completionTokens ?? null,
      });
    } catch (error) {
      if (this.stopping) return;
      const message = safeMessage(error, target.apiKey);
      const { retryable, retryAfterMs } = retryInfo(error);
      if (!retryable || item.attempts >= this.retry.maxAttempts) {
        this.buffer.push(
          this.failure(item, retryable ? `${message} (gave up after ${item.attempts} attempts)` : message),
        );
        return;
      }
      const backoff =
        this.random() * Math.min(this.retry.capMs, this.retry.baseMs * 2 ** (item.attempts - 1));
      const delay = Math.max(backoff, retryAfterMs ?? 0);
      this.waiting++;
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.waiting--;
        // First in line: a retry left behind the fresh items would lengthen the job's tail.
        lane.queue.unshift(item);
        this.pump(lane);
        this.wake?.();
      }, delay);
      this.timers.add(timer);
    }
  }

  private failure(item: Item, error: string): Outcome {
    return {
      id: item.id,
      promptId: item.promptId,
      versionId: item.versionId,
      sampleIndex: item.sampleIndex,
      ok: false,
      text: null,
      samplingParams: null,
      metadata: null,
      attempts: item.attempts,
      error,
      latencyMs: null,
      finishReason: null,
      promptTokens: null,
      completionTokens: null,
    };
  }
}

/** One version's endpoint: its pending items and its concurrency limit. */
class Lane {
  active = 0;
  readonly limit: number;

  constructor(
    readonly target: EndpointTarget,
    readonly queue: Item[],
    readonly client: (item: Item) => EndpointClient,
  ) {
    this.limit = Math.max(1, Math.floor(target.concurrency));
  }
}
