// The demo project's first policy: supervised fine-tuning on its noisy demonstrations, then two
// sampled responses per practice prompt, paired into comparisons ready to rate.
import type { Prisma, PrismaClient } from '../../server/db/client.js';
import { createPolicy } from '../policy.js';
import { Rng } from '../runtime.js';
import { generate } from '../sampling.js';
import { trainSFT } from '../sft.js';
import { Tokenizer } from '../tokenizer.js';
import type { GPTConfig } from '../model.js';
import { promptText, savePolicy } from './policy-store.js';

export interface DemoSettings {
  /** SFT steps for the first policy (a few minutes on two cores at the default). */
  sftSteps: number;
  model: Partial<GPTConfig>;
  /** Sampled responses per prompt for the first comparisons. */
  samplesPerPrompt: number;
}

export const DEFAULT_DEMO: DemoSettings = {
  sftSteps: 1200, // about where the validation loss bottoms out; the noise in the data stays visible
  model: { contextLength: 48, nLayer: 2, nHead: 4, nEmbd: 96 }, // ~0.25M parameters: minutes, not hours
  samplesPerPrompt: 2, // one comparison per prompt
};

interface DemoMetadata {
  answer?: string;
  demonstrations?: string[];
}

export async function seedDemo(
  prisma: PrismaClient,
  projectId: string,
  settings: DemoSettings = DEFAULT_DEMO,
  log: (message: string) => void = () => {},
): Promise<void> {
  const project = await prisma.project.findUniqueOrThrow({ where: { id: projectId } });
  if (project.currentPolicyVersionId) return; // done by an earlier attempt
  const prompts = await prisma.prompt.findMany({ where: { projectId }, orderBy: { createdAt: 'asc' } });
  const demos = prompts.flatMap((prompt) =>
    ((prompt.metadata as DemoMetadata).demonstrations ?? []).map((response) => ({
      prompt: promptText(prompt.messages),
      response,
      split: prompt.split,
    })),
  );
  const train = demos.filter((demo) => demo.split === 'TRAIN');
  const validation = demos.filter((demo) => demo.split !== 'TRAIN');
  const tokenizer = Tokenizer.fromTexts([
    ...demos.flatMap((demo) => [demo.prompt, demo.response]),
    'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:+=',
  ]);
  const policy = createPolicy(tokenizer, settings.model);
  log(`demo: SFT on ${train.length} demonstrations for ${settings.sftSteps} steps`);
  const sft = await trainSFT(policy, train, validation, {
    steps: settings.sftSteps,
    evalEvery: Math.max(10, Math.floor(settings.sftSteps / 5)),
  });
  const validationLoss = sft.validation.at(-1)?.loss ?? null;

  const trainPrompts = prompts.filter((prompt) => prompt.split === 'TRAIN');
  const texts = trainPrompts.map((prompt) => promptText(prompt.messages));
  const rng = new Rng(11);
  const samples = Array.from({ length: settings.samplesPerPrompt }, () =>
    generate(
      policy.model,
      texts.map((text) => tokenizer.encodePrompt(text)),
      { temperature: 1, topK: 0, maxNewTokens: 24, batchSize: 64 },
      rng,
    ).map((ids) => tokenizer.decode(ids).trim()),
  );
  const artifactId = await savePolicy(prisma, policy, projectId, { source: 'demo-sft', validationLoss });
  policy.model.dispose();

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
            demonstrations: train.length,
          } as Prisma.InputJsonObject,
        },
      });
      await tx.project.update({ where: { id: projectId }, data: { currentPolicyVersionId: version.id } });
      const responses = await tx.response.createManyAndReturn({
        data: trainPrompts.flatMap((prompt, index) =>
          samples.map((sample) => ({
            promptId: prompt.id,
            policyVersionId: version.id,
            text: sample[index] || '(empty)',
            samplingParams: { temperature: 1 },
          })),
        ),
        select: { id: true, promptId: true },
      });
      const byPrompt = new Map<string, string[]>();
      for (const response of responses)
        byPrompt.set(response.promptId, [...(byPrompt.get(response.promptId) ?? []), response.id]);
      await tx.comparison.createMany({
        data: trainPrompts.flatMap((prompt) => {
          const ids = byPrompt.get(prompt.id) ?? [];
          return ids.flatMap((a, i) =>
            ids.slice(i + 1).map((b) => ({
              projectId,
              promptId: prompt.id,
              responseAId: a,
              responseBId: b,
              requiredVotes: fresh.overlap,
            })),
          );
        }),
      });
    },
    { timeout: 120_000 },
  );
  log(
    `demo: first policy ready (validation loss ${validationLoss?.toFixed(3)}), ${trainPrompts.length} comparisons to rate`,
  );
}
