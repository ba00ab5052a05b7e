// The demo project's first policy: supervised fine-tuning on its noisy demonstrations, then two
// sampled responses per practice prompt, paired into comparisons ready to rate.
//
// Fine-tuning takes minutes on two cores, so the repository ships the result
// (trainer/checkpoints/demo-sft.bin, made by `npx tsx trainer/demo-checkpoint.ts`): when it was
// trained on exactly the project's demonstrations with exactly these settings, the job loads it
// and goes straight to sampling; otherwise it fine-tunes here as before. Either way the project
// shows what is being done and how far it is (Project.preparingPhase/preparingProgress), and the
// console gets a line at each phase.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Prisma, PrismaClient } from '../../core/db/client.js';
import { projectRoot } from '../../core/paths.js';
import type { PreparingPhase } from '../../core/schemas/projects.js';
import { readCheckpointHeader } from '../checkpoint.js';
import { DEFAULT_GPT, type GPTConfig } from '../model.js';
import { createPolicy, decodePolicy, encodePolicy, type Policy } from '../policy.js';
import { Rng } from '../runtime.js';
import { generate } from '../sampling.js';
import { DEFAULT_SFT, trainSFT, type Demonstration } from '../sft.js';
import { Tokenizer } from '../tokenizer.js';
import { distinctPairs, redrawRepeats } from './pairing.js';
import { promptText, savePolicy } from './policy-store.js';

export interface DemoSettings {
  /** SFT steps for the first policy (a few minutes on two cores at the default). */
  sftSteps: number;
  model: Partial<GPTConfig>;
  /** Sampled responses per prompt for the first comparisons. */
  samplesPerPrompt: number;
  /**
   * The shipped first policy: loaded instead of fine-tuning when it was fine-tuned on exactly
   * these demonstrations with exactly these settings. Absent or null: always fine-tune.
   */
  checkpoint?: string | null;
}

/** Where the repository keeps the demo's first policy. */
export const DEMO_CHECKPOINT = path.join(projectRoot, 'trainer', 'checkpoints', 'demo-sft.bin');

export const DEFAULT_DEMO: DemoSettings = {
  sftSteps: 1200, // about where the validation loss bottoms out; the noise in the data stays visible
  model: { contextLength: 48, nLayer: 2, nHead: 4, nEmbd: 96 }, // ~0.25M parameters: minutes, not hours
  samplesPerPrompt: 2, // one comparison per prompt
  checkpoint: DEMO_CHECKPOINT,
};

/** Sampling of the first responses (the same whether the policy was loaded or fine-tuned here). */
const SAMPLING = { temperature: 1, topK: 0, maxNewTokens: 24, batchSize: 64 };
/** Prompts sampled between two progress reports: a multiple of the batch, so chunks change nothing. */
const SAMPLING_CHUNK = SAMPLING.batchSize * 5;

/** One demo prompt as the first policy learns from it. */
export interface DemoPrompt {
  text: string;
  split: string;
  demonstrations: string[];
}

export interface DemoTrainingData {
  train: Demonstration[];
  validation: Demonstration[];
  tokenizer: Tokenizer;
}

/** The demonstrations of the practice prompts to train on, the others to validate, and the vocabulary. */
export function demoTrainingData(prompts: DemoPrompt[]): DemoTrainingData {
  const demos = prompts.flatMap((prompt) =>
    prompt.demonstrations.map((response) => ({ prompt: prompt.text, response, split: prompt.split })),
  );
  const pair = ({ prompt, response }: { prompt: string; response: string }) => ({ prompt, response });
  return {
    train: demos.filter((demo) => demo.split === 'TRAIN').map(pair),
    validation: demos.filter((demo) => demo.split !== 'TRAIN').map(pair),
    tokenizer: Tokenizer.fromTexts([
      ...demos.flatMap((demo) => [demo.prompt, demo.response]),
      'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:+=',
    ]),
  };
}

/**
 * What decides the fine-tuned weights: the demonstrations in order, the vocabulary, the model and
 * the fine-tuning settings. A shipped policy is used only where this matches.
 */
