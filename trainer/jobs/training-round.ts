// One training round, keyed by its id: snapshot the project's preferences, fit the reward model,
// optimize the promoted policy with the round's algorithm, evaluate, and publish a new policy
// version with its lineage; then optionally pair its responses with its parent's for raters.
// Each phase is a function below, in that order; a RoundRun carries what they share (the round,
// its events, progress and cancellation). Safe to run again after a crash: leftovers of an
// earlier attempt are removed first, and only the attempt that still owns the round (its
// `attempt` number) may publish.
import { createHash } from 'node:crypto';
import type { Prisma, PrismaClient, TrainingRound } from '../../core/db/client.js';
import { demoUtility } from '../../core/demo.js';
import { wilsonInterval } from '../../core/ranking/win-rate.js';
import { recordAudit } from '../../core/services/audit.js';
import { comparable } from '../../core/services/comparisons.js';
import { promotionOf, queueOrderOf } from '../../core/services/project-settings.js';
import { trainingWeights } from '../../core/services/reliability.js';
import { createRoundSnapshot } from '../../core/services/snapshots.js';
import { ROUND_DEFAULTS, ROUND_PHASES, type RoundPhase } from '../../core/schemas/round-defaults.js';
import type { RoundConfig } from '../../core/schemas/rounds.js';
import { saveArtifact } from '../checkpoint.js';
import { evaluatePolicy, winRate, winRates, type PolicyEvaluation, type WinRate } from '../evaluate.js';
import { AdaptiveKLController, EarlyStopping, EnsembleScorer, notBetterReasons } from '../guards.js';
import { freezeCopy, trainableCopy, type Policy } from '../policy.js';
import {
  rankingExamples,
  type ComparisonExample,
  type RewardEvaluation,
  type RewardScorer,
} from '../preferences.js';
import { RewardModel, evaluateRewardModel, fitRewardModel } from '../reward-model.js';
import type { IterationStats } from '../rollout.js';
import { newestRewardModel, refreshMessage, refreshQueueOrder } from '../queue-order.js';
import { Rng } from '../runtime.js';
import { generate, type SamplingConfig } from '../sampling.js';
import { roundAlgorithm } from './algorithms.js';
import { redrawRepeats } from './pairing.js';
import { loadPolicyVersion, promptText, rootVersionId, savePolicy } from './policy-store.js';

export class RoundCancelled extends Error {}

const DEFAULTS: Required<RoundConfig> = ROUND_DEFAULTS;

/** Reward-model epochs without a better held-out loss before fitting stops. */
const RM_PATIENCE = 2;

const EVAL_SAMPLING: SamplingConfig = { temperature: 1, topK: 0, maxNewTokens: 24, batchSize: 64 };

const [SNAPSHOT, REWARD_MODEL, POLICY, EVALUATION, COMPARISONS] = ROUND_PHASES;

export async function runRound(
  prisma: PrismaClient,
  roundId: string,
  log: (message: string) => void = () => {},
): Promise<void> {
  const round = await claim(prisma, roundId);
  if (!round) return;
  const run = new RoundRun(prisma, round, log);
  try {
    await removeLeftovers(prisma, round);
    const project = await prisma.project.findUniqueOrThrow({ where: { id: round.projectId } });
    const parentId = round.inputPolicyVersionId ?? project.currentPolicyVersionId;
    if (!parentId) throw new Error('The project has no promoted policy version to train.');
    const data = await snapshotPhase(run, project.id);
    const models = await rewardModelPhase(run, project.id, parentId, data.examples);
    const update = await policyPhase(run, project.id, models, data.examples);
    const evaluation = await evaluationPhase(run, project.isDemo, data, models, update);
    await publishPhase(run, project, parentId, data.snapshotId, models, update, evaluation.metrics);
    await reorderQueue(run, project.id, models);
    log(
      `round ${round.number}: done (win rate vs parent ${evaluation.winRateVsParent.toFixed(2)}, KL ${evaluation.kl.toFixed(2)})`,
    );
  } catch (error) {
    await run.end(error as Error);
  }
}

/** Claims the round: the attempt number fences off any earlier attempt still running somewhere. */
async function claim(prisma: PrismaClient, roundId: string): Promise<TrainingRound | null> {
  const claimed = await prisma.trainingRound.updateManyAndReturn({
    where: { id: roundId, status: { in: ['QUEUED', 'RUNNING'] }, cancelRequestedAt: null },
    data: {
      status: 'RUNNING',
      attempt: { increment: 1 },
      startedAt: new Date(),
      phase: 'starting',
      progress: 0,
      error: null,
    },
  });
  const round = claimed[0];
  if (!round) {
    // Finished, failed or cancelled already: a retried job has nothing to do.
    await prisma.trainingRound.updateMany({
      where: { id: roundId, status: { in: ['QUEUED', 'RUNNING'] } },
      data: { status: 'CANCELLED', finishedAt: new Date(), phase: 'cancelled' },
    });
    return null;
  }
  return round;
}

