// Training rounds as the app sees them: launch (the round row and its job in one transaction),
// watch (status, progress, events), cancel; and policy versions: list, promote, roll back.
import type { PgBoss } from 'pg-boss';
import type { PolicyVersion, PrismaClient, Project, TrainingRound } from '../db/client.js';
import { conflict, HttpError, notFound } from '../errors.js';
import { enqueue } from '../jobs.js';
import type { CreateRoundBody } from '../schemas/rounds.js';
import { recordAudit } from './audit.js';
import { promotionOf, scheduleOf } from './project-settings.js';
import { promotionAuditDetails, promotionEvidence } from './promotion.js';
import type { Actor } from './users.js';

export function toRoundDto(round: TrainingRound & { outputPolicyVersion?: { id: string } | null }) {
  return {
    id: round.id,
    projectId: round.projectId,
    number: round.number,
    status: round.status,
    algorithm: round.algorithm as 'RLOO' | 'PPO' | 'GRPO' | 'DPO' | 'BEST_OF_N',
    config: (round.config ?? {}) as Record<string, unknown>,
    phase: round.phase,
    progress: round.progress,
    metrics: (round.metrics ?? {}) as Record<string, unknown>,
    error: round.error,
    attempt: round.attempt,
    inputPolicyVersionId: round.inputPolicyVersionId,
    outputPolicyVersionId: round.outputPolicyVersion?.id ?? null,
    snapshotId: round.snapshotId,
    cancelRequested: round.cancelRequestedAt !== null,
    engine: round.engine === 'trl' ? ('trl' as const) : ('builtin' as const),
    engineSettings: (round.engineSettings ?? {}) as Record<string, unknown>,
    leaseExpiresAt: round.leaseExpiresAt?.toISOString() ?? null,
    workerName: round.workerName,
    createdAt: round.createdAt.toISOString(),
    startedAt: round.startedAt?.toISOString() ?? null,
    finishedAt: round.finishedAt?.toISOString() ?? null,
  };
}

export function toPolicyVersionDto(version: PolicyVersion, currentId: string | null) {
  return {
    id: version.id,
    projectId: version.projectId,
    name: version.name,
    kind: version.kind,
    status: version.status,
    parentId: version.parentId,
    roundId: version.roundId,
    rewardModelId: version.rewardModelId,
    snapshotId: version.snapshotId,
    metrics: (version.metrics ?? {}) as Record<string, unknown>,
    current: version.id === currentId,
    promotedAt: version.promotedAt?.toISOString() ?? null,
    createdAt: version.createdAt.toISOString(),
  };
}

const withOutput = { outputPolicyVersion: { select: { id: true } } } as const;

