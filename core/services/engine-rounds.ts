// Rounds on external training engines (TRL first), the engine-neutral protocol: launch freezes the
// round's snapshot and chooses its comparison prompts, then queues it for workers, not for the
// built-in trainer. A worker claims it (a lease and an attempt number that fences off every earlier
// attempt), heartbeats (and learns of cancellation there), sends events and metrics, and finally
// results (reward-model metrics, the new version, its new-vs-parent responses) or a failure.
import type { Prisma, PrismaClient, Project, TrainingRound } from '../db/client.js';
import { badRequest, conflict, HttpError, notFound } from '../errors.js';
import type { Config } from '../config.js';
import {
  ENGINE_DEFAULTS,
  type Claim,
  type EngineSettings,
  type EventsBody,
  type ResultsBody,
} from '../schemas/engine.js';
import { ROUND_DEFAULTS } from '../schemas/round-defaults.js';
import type { CreateRoundBody } from '../schemas/rounds.js';
import { recordAudit } from './audit.js';
import { comparable, seededRandom, shuffled } from './comparisons.js';
import { checkedBaseUrl } from './endpoints.js';
import { toRoundDto } from './rounds.js';
import { createRoundSnapshot, ROUND_SNAPSHOT_SPEC } from './snapshots.js';
import type { Actor } from './users.js';

/** What an external round's workers train on: TRL rows with the `margin` column from strengths. */
const ENGINE_SNAPSHOT_SPEC = { ...ROUND_SNAPSHOT_SPEC, options: { margin: true } };

/** A lease without heartbeats lasts this long by default. */
export const DEFAULT_LEASE_SECONDS = 120;

/** The prompt a worker generates from: the last user turn, as the built-in trainer reads it. */
function promptText(messages: unknown): string {
  const list = Array.isArray(messages) ? (messages as { role?: string; content?: string }[]) : [];
  return (
    [...list].reverse().find((message) => message.role === 'user')?.content ?? list.at(-1)?.content ?? ''
  );
}

function settingsOf(round: TrainingRound): Claim['settings'] {
  const stored = (round.engineSettings ?? {}) as EngineSettings;
  return { ...ENGINE_DEFAULTS, ...stored };
}

function attemptPaths(roundId: string, attempt: number): Claim['paths'] {
  const base = `/api/engine/rounds/${roundId}/attempts/${attempt}`;
  return {
    heartbeat: `${base}/heartbeat`,
    events: `${base}/events`,
    metrics: `${base}/metrics`,
    results: `${base}/results`,
    fail: `${base}/fail`,
  };
}