/** One attempt at a round: its settings, events, progress and the artifacts it has saved. */
class RoundRun {
  readonly config: Required<RoundConfig>;
  /** The rows this attempt may write: the round while this attempt still owns it. */
  readonly owned: { id: string; attempt: number; status: 'RUNNING' };
  private readonly createdArtifacts: string[] = [];
  /** Progress of the phases finished so far. */
  private done = 0;

  constructor(
    readonly prisma: PrismaClient,
    readonly round: TrainingRound,
    readonly log: (message: string) => void,
  ) {
    this.config = { ...DEFAULTS, ...(round.config as RoundConfig) };
    this.owned = { id: round.id, attempt: round.attempt, status: 'RUNNING' };
  }

  event(
    phase: string,
    data: Record<string, unknown>,
    step: number | null = null,
    message: string | null = null,
  ) {
    return this.prisma.roundEvent.create({
      data: { roundId: this.round.id, phase, step, data: data as Prisma.InputJsonObject, message },
    });
  }

  async enter(phase: RoundPhase, message: string): Promise<void> {
    await this.prisma.trainingRound.updateMany({
      where: this.owned,
      data: { phase: phase.key, progress: this.done },
    });
    await this.event(phase.key, {}, null, message);
    this.log(`round ${this.round.number}: ${message}`);
  }

  /** Progress within the current phase; also where cancellation is noticed. */
  async progress(phase: RoundPhase, fraction: number): Promise<void> {
    const value = Math.min(1, this.done + phase.weight * fraction);
    const rows = await this.prisma.trainingRound.updateManyAndReturn({
      where: this.owned,
      data: { progress: value },
      select: { cancelRequestedAt: true },
    });
    if (rows.length === 0) throw new RoundCancelled('another attempt took over this round');
    if (rows[0]!.cancelRequestedAt) throw new RoundCancelled('cancelled');
  }

  finish(phase: RoundPhase): void {
    this.done += phase.weight;
  }

  /** Saves weights, recorded so that a failed or later attempt removes them. */
  async saveArtifact(kind: 'reward-model' | 'policy', save: () => Promise<string>): Promise<string> {
    const artifactId = await save();
    this.createdArtifacts.push(artifactId);
    await this.event('artifact', { artifactId, kind });
    return artifactId;
  }

  /** A failed or cancelled attempt: its weights and reward model go, the round records why. */
  async end(error: Error): Promise<void> {
    const cancelled = error instanceof RoundCancelled;
    await removeArtifacts(this.prisma, this.createdArtifacts);
    await this.prisma.rewardModel.deleteMany({ where: { roundId: this.round.id } });
    const ended = await this.prisma.trainingRound.updateMany({
      where: this.owned,
      data: cancelled
        ? { status: 'CANCELLED', phase: 'cancelled', finishedAt: new Date() }
        : { status: 'FAILED', phase: 'failed', error: error.message.slice(0, 2000), finishedAt: new Date() },
    });
    if (ended.count)
      await this.event(cancelled ? 'cancelled' : 'failed', {}, null, error.message.slice(0, 2000));
    this.log(`round ${this.round.number}: ${cancelled ? 'cancelled' : `failed: ${error.message}`}`);
  }
}

type Example = ComparisonExample & { promptId: string };