export function demoFingerprint(data: DemoTrainingData, settings: Pick<DemoSettings, 'sftSteps' | 'model'>) {
  const model = { ...DEFAULT_GPT, vocabSize: data.tokenizer.vocabSize, ...settings.model };
  const identity = {
    format: 1,
    model,
    sft: { ...DEFAULT_SFT, steps: settings.sftSteps },
    chars: data.tokenizer.chars,
    train: data.train,
    validation: data.validation,
  };
  return createHash('sha256').update(JSON.stringify(identity)).digest('hex');
}

export interface DemoPolicy {
  policy: Policy;
  validationLoss: number | null;
}

/** Fine-tunes the first policy on the demonstrations (single thread: the same weights every run). */
export async function trainDemoPolicy(
  data: DemoTrainingData,
  settings: Pick<DemoSettings, 'sftSteps' | 'model'>,
  onStep?: (step: number, steps: number) => Promise<void> | void,
): Promise<DemoPolicy> {
  const policy = createPolicy(data.tokenizer, settings.model);
  const sft = await trainSFT(
    policy,
    data.train,
    data.validation,
    { steps: settings.sftSteps, evalEvery: Math.max(10, Math.floor(settings.sftSteps / 5)) },
    { onStep: onStep && ((step) => onStep(step + 1, settings.sftSteps)) },
  );
  return { policy, validationLoss: sft.validation.at(-1)?.loss ?? null };
}

/** The first policy as the repository ships it: its weights, and in its header what made them. */
export function encodeDemoCheckpoint(
  demo: DemoPolicy,
  data: DemoTrainingData,
  settings: Pick<DemoSettings, 'sftSteps' | 'model'>,
): Buffer {
  return encodePolicy(demo.policy, {
    step: settings.sftSteps,
    meta: {
      demo: {
        fingerprint: demoFingerprint(data, settings),
        validationLoss: demo.validationLoss,
        sftSteps: settings.sftSteps,
        demonstrations: data.train.length,
      },
    },
  });
}

interface ShippedMeta {
  demo?: { fingerprint?: string; validationLoss?: number | null };
}

/**
 * The shipped policy if it exists and was made from exactly these data and settings; otherwise
 * why not (it is then fine-tuned here).
 */
export function loadShippedPolicy(
  file: string,
  data: DemoTrainingData,
  settings: Pick<DemoSettings, 'sftSteps' | 'model'>,
): { demo: DemoPolicy; sha256: string } | { reason: string } {
  if (!existsSync(file)) return { reason: `no shipped first model at ${path.relative(projectRoot, file)}` };
  const buf = readFileSync(file);
  let meta: ShippedMeta;
  try {
    meta = readCheckpointHeader(buf).meta as ShippedMeta;
  } catch (error) {
    return { reason: `the shipped first model is unreadable (${(error as Error).message})` };
  }
  if (meta.demo?.fingerprint !== demoFingerprint(data, settings))
    return { reason: 'the shipped first model was made from other demonstrations or settings' };
  const { policy } = decodePolicy(buf);
  return {
    demo: { policy, validationLoss: meta.demo.validationLoss ?? null },
    sha256: createHash('sha256').update(buf).digest('hex'),
  };
}

interface DemoMetadata {
  answer?: string;
  demonstrations?: string[];
}