export class EngineRoundService {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly config: Pick<Config, 'outboundAllowHosts'>,
  ) {}

  /**
   * Queues a round for an external engine: its snapshot frozen now (the judgments the built-in
   * trainer would learn from), its comparison prompts chosen, and no job for the built-in trainer.
   */
  async launch(project: Project, body: CreateRoundBody, actor: Actor) {
    const engine = body.engine;
    if (engine !== 'trl') throw badRequest('Only external engines are launched here.');
    if (!body.engineSettings) throw badRequest('engineSettings.baseModel is required for the trl engine.');
    if (body.engineSettings.baseModel.trim() === '')
      throw badRequest('engineSettings.baseModel must not be blank.');
    const parentId = project.currentPolicyVersionId;
    if (!parentId) throw conflict('This project has no promoted policy version to train yet.');
    const active = await this.prisma.trainingRound.count({
      where: { projectId: project.id, status: { in: ['QUEUED', 'RUNNING'] } },
    });
    if (active > 0) throw conflict('A round of this project is already queued or running.');
    // The same judgments the built-in trainer freezes: raters an admin excluded are left out.
    const preferences = await this.prisma.preference.findMany({
      where: {
        comparison: { projectId: project.id, isGold: false },
        OR: [{ raterId: null }, { rater: { exclusions: { none: { projectId: project.id } } } }],
      },
      orderBy: { id: 'asc' },
      select: { id: true },
    });
    if (preferences.length < 4)
      throw conflict(`Only ${preferences.length} judgments so far; a round needs at least 4.`);
    const config = { ...ROUND_DEFAULTS, ...body.config };
    const last = await this.prisma.trainingRound.aggregate({
      where: { projectId: project.id },
      _max: { number: true },
    });
    const number = (last._max.number ?? 0) + 1;
    const snapshot = await createRoundSnapshot(
      this.prisma,
      project.id,
      `round-${number}-${Date.now().toString(36)}`,
      preferences.map((p) => p.id),
      ENGINE_SNAPSHOT_SPEC,
    );
    const prompts = config.generateComparisons
      ? await this.prisma.prompt.findMany({
          where: { projectId: project.id, split: 'TRAIN' },
          orderBy: { id: 'asc' },
          select: { id: true },
        })
      : [];
    const chosen = shuffled(prompts, seededRandom(config.seed + number))
      .slice(0, config.comparisonPrompts)
      .map((p) => p.id);
    try {
      const round = await this.prisma.$transaction(async (tx) => {
        // Checked again inside: an admin or the scheduler may have launched one meanwhile.
        const busy = await tx.trainingRound.count({
          where: { projectId: project.id, status: { in: ['QUEUED', 'RUNNING'] } },
        });
        if (busy > 0) throw conflict('A round of this project is already queued or running.');
        const created = await tx.trainingRound.create({
          data: {
            projectId: project.id,
            number,
            algorithm: body.algorithm ?? 'DPO',
            config: body.config ?? {},
            engine,
            engineSettings: { ...body.engineSettings, baseModel: body.engineSettings!.baseModel.trim() },
            comparisonPromptIds: chosen,
            inputPolicyVersionId: parentId,
            snapshotId: snapshot.id,
            createdById: actor.id,
            phase: 'waiting-for-worker',
          },
          include: { outputPolicyVersion: { select: { id: true } } },
        });
        await tx.roundEvent.create({
          data: {
            roundId: created.id,
            phase: 'snapshot',
            message: `Snapshot frozen (${snapshot.rowCount} rows); waiting for a ${engine} worker`,
          },
        });
        await recordAudit(tx, {
          actorId: actor.id,
          action: 'round.launch',
          targetType: 'round',
          targetId: created.id,
          details: { projectId: project.id, number, algorithm: created.algorithm, engine },
          ip: actor.ip ?? null,
        });
        return created;
      });
      return toRoundDto(round);
    } catch (error) {
      await this.prisma.datasetSnapshot.deleteMany({ where: { id: snapshot.id } });
      if (error instanceof Error && 'code' in error && error.code === 'P2002')
        throw conflict('Another round of this project was launched at the same moment.');
      throw error;
    }
  }

  /**
   * Gives the oldest waiting round of the engine to this worker: a queued one, or a running one
   * whose lease lapsed (its attempt is then fenced off). Null when there is none.
   */
  async claim(
    engine: 'trl',
    worker: string | null,
    leaseSeconds: number,
    actor: Actor,
  ): Promise<Claim | null> {
    // Rounds cancelled while their worker was gone end here, not in a claim.
    await this.prisma.trainingRound.updateMany({
      where: {
        engine,
        status: 'RUNNING',
        cancelRequestedAt: { not: null },
        leaseExpiresAt: { lt: new Date() },
      },
      data: { status: 'CANCELLED', phase: 'cancelled', finishedAt: new Date(), leaseExpiresAt: null },
    });
    const claimed = await this.prisma.$transaction(async (tx) => {
      const rows = await tx.$queryRaw<{ id: string }[]>`
        SELECT id FROM "TrainingRound"
        WHERE engine = ${engine} AND "cancelRequestedAt" IS NULL
          AND (status = 'QUEUED' OR (status = 'RUNNING' AND "leaseExpiresAt" < now()))
        ORDER BY "createdAt" ASC
        LIMIT 1
        FOR UPDATE SKIP LOCKED`;
      const id = rows[0]?.id;
      if (!id) return null;
      const now = new Date();
      const round = await tx.trainingRound.update({
        where: { id },
        data: {
          status: 'RUNNING',
          attempt: { increment: 1 },
          leaseExpiresAt: new Date(now.getTime() + leaseSeconds * 1000),
          workerName: worker,
          startedAt: now,
          phase: 'starting',
          error: null,
        },
      });
      await tx.roundEvent.create({
        data: {
          roundId: id,
          phase: 'claim',
          data: { attempt: round.attempt, worker },
          message:
            round.attempt > 1
              ? `Attempt ${round.attempt} took the round over${worker ? ` (${worker})` : ''}`
              : `Claimed by ${worker ?? 'a worker'}`,
        },
      });
      await recordAudit(tx, {
        actorId: actor.id,
        action: 'round.claim',
        targetType: 'round',
        targetId: id,
        details: { engine, attempt: round.attempt, worker },
        ip: actor.ip ?? null,
      });
      return round;
    });
    if (!claimed) return null;
    return this.describe(claimed);
  }

  private async describe(round: TrainingRound): Promise<Claim> {
    const [snapshot, parent, prompts] = await Promise.all([
      this.prisma.datasetSnapshot.findUniqueOrThrow({ where: { id: round.snapshotId! } }),
      this.prisma.policyVersion.findUniqueOrThrow({ where: { id: round.inputPolicyVersionId! } }),
      this.prisma.prompt.findMany({
        where: { id: { in: round.comparisonPromptIds } },
        select: { id: true, messages: true },
      }),
    ]);
    const order = new Map(round.comparisonPromptIds.map((id, i) => [id, i]));
    prompts.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
    return {
      roundId: round.id,
      projectId: round.projectId,
      number: round.number,
      attempt: round.attempt,
      leaseExpiresAt: round.leaseExpiresAt!.toISOString(),
      leaseSeconds: Math.round((round.leaseExpiresAt!.getTime() - Date.now()) / 1000),
      engine: 'trl',
      settings: settingsOf(round),
      snapshot: {
        id: snapshot.id,
        format: snapshot.format,
        rows: snapshot.rowCount,
        sha256: snapshot.contentHash,
        path: `/api/engine/rounds/${round.id}/attempts/${round.attempt}/snapshot`,
      },
      parent: { id: parent.id, name: parent.name, kind: parent.kind },
      comparisonPrompts: prompts.map((p) => ({
        id: p.id,
        text: promptText(p.messages),
        messages: p.messages,
      })),
      paths: attemptPaths(round.id, round.attempt),
    };
  }

  /**
   * The round while this attempt holds it; otherwise a 409 that says why (another attempt took
   * over, it ended, it was cancelled), so a fenced-out worker stops.
   */
  async held(roundId: string, attempt: number, db: Prisma.TransactionClient | PrismaClient = this.prisma) {
    const round = await db.trainingRound.findUnique({ where: { id: roundId } });
    if (!round) throw notFound('No such round.');
    if (round.engine === 'builtin') throw conflict('This round runs on the built-in trainer.');
    if (round.attempt !== attempt)
      throw new HttpError(
        409,
        round.attempt > attempt
          ? `Attempt ${attempt} no longer holds round ${round.number}: attempt ${round.attempt} took it over after its lease lapsed.`
          : `Round ${round.number} has no attempt ${attempt} (claim it first).`,
        'FENCED',
      );
    if (round.status !== 'RUNNING')
      throw new HttpError(
        409,
        `Round ${round.number} is ${round.status.toLowerCase()}; send nothing more.`,
        'ENDED',
      );
    return round;
  }

  /** Extends the lease; answers cancel (and ends the round) once an admin cancelled it. */
  async heartbeat(roundId: string, attempt: number, leaseSeconds: number) {
    const round = await this.held(roundId, attempt);
    const now = new Date();
    if (round.cancelRequestedAt) {
      const ended = await this.prisma.trainingRound.updateMany({
        where: { id: roundId, attempt, status: 'RUNNING' },
        data: { status: 'CANCELLED', phase: 'cancelled', finishedAt: now, leaseExpiresAt: null },
      });
      if (ended.count)
        await this.prisma.roundEvent.create({
          data: { roundId, phase: 'cancelled', message: `Cancelled; attempt ${attempt} told to stop` },
        });
      return { cancel: true, leaseExpiresAt: null };
    }
    const leaseExpiresAt = new Date(now.getTime() + leaseSeconds * 1000);
    const updated = await this.prisma.trainingRound.updateMany({
      where: { id: roundId, attempt, status: 'RUNNING' },
      data: { leaseExpiresAt },
    });
    if (updated.count === 0) await this.held(roundId, attempt); // lost a race: say why
    return { cancel: false, leaseExpiresAt: leaseExpiresAt.toISOString() };
  }

  /** Progress, loss and other events, stored as the built-in trainer stores them. */
  async events(roundId: string, attempt: number, body: EventsBody) {
    return this.prisma.$transaction(async (tx) => {
      await this.lock(tx, roundId);
      await this.held(roundId, attempt, tx);
      if (body.events.length)
        await tx.roundEvent.createMany({
          data: body.events.map((event) => ({
            roundId,
            phase: event.phase,
            step: event.step ?? null,
            data: (event.data ?? {}) as Prisma.InputJsonObject,
            message: event.message ?? null,
          })),
        });
      const phase = body.phase ?? body.events.findLast((event) => event.message)?.phase;
      if (phase !== undefined || body.progress !== undefined)
        await tx.trainingRound.update({
          where: { id: roundId },
          data: {
            ...(phase !== undefined ? { phase } : {}),
            ...(body.progress !== undefined ? { progress: body.progress } : {}),
          },
        });
      return { accepted: body.events.length };
    });
  }

  /** Metrics so far, merged into the round's (the final ones come with the results). */
  async metrics(roundId: string, attempt: number, metrics: Record<string, unknown>) {
    return this.prisma.$transaction(async (tx) => {
      await this.lock(tx, roundId);
      const round = await this.held(roundId, attempt, tx);
      const merged = { ...((round.metrics ?? {}) as Record<string, unknown>), ...metrics };
      await tx.trainingRound.update({
        where: { id: roundId },
        data: { metrics: merged as Prisma.InputJsonObject },
      });
      return { metrics: merged };
    });
  }

  /** The snapshot this attempt trains on (checked to be held first). */
  async snapshotOf(roundId: string, attempt: number) {
    const round = await this.held(roundId, attempt);
    return this.prisma.datasetSnapshot.findUniqueOrThrow({ where: { id: round.snapshotId! } });
  }

  /**
   * Publishes what the worker trained, in one transaction with the round's end: the reward model
   * (its metrics), the new version (EXTERNAL at its endpoint, or IMPORTED) and, for the round's
   * comparison prompts, its responses paired with its parent's for raters.
   */
  async results(roundId: string, attempt: number, body: ResultsBody, actor: Actor) {
    const version = body.version;
    let endpointUrl: string | null = null;
    if (version.kind === 'EXTERNAL') {
      if (!version.endpointUrl || !version.endpointModel)
        throw badRequest('An EXTERNAL version needs endpointUrl and endpointModel (where it is served).');
      endpointUrl = await checkedBaseUrl(this.config, version.endpointUrl);
    } else if (version.endpointUrl || version.endpointModel) {
      throw badRequest('An IMPORTED version has no endpoint; send kind EXTERNAL to register one.');
    }
    await this.held(roundId, attempt);
    const published = await this.prisma.$transaction(async (tx) => {
      await this.lock(tx, roundId);
      const round = await this.held(roundId, attempt, tx);
      if (round.cancelRequestedAt)
        throw new HttpError(409, `Round ${round.number} was cancelled.`, 'CANCELLED');
      const project = await tx.project.findUniqueOrThrow({ where: { id: round.projectId } });
      const allowed = new Set(round.comparisonPromptIds);
      const seen = new Set<string>();
      for (const response of body.responses) {
        if (!allowed.has(response.promptId))
          throw badRequest(`Prompt ${response.promptId} is not one of this round's comparison prompts.`);
        if (seen.has(response.promptId)) throw badRequest(`Prompt ${response.promptId} appears twice.`);
        seen.add(response.promptId);
      }
      const rewardModel = await tx.rewardModel.create({
        data: {
          projectId: round.projectId,
          roundId,
          kind: round.engine,
          metrics: body.rewardModel.metrics as Prisma.InputJsonObject,
        },
      });
      const metrics = {
        ...((round.metrics ?? {}) as Record<string, unknown>),
        ...body.metrics,
        rewardModelValAccuracy: body.rewardModel.metrics.heldOutAccuracy,
        engine: round.engine,
      };
      const name = version.name?.trim() || `round-${round.number}`;
      if (
        await tx.policyVersion.findUnique({ where: { projectId_name: { projectId: round.projectId, name } } })
      )
        throw conflict(`This project already has a version named "${name}".`);
      const created = await tx.policyVersion.create({
        data: {
          projectId: round.projectId,
          name,
          kind: version.kind,
          status: 'READY',
          parentId: round.inputPolicyVersionId,
          rewardModelId: rewardModel.id,
          snapshotId: round.snapshotId,
          roundId,
          endpointUrl,
          endpointModel: version.kind === 'EXTERNAL' ? version.endpointModel!.trim() : null,
          metrics: { ...metrics, ...version.metrics } as Prisma.InputJsonObject,
        },
      });
      // Equal texts are no comparison (a rater could not prefer one of them).
      const pairs = body.responses.filter((r) => comparable(r.text, r.parentText));
      for (const pair of pairs) {
        const [mine, theirs] = await Promise.all([
          tx.response.create({
            data: { promptId: pair.promptId, policyVersionId: created.id, text: pair.text },
          }),
          tx.response.create({
            data: {
              promptId: pair.promptId,
              policyVersionId: round.inputPolicyVersionId,
              text: pair.parentText,
            },
          }),
        ]);
        await tx.comparison.create({
          data: {
            projectId: round.projectId,
            promptId: pair.promptId,
            responseAId: mine.id,
            responseBId: theirs.id,
            requiredVotes: project.overlap,
            roundId,
          },
        });
      }
      const finished = await tx.trainingRound.update({
        where: { id: roundId },
        data: {
          status: 'SUCCEEDED',
          phase: 'done',
          progress: 1,
          metrics: metrics as Prisma.InputJsonObject,
          finishedAt: new Date(),
          leaseExpiresAt: null,
        },
        include: { outputPolicyVersion: { select: { id: true } } },
      });
      await tx.roundEvent.create({
        data: {
          roundId,
          phase: 'done',
          data: metrics as Prisma.InputJsonObject,
          message: `Round finished: version ${name} (${version.kind.toLowerCase()}), ${pairs.length} comparisons for raters`,
        },
      });
      await recordAudit(tx, {
        actorId: actor.id,
        action: 'round.results',
        targetType: 'round',
        targetId: roundId,
        details: { attempt, versionId: created.id, kind: version.kind, comparisons: pairs.length },
        ip: actor.ip ?? null,
      });
      return finished;
    });
    return toRoundDto(published);
  }

  /** The worker gave up: the round fails with its reason. */
  async fail(roundId: string, attempt: number, error: string) {
    const failed = await this.prisma.$transaction(async (tx) => {
      await this.lock(tx, roundId);
      await this.held(roundId, attempt, tx);
      const message = error.slice(0, 2000);
      await tx.roundEvent.create({ data: { roundId, phase: 'failed', message } });
      return tx.trainingRound.update({
        where: { id: roundId },
        data: {
          status: 'FAILED',
          phase: 'failed',
          error: message,
          finishedAt: new Date(),
          leaseExpiresAt: null,
        },
        include: { outputPolicyVersion: { select: { id: true } } },
      });
    });
    return toRoundDto(failed);
  }

  /** Serializes writes to one round, so a takeover and a late write cannot interleave. */
  private async lock(tx: Prisma.TransactionClient, roundId: string) {
    await tx.$queryRaw`SELECT id FROM "TrainingRound" WHERE id = ${roundId}::uuid FOR UPDATE`;
  }
}