/** 1. Snapshot: exactly the judgments this round learns from. */
async function snapshotPhase(
  run: RoundRun,
  projectId: string,
): Promise<{ judgments: number; examples: Example[]; snapshotId: string; weighted: boolean }> {
  const { prisma, round } = run;
  await run.enter(SNAPSHOT, 'Freezing the preferences this round learns from');
  // Raters an admin excluded from the project are left out (their judgments stay stored).
  const preferences = await prisma.preference.findMany({
    where: {
      comparison: { projectId, isGold: false },
      OR: [{ raterId: null }, { rater: { exclusions: { none: { projectId } } } }],
    },
    orderBy: { id: 'asc' },
    include: { comparison: { include: { prompt: true, responseA: true, responseB: true } } },
  });
  if (preferences.length < 4)
    throw new Error(`Only ${preferences.length} judgments so far; a round needs at least 4.`);
  // A snapshot like any other: its file hashed, so the lineage it is cited in downloads and verifies.
  const snapshot = await createRoundSnapshot(
    prisma,
    projectId,
    `round-${round.number}-attempt-${round.attempt}`,
    preferences.map((p) => p.id),
  );
  await prisma.trainingRound.updateMany({ where: run.owned, data: { snapshotId: snapshot.id } });
  run.finish(SNAPSHOT);
  // Each judgment weighed by how likely its direction is right, from its rater's reliability and
  // its comparison's other judgments, once enough comparisons tell raters apart.
  const weights = run.config.reliabilityWeights
    ? await trainingWeights(prisma, projectId, preferences)
    : null;
  // A ranking's responses (its first two are A and B; the others are read here).
  const rankedIds = [
    ...new Set(preferences.flatMap((p) => (p.ranks.length ? p.comparison.responseIds : []))),
  ];
  const rankedTexts = new Map(
    (
      await prisma.response.findMany({ where: { id: { in: rankedIds } }, select: { id: true, text: true } })
    ).map((r) => [r.id, r.text]),
  );
  const examples = preferences.flatMap((p, i): Example[] => {
    const prompt = promptText(p.comparison.prompt.messages);
    const weight = weights ? weights[i]! : 1;
    if (p.ranks.length === 0)
      return [
        {
          prompt,
          responseA: p.comparison.responseA.text,
          responseB: p.comparison.responseB.text,
          choice: p.choice,
          strength: p.strength,
          promptId: p.comparison.promptId,
          ...(weights ? { weight } : {}),
        },
      ];
    return rankingExamples({
      prompt,
      promptId: p.comparison.promptId,
      texts: p.comparison.responseIds.map((id) => rankedTexts.get(id)!),
      ranks: p.ranks,
      weight,
    });
  });
  // In an order fixed by their content (ids are random), so the same data trains the same model.
  const key = (e: Example) =>
    JSON.stringify([e.prompt, e.responseA, e.responseB, e.choice, e.strength, e.weight ?? null]);
  const keys = new Map(examples.map((e) => [e, key(e)]));
  examples.sort((a, b) => (keys.get(a)! < keys.get(b)! ? -1 : keys.get(a)! > keys.get(b)! ? 1 : 0));
  return { judgments: preferences.length, examples, snapshotId: snapshot.id, weighted: weights !== null };
}

interface RoundModels {
  parent: Policy;
  /** The lineage's first (SFT) policy, frozen: the KL reference and the reward model's start. */
  reference: Policy;
  rm: RewardModel;
  /**
   * What the policy is optimized for and checked against: the reward model, or with an ensemble
   * (`rewardEnsemble` > 1) its members' mean less the uncertainty penalty.
   */
  scorer: RewardScorer;
  /** The ensemble's other members (fitted on bootstrap resamples of the prompts); empty without one. */
  members: RewardModel[];
  rewardModelId: string;
  trainEvaluation: RewardEvaluation;
  validationEvaluation: RewardEvaluation | null;
}

/**
 * 2. Reward model, from the weights of the lineage's first (SFT) policy, the KL reference: its
 *    likelihood term then scores what that policy would say, the same in every round, rather
 *    than the parent's own habits (which would reward a parent's mistakes back to it).
 *    Held-out accuracy on a fifth of the prompts.
 */