/** The demo's prompts in the order they were made (task-1, task-2, …; other ids after, by id). */
function madeOrder(
  a: { externalId: string | null; id: string },
  b: { externalId: string | null; id: string },
) {
  const index = (externalId: string | null) => Number(/^task-(\d+)$/.exec(externalId ?? '')?.[1] ?? Infinity);
  return index(a.externalId) - index(b.externalId) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Phases of the preparation with their share of the progress bar, by how the policy is got. */
const PLANS: Record<'shipped' | 'fine-tune', Partial<Record<PreparingPhase, number>>> = {
  // Loading is a second; sampling 3,200 responses is most of the wait.
  shipped: { loading: 0.05, sampling: 0.85, saving: 0.1 },
  // Fine-tuning is minutes; sampling and saving then take seconds.
  'fine-tune': { loading: 0.01, 'fine-tuning': 0.91, sampling: 0.06, saving: 0.02 },
};

export interface SeedHooks {
  /** After each progress write (tests read the API there). */
  onProgress?: (phase: PreparingPhase, progress: number) => Promise<void> | void;
}

export async function seedDemo(
  prisma: PrismaClient,
  projectId: string,
  settings: DemoSettings = DEFAULT_DEMO,
  log: (message: string) => void = () => {},
  hooks: SeedHooks = {},
): Promise<void> {
  const project = await prisma.project.findUniqueOrThrow({ where: { id: projectId } });
  if (project.currentPolicyVersionId) {
    // Done by an earlier attempt.
    await prisma.project.updateMany({
      where: { id: projectId, preparingPhase: { not: null } },
      data: { preparingPhase: null, preparingProgress: 1 },
    });
    return;
  }

  let plan = PLANS['fine-tune'];
  let phase: PreparingPhase = 'loading';
  let lastWrite = 0;
  let lastProgress = 0;
  /** Records how far the preparation is: the phase at once, progress within it at most every second. */
  const report = async (next: PreparingPhase, fraction: number) => {
    const changed = next !== phase;
    const now = Date.now();
    if (!changed && now - lastWrite < 1000 && fraction < 1) return;
    phase = next;
    lastWrite = now;
    const order = Object.keys(plan) as PreparingPhase[];
    const before = order.slice(0, order.indexOf(next)).reduce((sum, key) => sum + (plan[key] ?? 0), 0);
    // Never backwards within one attempt (a plan switch after loading does not undo its bar).
    const progress = Math.max(lastProgress, Math.min(0.99, before + (plan[next] ?? 0) * fraction));
    lastProgress = progress;
    await prisma.project.updateMany({
      where: { id: projectId, currentPolicyVersionId: null },
      data: { preparingPhase: next, preparingProgress: progress },
    });
    await hooks.onProgress?.(next, progress);
  };
  const percent = () => `${Math.round(lastProgress * 100)}%`;

  try {
    await report('loading', 0);
    const prompts = (await prisma.prompt.findMany({ where: { projectId } })).sort(madeOrder);
    const data = demoTrainingData(
      prompts.map((prompt) => ({
        text: promptText(prompt.messages),
        split: prompt.split,
        demonstrations: (prompt.metadata as DemoMetadata).demonstrations ?? [],
      })),
    );

    let first: DemoPolicy;
    let source: { firstModel: 'shipped'; checkpointSha256: string } | { firstModel: 'fine-tuned' };
    const shipped = settings.checkpoint ? loadShippedPolicy(settings.checkpoint, data, settings) : null;
    if (shipped && 'demo' in shipped) {
      plan = PLANS.shipped;
      first = shipped.demo;
      source = { firstModel: 'shipped', checkpointSha256: shipped.sha256 };
      log(
        `demo: loaded the shipped first model (${path.relative(projectRoot, settings.checkpoint!)}, ` +
          `fine-tuned ${settings.sftSteps} steps on these ${data.train.length} demonstrations)`,
      );
    } else {
      log(
        `demo: fine-tuning the first model on ${data.train.length} demonstrations for ${settings.sftSteps} steps` +
          `${shipped ? ` (${shipped.reason})` : ''}; progress is shown on Rate and on the project`,
      );
      let quarter = 0;
      first = await trainDemoPolicy(data, settings, async (step, steps) => {
        await report('fine-tuning', step / steps);
        // A console line at each quarter of the fine-tuning.
        if (Math.floor((4 * step) / steps) > quarter && step < steps) {
          quarter = Math.floor((4 * step) / steps);
          log(`demo: first model ${percent()} (fine-tuning step ${step} of ${steps})`);
        }
      });
      source = { firstModel: 'fine-tuned' };
    }
    const { policy, validationLoss } = first;
    const { tokenizer } = policy;

    const trainPrompts = prompts.filter((prompt) => prompt.split === 'TRAIN');
    const encoded = trainPrompts.map((prompt) => tokenizer.encodePrompt(promptText(prompt.messages)));
    log(
      `demo: first model ${percent()}: sampling ${settings.samplesPerPrompt} responses to each of ${encoded.length} prompts`,
    );
    const rng = new Rng(11);
    const total = settings.samplesPerPrompt * encoded.length;
    const samples: string[][] = [];
    for (let s = 0; s < settings.samplesPerPrompt; s++) {
      const sample: string[] = [];
      for (let i = 0; i < encoded.length; i += SAMPLING_CHUNK) {
        await report('sampling', (s * encoded.length + i) / Math.max(1, total));
        const ids = generate(policy.model, encoded.slice(i, i + SAMPLING_CHUNK), SAMPLING, rng);
        sample.push(...ids.map((response) => tokenizer.decode(response).trim()));
      }
      samples.push(sample);
      if (s + 1 < settings.samplesPerPrompt)
        log(`demo: first model ${percent()} (sampled ${(s + 1) * encoded.length} of ${total} responses)`);
    }
    // Two equal answers make no comparison: prompts whose samples coincide draw again.
    redrawRepeats(samples, (indexes) =>
      generate(
        policy.model,
        indexes.map((i) => encoded[i]!),
        SAMPLING,
        rng,
      ).map((response) => tokenizer.decode(response).trim()),
    );
    await report('saving', 0);
    const artifactId = await savePolicy(prisma, policy, projectId, { source: 'demo-sft', validationLoss });
    policy.model.dispose();

    let made = 0;
    await prisma.$transaction(
      async (tx) => {
        const fresh = await tx.project.findUniqueOrThrow({ where: { id: projectId } });
        if (fresh.currentPolicyVersionId) return;
        const version = await tx.policyVersion.create({
          data: {
            projectId,
            name: 'sft',
            kind: 'BUILTIN',
            status: 'READY',
            artifactId,
            promotedAt: new Date(),
            metrics: {
              sftValidationLoss: validationLoss,
              sftSteps: settings.sftSteps,
              demonstrations: data.train.length,
              ...source,
            } as Prisma.InputJsonObject,
          },
        });
        await tx.project.update({
          where: { id: projectId },
          data: { currentPolicyVersionId: version.id, preparingPhase: null, preparingProgress: 1 },
        });
        const responses = await tx.response.createManyAndReturn({
          data: trainPrompts.flatMap((prompt, index) =>
            samples.map((sample) => ({
              promptId: prompt.id,
              policyVersionId: version.id,
              text: sample[index] || '(empty)',
              samplingParams: { temperature: 1 },
            })),
          ),
          select: { id: true, promptId: true, text: true },
        });
        const byPrompt = new Map<string, { id: string; text: string }[]>();
        for (const response of responses)
          byPrompt.set(response.promptId, [...(byPrompt.get(response.promptId) ?? []), response]);
        // Only responses whose texts differ are paired (a prompt whose samples still coincide
        // after the redraws gets no comparison).
        const comparisons = await tx.comparison.createMany({
          data: trainPrompts.flatMap((prompt) =>
            distinctPairs(byPrompt.get(prompt.id) ?? []).map(([a, b]) => ({
              projectId,
              promptId: prompt.id,
              responseAId: a.id,
              responseBId: b.id,
              requiredVotes: fresh.overlap,
            })),
          ),
        });
        made = comparisons.count;
      },
      { timeout: 120_000 },
    );
    log(
      `demo: first policy ready (validation loss ${validationLoss?.toFixed(3)}), ${made} comparisons to rate`,
    );
  } catch (error) {
    // Shown until the retry starts over (the queue retries the job).
    await prisma.project
      .updateMany({
        where: { id: projectId, currentPolicyVersionId: null },
        data: { preparingPhase: 'failed' },
      })
      .catch(() => {});
    throw error;
  }
}