export class RoundService {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly boss: () => PgBoss,
  ) {}

  /** Creates the round and enqueues its job atomically. */
  async launch(project: Project, body: CreateRoundBody, actor: Actor) {
    if (!project.currentPolicyVersionId) {
      throw conflict('This project has no promoted policy version to train yet.');
    }
    const boss = this.boss();
    const round = await this.prisma.$transaction(async (tx) => {
      // One round at a time per project: the next starts from what this one produces.
      const active = await tx.trainingRound.count({
        where: { projectId: project.id, status: { in: ['QUEUED', 'RUNNING'] } },
      });
      if (active > 0) throw conflict('A round of this project is already queued or running.');
      const last = await tx.trainingRound.aggregate({
        where: { projectId: project.id },
        _max: { number: true },
      });
      const created = await tx.trainingRound.create({
        data: {
          projectId: project.id,
          number: (last._max.number ?? 0) + 1,
          algorithm: body.algorithm ?? 'RLOO',
          config: body.config ?? {},
          inputPolicyVersionId: project.currentPolicyVersionId,
          createdById: actor.id,
          phase: 'queued',
        },
        include: withOutput,
      });
      await enqueue(boss, tx, 'training-round', { roundId: created.id }, created.id);
      await recordAudit(tx, {
        actorId: actor.id,
        action: 'round.launch',
        targetType: 'round',
        targetId: created.id,
        details: { projectId: project.id, number: created.number, algorithm: created.algorithm },
        ip: actor.ip ?? null,
      });
      return created;
    });
    return toRoundDto(round);
  }

  /**
   * Starts the rounds that projects' schedules call for: enough new judgments since the last
   * round, and the minimum interval passed. Returns the rounds started.
   */
  async runSchedules(): Promise<string[]> {
    const projects = await this.prisma.project.findMany({
      where: { archivedAt: null, currentPolicyVersionId: { not: null } },
    });
    const started: string[] = [];
    for (const project of projects) {
      const schedule = scheduleOf(project);
      if (!schedule.enabled) continue;
      const last = await this.prisma.trainingRound.findFirst({
        where: { projectId: project.id },
        orderBy: { number: 'desc' },
      });
      if (last && (last.status === 'QUEUED' || last.status === 'RUNNING')) continue;
      if (last && Date.now() - last.createdAt.getTime() < schedule.minIntervalMinutes * 60_000) continue;
      const fresh = await this.prisma.preference.count({
        where: {
          comparison: { projectId: project.id, isGold: false },
          ...(last ? { createdAt: { gt: last.createdAt } } : {}),
        },
      });
      if (fresh < schedule.minNewPreferences) continue;
      try {
        const round = await this.launch(
          project,
          { algorithm: schedule.algorithm, config: schedule.config ?? {} },
          { id: null },
        );
        started.push(round.id);
      } catch (error) {
        // Another scheduler (or an admin) started one a moment ago.
        if (!(error instanceof HttpError && error.statusCode === 409)) throw error;
      }
    }
    return started;
  }

  async list(projectId: string) {
    const rounds = await this.prisma.trainingRound.findMany({
      where: { projectId },
      orderBy: { number: 'desc' },
      include: withOutput,
    });
    return rounds.map(toRoundDto);
  }

  async get(id: string) {
    const round = await this.prisma.trainingRound.findUnique({ where: { id }, include: withOutput });
    if (!round) throw notFound('No such round.');
    return round;
  }

  async events(roundId: string, after: bigint | undefined, limit: number) {
    const events = await this.prisma.roundEvent.findMany({
      where: { roundId, ...(after === undefined ? {} : { id: { gt: after } }) },
      orderBy: { id: 'asc' },
      take: limit,
    });
    return events.map((event) => ({
      id: event.id.toString(),
      phase: event.phase,
      step: event.step,
      data: (event.data ?? {}) as Record<string, unknown>,
      message: event.message,
      createdAt: event.createdAt.toISOString(),
    }));
  }

  /** Asks the worker to stop at its next checkpoint; a queued round is cancelled at once. */
  async cancel(id: string, actor: Actor) {
    const round = await this.get(id);
    if (round.status !== 'QUEUED' && round.status !== 'RUNNING')
      throw conflict(`This round is already ${round.status.toLowerCase()}.`);
    const now = new Date();
    await this.prisma.$transaction(async (tx) => {
      await tx.trainingRound.updateMany({
        where: { id, status: { in: ['QUEUED', 'RUNNING'] } },
        data: { cancelRequestedAt: now },
      });
      // Not started: nothing to stop, so it ends here (the worker skips cancelled rounds).
      await tx.trainingRound.updateMany({
        where: { id, status: 'QUEUED' },
        data: { status: 'CANCELLED', finishedAt: now, phase: 'cancelled' },
      });
      await recordAudit(tx, {
        actorId: actor.id,
        action: 'round.cancel',
        targetType: 'round',
        targetId: id,
        ip: actor.ip ?? null,
      });
    });
    return toRoundDto(await this.get(id));
  }

  async versions(project: Project) {
    const versions = await this.prisma.policyVersion.findMany({
      where: { projectId: project.id },
      orderBy: { createdAt: 'asc' },
    });
    return versions.map((version) => toPolicyVersionDto(version, project.currentPolicyVersionId));
  }

  /** Both promotion rules for every version with a parent, and the project's settings. */
  async promotion(project: Project) {
    return promotionEvidence(this.prisma, project);
  }

  /**
   * Promotes, in each project whose schedule auto-promotes by the human rule, the newest ready
   * child of the current version (never promoted before) that the rule says to promote. The
   * reward-model rule promotes when a round publishes (the trainer), since its number is known
   * then; the human rule waits for votes, so the round scheduler asks every minute.
   */
  async autoPromote(): Promise<{ versionId: string; name: string; projectId: string; votes: number }[]> {
    const projects = await this.prisma.project.findMany({
      where: {
        archivedAt: null,
        currentPolicyVersionId: { not: null },
        schedule: { path: ['autoPromote'], equals: true },
      },
    });
    const promoted: { versionId: string; name: string; projectId: string; votes: number }[] = [];
    for (const project of projects) {
      const settings = promotionOf(project);
      if (!settings.autoPromote || settings.rule !== 'human') continue;
      const candidates = await this.prisma.policyVersion.findMany({
        where: {
          projectId: project.id,
          parentId: project.currentPolicyVersionId,
          status: 'READY',
          promotedAt: null,
        },
        orderBy: { createdAt: 'desc' },
        select: { id: true, name: true },
      });
      if (candidates.length === 0) continue;
      const evidence = await promotionEvidence(
        this.prisma,
        project,
        candidates.map((c) => c.id),
      );
      const chosen = candidates
        .map((c) => ({ ...c, evidence: evidence.versions.find((e) => e.versionId === c.id) }))
        .find((c) => c.evidence?.decision === 'promote');
      if (!chosen) continue;
      const done = await this.prisma.$transaction(async (tx) => {
        // Only over the parent it was judged against: an admin may have promoted another meanwhile.
        const moved = await tx.project.updateMany({
          where: { id: project.id, currentPolicyVersionId: project.currentPolicyVersionId },
          data: { currentPolicyVersionId: chosen.id },
        });
        if (moved.count === 0) return false;
        await tx.policyVersion.update({ where: { id: chosen.id }, data: { promotedAt: new Date() } });
        await recordAudit(tx, {
          actorId: null,
          action: 'policy.promote',
          targetType: 'policy-version',
          targetId: chosen.id,
          details: {
            projectId: project.id,
            previous: project.currentPolicyVersionId,
            automatic: true,
            ...promotionAuditDetails(settings, chosen.evidence),
          },
        });
        return true;
      });
      if (done)
        promoted.push({
          versionId: chosen.id,
          name: chosen.name,
          projectId: project.id,
          votes: chosen.evidence!.human.votes,
        });
    }
    return promoted;
  }

  /** Makes a READY version the one that answers new prompts (also used to roll back to a parent). */
  async promote(versionId: string, actor: Actor) {
    const version = await this.prisma.policyVersion.findUnique({ where: { id: versionId } });
    if (!version) throw notFound('No such policy version.');
    if (version.status !== 'READY')
      throw new HttpError(
        409,
        `Only a ready version can be promoted (this one is ${version.status.toLowerCase()}).`,
      );
    const [project, promoted] = await this.prisma.$transaction(async (tx) => {
      const before = await tx.project.findUniqueOrThrow({ where: { id: version.projectId } });
      // What the promotion rests on, by the project's rule, for the audit log.
      const evidence = await promotionEvidence(tx, before, [versionId]);
      const updated = await tx.policyVersion.update({
        where: { id: versionId },
        data: { promotedAt: new Date() },
      });
      const after = await tx.project.update({
        where: { id: version.projectId },
        data: { currentPolicyVersionId: versionId },
      });
      await recordAudit(tx, {
        actorId: actor.id,
        action: 'policy.promote',
        targetType: 'policy-version',
        targetId: versionId,
        details: {
          projectId: version.projectId,
          previous: before.currentPolicyVersionId,
          automatic: false,
          ...promotionAuditDetails(evidence.settings, evidence.versions[0]),
        },
        ip: actor.ip ?? null,
      });
      return [after, updated] as const;
    });
    return toPolicyVersionDto(promoted, project.currentPolicyVersionId);
  }
}