async function rewardModelPhase(
  run: RoundRun,
  projectId: string,
  parentId: string,
  examples: Example[],
): Promise<RoundModels> {
  const { prisma, round, config } = run;
  await run.enter(REWARD_MODEL, `Fitting the reward model on ${examples.length} judgments`);
  // Held out by the prompt's text, not its id: a copy of the same data splits the same way.
  const heldOut = (prompt: string) =>
    parseInt(createHash('sha256').update(prompt).digest('hex').slice(0, 8), 16) % 5 === 0;
  const train = examples.filter((e) => !heldOut(e.prompt));
  const validation = examples.filter((e) => heldOut(e.prompt));
  const parent = await loadPolicyVersion(prisma, parentId);
  const reference = freezeCopy(await loadPolicyVersion(prisma, await rootVersionId(prisma, parentId)));
  const rm = RewardModel.fromPolicy(reference);
  // Up to rewardModelEpochs passes, keeping the epoch with the lowest held-out loss.
  const fit = await fitRewardModel(
    rm,
    train,
    validation,
    { maxEpochs: config.rewardModelEpochs, patience: RM_PATIENCE, config: { seed: config.seed } },
    async (epoch, loss, validationLoss) => {
      await run.event('reward-model', { epoch, loss, validationLoss }, epoch);
      await run.progress(REWARD_MODEL, epoch / config.rewardModelEpochs);
    },
  );
  // An ensemble's other members: the same start, each fitted on a bootstrap resample of the
  // training prompts (with their seed), so they disagree where the data is thin (Coste et al.).
  const members: RewardModel[] = [];
  for (let m = 1; m < config.rewardEnsemble; m++) {
    const member = RewardModel.fromPolicy(reference);
    await fitRewardModel(
      member,
      bootstrapByPrompt(train, new Rng(config.seed + 7919 * m)),
      validation,
      { maxEpochs: config.rewardModelEpochs, patience: RM_PATIENCE, config: { seed: config.seed + m } },
      async (epoch, loss, validationLoss) => {
        await run.event('reward-model-member', { member: m, epoch, loss, validationLoss }, null);
        await run.progress(
          REWARD_MODEL,
          (m * config.rewardModelEpochs + epoch) / (config.rewardEnsemble * config.rewardModelEpochs),
        );
      },
    );
    members.push(member);
  }
  const scorer = members.length ? new EnsembleScorer([rm, ...members], config.uncertaintyPenalty) : rm;
  if (members.length)
    await run.event(
      'ensemble',
      {
        members: members.length + 1,
        uncertaintyPenalty: config.uncertaintyPenalty,
        validationAccuracies: validation.length
          ? [rm, ...members].map((model) => evaluateRewardModel(model, validation).accuracy)
          : null,
      },
      null,
      `Reward-model ensemble of ${members.length + 1}: the policy's reward is their mean less ${config.uncertaintyPenalty} × their variance`,
    );
  const trainEvaluation = evaluateRewardModel(rm, train);
  const validationEvaluation = validation.length ? evaluateRewardModel(rm, validation) : null;
  const artifactId = await run.saveArtifact('reward-model', () =>
    saveArtifact(prisma, rm.encode({ meta: { roundId: round.id } }), { projectId }),
  );
  const rewardModel = await prisma.rewardModel.create({
    data: {
      projectId,
      roundId: round.id,
      artifactId,
      kind: 'backbone',
      metrics: {
        trainAccuracy: trainEvaluation.accuracy,
        validationAccuracy: validationEvaluation?.accuracy ?? null,
        train: train.length,
        validation: validation.length,
        epochs: fit.epochs,
        bestEpoch: fit.bestEpoch,
      } as Prisma.InputJsonObject,
    },
  });
  run.finish(REWARD_MODEL);
  return {
    parent,
    reference,
    rm,
    scorer,
    members,
    rewardModelId: rewardModel.id,
    trainEvaluation,
    validationEvaluation,
  };
}

/** A reward-model win rate's 95% interval over its prompts (Wilson's, ties as half a win). */
function intervalOf(rate: WinRate): [number, number] {
  const n = rate.wins + rate.losses + rate.ties;
  return wilsonInterval(rate.winRate, n, n > 0 ? rate.ties / n : 0);
}

/**
 * A bootstrap resample of a reward model's training examples by prompt: prompts drawn with
 * replacement, each drawn prompt bringing all its comparisons (so a ranking's pairs stay together).
 */
function bootstrapByPrompt(examples: Example[], rng: Rng): Example[] {
  const byPrompt = new Map<string, Example[]>();
  for (const example of examples)
    byPrompt.set(example.promptId, [...(byPrompt.get(example.promptId) ?? []), example]);
  const groups = [...byPrompt.values()];
  return groups.flatMap(() => groups[Math.floor(rng.next() * groups.length)]!);
}

interface PolicyUpdate {
  policy: Policy;
  history: IterationStats[];
  prompts: { id: string; split: string; messages: unknown; metadata: unknown }[];
  /** What the guards did: where the phase stopped and why, the iteration kept, the last β. */
  guard: {
    stoppedAt: number | null;
    stopReason: string | null;
    keptIteration: number | null;
    finalBeta: number;
  };
}

/**
 * 3. Policy optimization from the parent, one iteration at a time so progress and cancellation show.
 *    Guards against over-optimizing the reward model (Gao et al. 2023): β follows an adaptive KL
 *    controller toward `klTarget`, and every `guardEvery` iterations a held-out check (KL to the
 *    reference and the reward model's mean reward on held-out prompts) may stop the phase; the
 *    weights kept are those of the best check. Every decision is one of the round's events.
 */
