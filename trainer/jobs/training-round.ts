// One training round, keyed by its id: snapshot the project's preferences, fit the reward model,
// optimize the promoted policy with the round's algorithm, evaluate, and publish a new policy
// version with its lineage; then optionally pair its responses with its parent's for raters.
// Safe to run again after a crash: leftovers of an earlier attempt are removed first, and only
// the attempt that still owns the round (its `attempt` number) may publish.
import { createHash } from 'node:crypto';
import type { Prisma, PrismaClient } from '../../server/db/client.js';
import { demoUtility } from '../../server/demo.js';
import { createRoundSnapshot } from '../../server/services/snapshots.js';
import { ROUND_DEFAULTS, ROUND_PHASES, type RoundPhase } from '../../server/schemas/round-defaults.js';
import type { RoundConfig } from '../../server/schemas/rounds.js';
import { trainBestOfN } from '../best-of-n.js';
import { saveArtifact } from '../checkpoint.js';
import { trainDPO } from '../dpo.js';
import { evaluatePolicy, winRate } from '../evaluate.js';
import type { AdamW } from '../optimizer.js';
import { freezeCopy, trainableCopy, type Policy } from '../policy.js';
import { trainPPO } from '../ppo.js';
import type { ComparisonExample, RewardScorer } from '../preferences.js';
import { RewardModel, evaluateRewardModel, fitRewardModel } from '../reward-model.js';
import { trainGRPO } from '../grpo.js';
import { trainRLOO } from '../rloo.js';
import type { IterationStats } from '../rollout.js';
import { Rng } from '../runtime.js';
import { generate, type SamplingConfig } from '../sampling.js';
import type { ScalarHead } from '../model.js';
import { comparable } from '../../server/services/comparisons.js';
import { redrawRepeats } from './pairing.js';
import { loadPolicyVersion, promptText, rootVersionId, savePolicy } from './policy-store.js';

export class RoundCancelled extends Error {}

const DEFAULTS: Required<RoundConfig> = ROUND_DEFAULTS;

/** Reward-model epochs without a better held-out loss before fitting stops. */
const RM_PATIENCE = 2;

const EVAL_SAMPLING: SamplingConfig = { temperature: 1, topK: 0, maxNewTokens: 24, batchSize: 64 };