async function policyPhase(
  run: RoundRun,
  projectId: string,
  models: RoundModels,
  examples: Example[],
): Promise<PolicyUpdate> {
  const { prisma, round } = run;
  await run.enter(POLICY, `Optimizing the policy with ${round.algorithm}`);
  const policy = trainableCopy(models.parent);
  const prompts = sortedPrompts(await prisma.prompt.findMany({ where: { projectId } }));
  const algorithm = roundAlgorithm(round.algorithm);
  // Each round its own prompts and samples (the same again when a round is retried).
  const config = { ...run.config, seed: run.config.seed + (round.number - 1) * 1_000_003 };
  const total = algorithm.iterations(config);
  const { step, setBeta } = algorithm.start({
    policy,
    reference: models.reference,
    scorer: models.scorer,
    prompts: prompts.filter((p) => p.split === 'TRAIN').map((p) => promptText(p.messages)),
    examples,
    config,
  });
  const samples = config.promptsPerIteration * config.samplesPerPrompt;
  const controller =
    setBeta && config.klTarget > 0 && config.beta > 0
      ? new AdaptiveKLController(config.beta, config.klTarget, config.klHorizon)
      : null;
  const heldOut = heldOutTexts(prompts);
  const guarded = config.guardEvery > 0 && round.algorithm !== 'DPO' && heldOut.length > 0;
  const stopping = new EarlyStopping({ klLimit: config.klLimit, patience: 2, tolerance: 0.02 });
  let best: Policy | null = null;
  let stopped: { iteration: number; reason: string } | null = null;
  /** A held-out check after `iteration` iterations; true when the phase should stop. */
  const check = async (iteration: number): Promise<boolean> => {
    const e = evaluatePolicy(
      policy,
      models.reference,
      models.scorer,
      heldOut,
      EVAL_SAMPLING,
      config.seed + 7,
    );
    const decision = stopping.check({ iteration, kl: e.kl, reward: e.meanReward });
    if (decision.best) {
      best?.model.dispose();
      best = freezeCopy(policy);
    }
    await run.event(
      'guard',
      { iteration, heldOutKl: e.kl, heldOutReward: e.meanReward, klLimit: config.klLimit, ...decision },
      iteration,
      decision.stop ? `Stopped early: ${STOP_MESSAGES[decision.reason!]}` : null,
    );
    if (decision.stop) stopped = { iteration, reason: decision.reason! };
    return decision.stop;
  };
  const history: IterationStats[] = [];
  if (!guarded || !(await check(0)))
    for (let it = 0; it < total; it++) {
      const stats = { ...step(), iteration: it };
      const beta = controller ? controller.beta : config.beta;
      if (controller) setBeta!(controller.update(stats.kl, samples));
      history.push(stats);
      await run.event('policy', { ...stats, beta }, it + 1);
      await run.progress(POLICY, (it + 1) / total);
      if (guarded && ((it + 1) % config.guardEvery === 0 || it + 1 === total) && (await check(it + 1))) break;
    }
  // The best held-out check's weights, when a later one was worse.
  const kept = best as Policy | null;
  if (guarded && kept && stopping.bestIteration !== history.length) policy.model.copyFrom(kept.model);
  kept?.model.dispose();
  run.finish(POLICY);
  return {
    policy,
    history,
    prompts,
    guard: {
      stoppedAt: (stopped as { iteration: number } | null)?.iteration ?? null,
      stopReason: (stopped as { reason: string } | null)?.reason ?? null,
      keptIteration: guarded ? stopping.bestIteration : history.length,
      finalBeta: controller ? controller.beta : config.beta,
    },
  };
}

const STOP_MESSAGES: Record<string, string> = {
  'kl-limit': 'held-out KL beyond the limit',
  'held-out-reward': 'the held-out reward fell',
};

/** Prompts in an order that does not depend on their ids, so a round repeats on a copy of its data. */
function sortedPrompts<T extends { split: string; messages: unknown }>(prompts: T[]): T[] {
  const key = (p: T) => `${p.split}\u0000${promptText(p.messages)}`;
  return prompts
    .map((p) => ({ p, k: key(p) }))
    .sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0))
    .map(({ p }) => p);
}

/** The held-out prompts (all of them when the project has none held out, as in evaluation). */
function heldOutTexts(prompts: { split: string; messages: unknown }[]): string[] {
  const evalPrompts = prompts.filter((p) => p.split !== 'TRAIN');
  return (evalPrompts.length ? evalPrompts : prompts.slice(0, 40)).map((p) => promptText(p.messages));
}

/** 4. Evaluation on held-out prompts: reward, KL to the SFT reference, length, win rate vs parent. */
async function evaluationPhase(
  run: RoundRun,
  isDemo: boolean,
  data: { judgments: number; weighted: boolean },
  models: RoundModels,
  { policy, history, prompts, guard }: PolicyUpdate,
): Promise<{ metrics: Record<string, unknown>; winRateVsParent: number; kl: number }> {
  const { seed } = run.config;
  const { parent, reference, rm } = models;
  await run.enter(EVALUATION, 'Evaluating on held-out prompts');
  const evalTexts = heldOutTexts(prompts);
  const evaluation = evaluatePolicy(policy, reference, rm, evalTexts, EVAL_SAMPLING, seed);
  const parentEvaluation = evaluatePolicy(parent, reference, rm, evalTexts, EVAL_SAMPLING, seed);
  const vsParent = winRate(policy, parent, rm, evalTexts, EVAL_SAMPLING, seed);
  // Each member of an ensemble judges the result against its parent too (the same samples).
  const ensemble = models.members.length
    ? winRates(policy, parent, [rm, ...models.members], evalTexts, EVAL_SAMPLING, seed)
    : undefined;
  const ensembleWinRates = ensemble?.map((w) => w.winRate);
  for (const member of models.members) member.dispose();
  const metrics: Record<string, unknown> = {
    rmTrainAccuracy: models.trainEvaluation.accuracy,
    rmValidationAccuracy: models.validationEvaluation?.accuracy ?? null,
    rmAccuracyByStrength: models.validationEvaluation?.byStrength ?? null,
    judgments: data.judgments,
    reliabilityWeighted: data.weighted,
    reward: evaluation.meanReward,
    parentReward: parentEvaluation.meanReward,
    kl: evaluation.kl,
    meanLength: evaluation.meanLength,
    parentMeanLength: parentEvaluation.meanLength,
    lengthDrift: parentEvaluation.meanLength > 0 ? evaluation.meanLength / parentEvaluation.meanLength : null,
    winRateVsParent: vsParent.winRate,
    winRateVsParentInterval: intervalOf(vsParent),
    policySteps: history.length,
  };
  if (isDemo) Object.assign(metrics, demoMetrics(prompts, evaluation, parentEvaluation));
  // The honest verdict: worse than its parent on any of the round's own held-out checks, the new
  // version is published as a candidate marked not better, which no schedule promotes.
  const reasons = notBetterReasons({
    stoppedWithoutGain:
      guard.stopReason && guard.keptIteration === 0 ? STOP_MESSAGES[guard.stopReason]! : null,
    kl: evaluation.kl,
    klLimit: run.config.klLimit,
    winRateVsParent: vsParent.winRate,
    winRateInterval: intervalOf(vsParent),
    ...(ensemble ? { ensembleWinRates, ensembleIntervals: ensemble.map(intervalOf) } : {}),
    ...(isDemo ? { utility: Number(metrics.utility), parentUtility: Number(metrics.parentUtility) } : {}),
  });
  Object.assign(metrics, {
    rewardEnsemble: models.members.length + 1,
    ensembleWinRates: ensembleWinRates ?? null,
    ensembleIntervals: ensemble?.map(intervalOf) ?? null,
    finalBeta: guard.finalBeta,
    stoppedAt: guard.stoppedAt,
    stopReason: guard.stopReason,
    keptIteration: guard.keptIteration,
    notBetter: reasons.length > 0,
    notBetterReasons: reasons,
  });
  await run.event('evaluation', metrics);
  await run.event(
    'verdict',
    { notBetter: reasons.length > 0, reasons },
    null,
    reasons.length
      ? `Not better than its parent: ${reasons.join('; ')}`
      : 'Better than its parent on every held-out check',
  );
  run.finish(EVALUATION);
  return { metrics, winRateVsParent: vsParent.winRate, kl: evaluation.kl };
}

/** The demo knows the right answers: what its hidden utility thinks of the new and the parent policy. */
function demoMetrics(
  prompts: { messages: unknown; metadata: unknown }[],
  evaluation: PolicyEvaluation,
  parentEvaluation: PolicyEvaluation,
): Record<string, number> {
  const answers = new Map(
    prompts.map((p) => [promptText(p.messages), String((p.metadata as { answer?: string }).answer ?? '')]),
  );
  const utility = (samples: { prompt: string; response: string }[]) =>
    samples.reduce((sum, s) => sum + demoUtility(s.response, answers.get(s.prompt) ?? ''), 0) /
    Math.max(1, samples.length);
  const correct = (samples: { prompt: string; response: string }[]) =>
    samples.filter((s) => demoUtility(s.response, answers.get(s.prompt) ?? '') > 0).length /
    Math.max(1, samples.length);
  return {
    utility: utility(evaluation.samples),
    parentUtility: utility(parentEvaluation.samples),
    correctShare: correct(evaluation.samples),
    parentCorrectShare: correct(parentEvaluation.samples),
  };
}