export async function runRound(
  prisma: PrismaClient,
  roundId: string,
  log: (message: string) => void = () => {},
): Promise<void> {
  // Claim the round: the attempt number fences off any earlier attempt still running somewhere.
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
    return;
  }
  const attempt = round.attempt;
  const config = { ...DEFAULTS, ...(round.config as RoundConfig) };
  const createdArtifacts: string[] = [];
  let done = 0;

  const owned = { id: roundId, attempt, status: 'RUNNING' as const };
  const event = (
    phase: string,
    data: Record<string, unknown>,
    step: number | null = null,
    message: string | null = null,
  ) =>
    prisma.roundEvent.create({
      data: { roundId, phase, step, data: data as Prisma.InputJsonObject, message },
    });
  const enter = async (phase: RoundPhase, message: string) => {
    await prisma.trainingRound.updateMany({ where: owned, data: { phase: phase.key, progress: done } });
    await event(phase.key, {}, null, message);
    log(`round ${round.number}: ${message}`);
  };
  /** Progress within the current phase; also where cancellation is noticed. */
  const progress = async (phase: RoundPhase, fraction: number) => {
    const value = Math.min(1, done + phase.weight * fraction);
    const rows = await prisma.trainingRound.updateManyAndReturn({
      where: owned,
      data: { progress: value },
      select: { cancelRequestedAt: true },
    });
    if (rows.length === 0) throw new RoundCancelled('another attempt took over this round');
    if (rows[0]!.cancelRequestedAt) throw new RoundCancelled('cancelled');
  };
  const finishPhase = (phase: RoundPhase) => {
    done += phase.weight;
  };

  try {
    await removeLeftovers(prisma, round);
    const [snapshotPhase, rmPhase, policyPhase, evalPhase, comparisonPhase] = ROUND_PHASES;
    const project = await prisma.project.findUniqueOrThrow({ where: { id: round.projectId } });
    const parentId = round.inputPolicyVersionId ?? project.currentPolicyVersionId;
    if (!parentId) throw new Error('The project has no promoted policy version to train.');

    // 1. Snapshot: exactly the judgments this round learns from.
    await enter(snapshotPhase, 'Freezing the preferences this round learns from');
    const preferences = await prisma.preference.findMany({
      where: { comparison: { projectId: project.id, isGold: false } },
      orderBy: { id: 'asc' },
      include: { comparison: { include: { prompt: true, responseA: true, responseB: true } } },
    });
    if (preferences.length < 4)
      throw new Error(`Only ${preferences.length} judgments so far; a round needs at least 4.`);
    // A snapshot like any other: its file hashed, so the lineage it is cited in downloads and verifies.
    const snapshot = await createRoundSnapshot(
      prisma,
      project.id,
      `round-${round.number}-attempt-${attempt}`,
      preferences.map((p) => p.id),
    );
    await prisma.trainingRound.updateMany({ where: owned, data: { snapshotId: snapshot.id } });
    finishPhase(snapshotPhase);

    // 2. Reward model, from the weights of the lineage's first (SFT) policy, the KL reference: its
    //    likelihood term then scores what that policy would say, the same in every round, rather
    //    than the parent's own habits (which would reward a parent's mistakes back to it).
    //    Held-out accuracy on a fifth of the prompts.
    await enter(rmPhase, `Fitting the reward model on ${preferences.length} judgments`);
    const examples: (ComparisonExample & { promptId: string })[] = preferences.map((p) => ({
      prompt: promptText(p.comparison.prompt.messages),
      responseA: p.comparison.responseA.text,
      responseB: p.comparison.responseB.text,
      choice: p.choice,
      strength: p.strength,
      promptId: p.comparison.promptId,
    }));
    const heldOut = (promptId: string) =>
      parseInt(createHash('sha256').update(promptId).digest('hex').slice(0, 8), 16) % 5 === 0;
    const rmTrain = examples.filter((e) => !heldOut(e.promptId));
    const rmValidation = examples.filter((e) => heldOut(e.promptId));
    const parent = await loadPolicyVersion(prisma, parentId);
    const reference = freezeCopy(await loadPolicyVersion(prisma, await rootVersionId(prisma, parentId)));
    const rm = RewardModel.fromPolicy(reference);
    // Up to rewardModelEpochs passes, keeping the epoch with the lowest held-out loss.
    const fit = await fitRewardModel(
      rm,
      rmTrain,
      rmValidation,
      { maxEpochs: config.rewardModelEpochs, patience: RM_PATIENCE, config: { seed: config.seed } },
      async (epoch, loss, validationLoss) => {
        await event('reward-model', { epoch, loss, validationLoss }, epoch);
        await progress(rmPhase, epoch / config.rewardModelEpochs);
      },
    );
    const rmTrainEval = evaluateRewardModel(rm, rmTrain);
    const rmValEval = rmValidation.length ? evaluateRewardModel(rm, rmValidation) : null;
    const rmArtifact = await saveArtifact(prisma, rm.encode({ meta: { roundId } }), {
      projectId: project.id,
    });
    createdArtifacts.push(rmArtifact);
    await event('artifact', { artifactId: rmArtifact, kind: 'reward-model' });
    const rewardModel = await prisma.rewardModel.create({
      data: {
        projectId: project.id,
        roundId,
        artifactId: rmArtifact,
        kind: 'backbone',
        metrics: {
          trainAccuracy: rmTrainEval.accuracy,
          validationAccuracy: rmValEval?.accuracy ?? null,
          train: rmTrain.length,
          validation: rmValidation.length,
          epochs: fit.epochs,
          bestEpoch: fit.bestEpoch,
        } as Prisma.InputJsonObject,
      },
    });
    finishPhase(rmPhase);

    // 3. Policy optimization from the parent, in small chunks so progress and cancellation show.
    await enter(policyPhase, `Optimizing the policy with ${round.algorithm}`);
    const policy = trainableCopy(parent);
    const prompts = await prisma.prompt.findMany({
      where: { projectId: project.id },
      orderBy: { id: 'asc' },
    });
    const trainPrompts = prompts.filter((p) => p.split === 'TRAIN').map((p) => promptText(p.messages));
    const evalPrompts = prompts.filter((p) => p.split !== 'TRAIN');
    const history = await optimize(
      round.algorithm,
      policy,
      reference,
      rm,
      trainPrompts,
      examples,
      // Each round its own prompts and samples (the same again when a round is retried).
      { ...config, seed: config.seed + (round.number - 1) * 1_000_003 },
      async (step, total, stats) => {
        await event('policy', stats, step);
        await progress(policyPhase, step / total);
      },
    );
    finishPhase(policyPhase);

    // 4. Evaluation on held-out prompts: reward, KL to the SFT reference, length, win rate vs parent.
    await enter(evalPhase, 'Evaluating on held-out prompts');
    const evalTexts = (evalPrompts.length ? evalPrompts : prompts.slice(0, 40)).map((p) =>
      promptText(p.messages),
    );
    const evaluation = evaluatePolicy(policy, reference, rm, evalTexts, EVAL_SAMPLING, config.seed);
    const parentEvaluation = evaluatePolicy(parent, reference, rm, evalTexts, EVAL_SAMPLING, config.seed);
    const vsParent = winRate(policy, parent, rm, evalTexts, EVAL_SAMPLING, config.seed);
    const metrics: Record<string, unknown> = {
      rmTrainAccuracy: rmTrainEval.accuracy,
      rmValidationAccuracy: rmValEval?.accuracy ?? null,
      rmAccuracyByStrength: rmValEval?.byStrength ?? null,
      judgments: preferences.length,
      reward: evaluation.meanReward,
      parentReward: parentEvaluation.meanReward,
      kl: evaluation.kl,
      meanLength: evaluation.meanLength,
      parentMeanLength: parentEvaluation.meanLength,
      lengthDrift:
        parentEvaluation.meanLength > 0 ? evaluation.meanLength / parentEvaluation.meanLength : null,
      winRateVsParent: vsParent.winRate,
      policySteps: history.length,
    };
    if (project.isDemo) {
      // The demo knows the right answers: report what the hidden utility thinks too.
      const answers = new Map(
        prompts.map((p) => [
          promptText(p.messages),
          String((p.metadata as { answer?: string }).answer ?? ''),
        ]),
      );
      const utility = (samples: { prompt: string; response: string }[]) =>
        samples.reduce((sum, s) => sum + demoUtility(s.response, answers.get(s.prompt) ?? ''), 0) /
        Math.max(1, samples.length);
      const correct = (samples: { prompt: string; response: string }[]) =>
        samples.filter((s) => demoUtility(s.response, answers.get(s.prompt) ?? '') > 0).length /
        Math.max(1, samples.length);
      metrics.utility = utility(evaluation.samples);
      metrics.parentUtility = utility(parentEvaluation.samples);
      metrics.correctShare = correct(evaluation.samples);
      metrics.parentCorrectShare = correct(parentEvaluation.samples);
    }
    await event('evaluation', metrics);
    finishPhase(evalPhase);

    // 5. Publish: weights first (large), then the version and the round's end in one transaction.
    await enter(comparisonPhase, 'Publishing the new version');
    const artifactId = await savePolicy(prisma, policy, project.id, { roundId, algorithm: round.algorithm });
    createdArtifacts.push(artifactId);
    await event('artifact', { artifactId, kind: 'policy' });
    const samplesFor = config.generateComparisons
      ? sampleForComparisons(
          policy,
          parent,
          // A different sample of prompts each round, so judgments spread over all of them.
          new Rng(config.seed + round.number)
            .shuffle(prompts.filter((p) => p.split === 'TRAIN'))
            .slice(0, config.comparisonPrompts),
          config.seed + 97,
        )
      : [];
    await progress(comparisonPhase, 0.5);
    const published = await prisma.$transaction(async (tx) => {
      const still = await tx.trainingRound.findFirst({ where: owned });
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
          rewardModelId: rewardModel.id,
          snapshotId: snapshot.id,
          roundId,
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
            roundId,
          },
        });
      }
      await tx.trainingRound.update({
        where: { id: roundId },
        data: {
          status: 'SUCCEEDED',
          phase: 'done',
          progress: 1,
          metrics: metrics as Prisma.InputJsonObject,
          finishedAt: new Date(),
        },
      });
      await maybePromote(tx, project, version.id, metrics);
      return true;
    });
    for (const model of [policy, parent, reference]) model.model.dispose();
    if (!published) throw new RoundCancelled('another attempt took over this round');
    await event('done', metrics, null, 'Round finished');
    log(
      `round ${round.number}: done (win rate vs parent ${vsParent.winRate.toFixed(2)}, KL ${evaluation.kl.toFixed(2)})`,
    );
  } catch (error) {
    const cancelled = error instanceof RoundCancelled;
    await removeArtifacts(prisma, createdArtifacts);
    await prisma.rewardModel.deleteMany({ where: { roundId } });
    const ended = await prisma.trainingRound.updateMany({
      where: owned,
      data: cancelled
        ? { status: 'CANCELLED', phase: 'cancelled', finishedAt: new Date() }
        : {
            status: 'FAILED',
            phase: 'failed',
            error: (error as Error).message.slice(0, 2000),
            finishedAt: new Date(),
          },
    });
    if (ended.count)
      await event(cancelled ? 'cancelled' : 'failed', {}, null, (error as Error).message.slice(0, 2000));
    log(`round ${round.number}: ${cancelled ? 'cancelled' : `failed: ${(error as Error).message}`}`);
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

/** Automatic promotion, when the project's schedule asks for it and the margin is met. */
async function maybePromote(
  tx: Prisma.TransactionClient,
  project: { id: string; schedule: unknown },
  versionId: string,
  metrics: Record<string, unknown>,
): Promise<void> {
  const schedule = (project.schedule ?? {}) as { autoPromote?: boolean; promoteMargin?: number };
  if (!schedule.autoPromote) return;
  const winRateVsParent = Number(metrics.winRateVsParent ?? 0);
  if (winRateVsParent < 0.5 + (schedule.promoteMargin ?? 0.05)) return;
  await tx.policyVersion.update({ where: { id: versionId }, data: { promotedAt: new Date() } });
  await tx.project.update({ where: { id: project.id }, data: { currentPolicyVersionId: versionId } });
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

type Report = (step: number, total: number, stats: Record<string, unknown>) => Promise<void>;

/** Runs the chosen algorithm one iteration at a time (each call continues the same optimizer). */
async function optimize(
  algorithm: string,
  policy: Policy,
  reference: Policy,
  scorer: RewardScorer,
  prompts: string[],
  examples: ComparisonExample[],
  config: Required<RoundConfig>,
  report: Report,
): Promise<IterationStats[]> {
  const history: IterationStats[] = [];
  let optimizer: AdamW | undefined;
  let valueHead: ScalarHead | undefined;
  const common = { learningRate: config.learningRate, promptsPerIteration: config.promptsPerIteration };
  if (algorithm === 'DPO') {
    const epochs = Math.max(1, Math.min(config.iterations, 20));
    for (let epoch = 0; epoch < epochs; epoch++) {
      const result = trainDPO(
        policy,
        reference,
        examples,
        {
          epochs: 1,
          beta: config.beta > 0 ? config.beta : 0.1,
          learningRate: config.learningRate,
          seed: config.seed + epoch,
        },
        { optimizer },
      );
      optimizer = result.optimizer;
      const last = result.history.at(-1);
      const stats = {
        iteration: epoch,
        meanScore: last?.rewardAccuracy ?? 0,
        kl: 0,
        meanLength: 0,
        loss: last?.loss ?? 0,
      };
      history.push(stats);
      await report(epoch + 1, epochs, { ...stats });
    }
    return history;
  }
  for (let it = 0; it < config.iterations; it++) {
    const seed = config.seed + it * 7919;
    let stats: IterationStats | undefined;
    if (algorithm === 'PPO') {
      const result = trainPPO(
        policy,
        reference,
        scorer,
        prompts,
        { ...common, iterations: 1, klCoef: config.beta, seed },
        { optimizer, valueHead },
      );
      optimizer = result.optimizer;
      valueHead = result.valueHead;
      stats = result.history[0];
    } else if (algorithm === 'GRPO') {
      const result = trainGRPO(
        policy,
        reference,
        scorer,
        prompts,
        { ...common, iterations: 1, k: config.samplesPerPrompt, beta: config.beta, seed },
        { optimizer },
      );
      optimizer = result.optimizer;
      stats = result.history[0];
    } else if (algorithm === 'BEST_OF_N') {
      const result = trainBestOfN(
        policy,
        reference,
        scorer,
        prompts,
        { ...common, iterations: 1, k: config.samplesPerPrompt, seed },
        { optimizer },
      );
      optimizer = result.optimizer;
      stats = result.history[0];
    } else {
      const result = trainRLOO(
        policy,
        reference,
        scorer,
        prompts,
        { ...common, iterations: 1, k: config.samplesPerPrompt, beta: config.beta, seed },
        { optimizer },
      );
      optimizer = result.optimizer;
      stats = result.history[0];
    }
    if (stats) {
      const point = { ...stats, iteration: it };
      history.push(point);
      await report(it + 1, config.iterations, { ...point });
    }
  }
  return history;
}