/**
 * 5. Publish: weights first (large), then the version, its comparisons against the parent and the
 *    round's end in one transaction.
 */
async function publishPhase(
  run: RoundRun,
  project: { id: string; overlap: number; schedule: unknown },
  parentId: string,
  snapshotId: string,
  models: RoundModels,
  { policy, prompts }: PolicyUpdate,
  metrics: Record<string, unknown>,
): Promise<void> {
  const { prisma, round, config } = run;
  await run.enter(COMPARISONS, 'Publishing the new version');
  const artifactId = await run.saveArtifact('policy', () =>
    savePolicy(prisma, policy, project.id, { roundId: round.id, algorithm: round.algorithm }),
  );
  const samplesFor = config.generateComparisons
    ? sampleForComparisons(
        policy,
        models.parent,
        // A different sample of prompts each round, so judgments spread over all of them.
        new Rng(config.seed + round.number)
          .shuffle(prompts.filter((p) => p.split === 'TRAIN'))
          .slice(0, config.comparisonPrompts),
        config.seed + 97,
      )
    : [];
  await run.progress(COMPARISONS, 0.5);
  const published = await prisma.$transaction(async (tx) => {
    const still = await tx.trainingRound.findFirst({ where: run.owned });
    if (!still) return false;
    if (still.cancelRequestedAt) throw new RoundCancelled('cancelled');
    const version = await tx.policyVersion.create({
      data: {
        projectId: project.id,
        name: `round-${round.number}`,
        kind: 'BUILTIN',
        status: 'READY',
        parentId,
        artifactId,
        rewardModelId: models.rewardModelId,
        snapshotId,
        roundId: round.id,
        metrics: metrics as Prisma.InputJsonObject,
      },
    });
    for (const sample of samplesFor) {
      const [mine, theirs] = await Promise.all([
        tx.response.create({
          data: {
            promptId: sample.promptId,
            policyVersionId: version.id,
            text: sample.child,
            samplingParams: { temperature: 1 },
          },
        }),
        tx.response.create({
          data: {
            promptId: sample.promptId,
            policyVersionId: parentId,
            text: sample.parent,
            samplingParams: { temperature: 1 },
          },
        }),
      ]);
      await tx.comparison.create({
        data: {
          projectId: project.id,
          promptId: sample.promptId,
          responseAId: mine.id,
          responseBId: theirs.id,
          requiredVotes: project.overlap,
          roundId: round.id,
        },
      });
    }
    await tx.trainingRound.update({
      where: { id: round.id },
      data: {
        status: 'SUCCEEDED',
        phase: 'done',
        progress: 1,
        metrics: metrics as Prisma.InputJsonObject,
        finishedAt: new Date(),
      },
    });
    await maybePromote(tx, project, parentId, version.id, metrics);
    return true;
  });
  for (const model of [policy, models.parent, models.reference]) model.model.dispose();
  if (!published) throw new RoundCancelled('another attempt took over this round');
  await run.event('done', metrics, null, 'Round finished');
}

/**
 * 6. With the uncertainty queue order on, the project's open comparisons re-ordered by this round's
 *    reward model (trainer/queue-order.ts), its new version's comparisons against the parent
 *    first; recorded as a 'queue' event. The round has succeeded by now: a failure here is an
 *    event, not a failed round (the next round or switching the order on again re-orders).
 */
async function reorderQueue(run: RoundRun, projectId: string, models: RoundModels): Promise<void> {
  const { prisma, round } = run;
  const ordered = async () => {
    const project = await prisma.project.findUnique({ where: { id: projectId }, select: { schedule: true } });
    return project !== null && queueOrderOf(project) === 'uncertainty';
  };
  if (!(await ordered())) return;
  const started = performance.now();
  try {
    const refresh = await refreshQueueOrder(prisma, projectId, models.rm, {
      promotionRoundId: round.id,
      stillCurrent: async () =>
        (await ordered()) && (await newestRewardModel(prisma, projectId))?.id === models.rewardModelId,
    });
    const message = refreshMessage(refresh, `(round ${round.number}'s reward model)`);
    await run.event(
      'queue',
      { ...refresh, trigger: 'round', seconds: (performance.now() - started) / 1000 },
      null,
      message,
    );
    run.log(`round ${round.number}: ${message}`);
  } catch (error) {
    const message = `Queue not re-ordered: ${(error as Error).message}`.slice(0, 2000);
    await run.event('queue', { failed: true }, null, message).catch(() => {});
    run.log(`round ${round.number}: ${message}`);
  }
}

/** What an earlier, interrupted attempt left behind (it never published: publishing is atomic). */
async function removeLeftovers(
  prisma: PrismaClient,
  round: { id: string; projectId: string; number: number; snapshotId: string | null },
): Promise<void> {
  const rewardModels = await prisma.rewardModel.findMany({
    where: { roundId: round.id },
    select: { artifactId: true },
  });
  await prisma.rewardModel.deleteMany({ where: { roundId: round.id } });
  await removeArtifacts(
    prisma,
    rewardModels.flatMap((rm) => (rm.artifactId ? [rm.artifactId] : [])),
  );
  // Weights saved by an earlier attempt (each recorded as an 'artifact' event) and never attached.
  const saved = await prisma.roundEvent.findMany({
    where: { roundId: round.id, phase: 'artifact' },
    select: { data: true },
  });
  await removeArtifacts(
    prisma,
    saved.map((e) => String((e.data as { artifactId?: string }).artifactId ?? '')).filter(Boolean),
  );
  if (round.snapshotId) {
    await prisma.trainingRound.update({ where: { id: round.id }, data: { snapshotId: null } });
    await prisma.datasetSnapshot.deleteMany({
      where: { id: round.snapshotId, policyVersions: { none: {} }, rounds: { none: {} } },
    });
  }
  // A snapshot an attempt stopped making before the round named it (still being hashed).
  await prisma.datasetSnapshot.deleteMany({
    where: {
      projectId: round.projectId,
      name: { startsWith: `round-${round.number}-attempt-` },
      contentHash: '',
      policyVersions: { none: {} },
      rounds: { none: {} },
    },
  });
}

async function removeArtifacts(prisma: PrismaClient, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await prisma.modelArtifact.deleteMany({
    where: { id: { in: ids }, policyVersions: { none: {} }, rewardModels: { none: {} } },
  });
}

/**
 * Automatic promotion by the reward-model rule, when the project's schedule asks for it and the
 * margin is met. The human rule waits for raters' votes on the new-vs-parent comparisons: the
 * round scheduler promotes by it (RoundService.autoPromote).
 */
export async function maybePromote(
  tx: Prisma.TransactionClient,
  project: { id: string; schedule: unknown },
  parentId: string,
  versionId: string,
  metrics: Record<string, unknown>,
): Promise<void> {
  const settings = promotionOf(project as { schedule: Prisma.JsonValue });
  if (!settings.autoPromote || settings.rule !== 'reward-model') return;
  if (metrics.notBetter === true) return;
  const winRateVsParent = Number(metrics.winRateVsParent ?? 0);
  if (winRateVsParent < 0.5 + settings.rewardModelMargin) return;
  await tx.policyVersion.update({ where: { id: versionId }, data: { promotedAt: new Date() } });
  await tx.project.update({ where: { id: project.id }, data: { currentPolicyVersionId: versionId } });
  await recordAudit(tx, {
    actorId: null,
    action: 'policy.promote',
    targetType: 'policy-version',
    targetId: versionId,
    details: {
      projectId: project.id,
      previous: parentId,
      automatic: true,
      rule: 'reward-model',
      decision: 'promote',
      votes: 0,
      rewardModelWinRate: winRateVsParent,
      rewardModelThreshold: 0.5 + settings.rewardModelMargin,
    },
  });
}

function sampleForComparisons(
  child: Policy,
  parent: Policy,
  prompts: { id: string; messages: unknown }[],
  seed: number,
): { promptId: string; child: string; parent: string }[] {
  if (prompts.length === 0) return [];
  const ids = prompts.map((p) => child.tokenizer.encodePrompt(promptText(p.messages)));
  const sampling: SamplingConfig = { temperature: 1, topK: 0, maxNewTokens: 24, batchSize: 64 };
  const mine = generate(child.model, ids, sampling, new Rng(seed)).map(
    (r) => child.tokenizer.decode(r).trim() || '(empty)',
  );
  const parentRng = new Rng(seed + 1);
  const parentSample = (promptIds: number[][]) =>
    generate(parent.model, promptIds, sampling, parentRng).map(
      (r) => parent.tokenizer.decode(r).trim() || '(empty)',
    );
  const theirs = parentSample(ids);
  // Where the parent said exactly what the child said, the parent samples again; prompts where
  // the two still agree get no comparison (a rater could not prefer one of two equal texts).
  redrawRepeats([mine, theirs], (indexes) => parentSample(indexes.map((i) => ids[i]!)));
  return prompts
    .map((p, i) => ({ promptId: p.id, child: mine[i]!, parent: theirs[i]! }))
    .filter((sample) => comparable(sample.child, sample.parent));
}
