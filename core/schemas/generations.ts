// Generation jobs: a project's prompts answered by its external versions' endpoints.
import { Type, type Static } from 'typebox';
import { NullableTimestamp, Timestamp } from './common.js';

/** Most samples of one prompt from one version in a job. */
export const MAX_SAMPLES_PER_PROMPT = 16;
/** Most responses (prompts × versions × samples) one job asks for. */
export const MAX_GENERATION_ITEMS = 100_000;

const PromptSplitSchema = Type.Union([
  Type.Literal('TRAIN'),
  Type.Literal('VALIDATION'),
  Type.Literal('TEST'),
]);

/** Which prompts: every condition given must hold; none given = all of the project's prompts. */
export const PromptSelectionSchema = Type.Object(
  {
    split: Type.Optional(PromptSplitSchema),
    textContains: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        description: 'A message of the prompt contains this text (case-insensitive).',
      }),
    ),
    externalIdPrefix: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        description: 'The prompt’s external id starts with this.',
      }),
    ),
    metadata: Type.Optional(
      Type.Object(
        {
          key: Type.String({ minLength: 1, maxLength: 100 }),
          value: Type.Union([Type.String({ maxLength: 200 }), Type.Number(), Type.Boolean()]),
        },
        {
          additionalProperties: false,
          description: 'The prompt’s metadata has this key with this value (compared as text).',
        },
      ),
    ),
    random: Type.Optional(
      Type.Object(
        {
          count: Type.Integer({ minimum: 1, maximum: MAX_GENERATION_ITEMS }),
          seed: Type.Integer({ minimum: 0, maximum: 2_147_483_647 }),
        },
        {
          additionalProperties: false,
          description: 'Of the prompts the other conditions select, this many drawn with this seed.',
        },
      ),
    ),
  },
  { additionalProperties: false },
);
export type PromptSelection = Static<typeof PromptSelectionSchema>;

export const CreateGenerationBody = Type.Object(
  {
    selection: PromptSelectionSchema,
    versionIds: Type.Array(Type.String({ format: 'uuid' }), {
      minItems: 1,
      maxItems: 20,
      uniqueItems: true,
      description: 'External policy versions of the project whose endpoints answer.',
    }),
    samplesPerPrompt: Type.Integer({ minimum: 1, maximum: MAX_SAMPLES_PER_PROMPT }),
  },
  { additionalProperties: false },
);
export type CreateGenerationBody = Static<typeof CreateGenerationBody>;

export const GenerationStatusSchema = Type.Union([
  Type.Literal('QUEUED'),
  Type.Literal('RUNNING'),
  Type.Literal('SUCCEEDED'),
  Type.Literal('FAILED'),
  Type.Literal('CANCELLED'),
]);
export type GenerationStatus = Static<typeof GenerationStatusSchema>;

export const GenerationSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  projectId: Type.String({ format: 'uuid' }),
  status: GenerationStatusSchema,
  selection: PromptSelectionSchema,
  versions: Type.Array(Type.Object({ id: Type.String({ format: 'uuid' }), name: Type.String() })),
  samplesPerPrompt: Type.Integer(),
  total: Type.Integer({ description: 'Responses asked for: prompts × versions × samples per prompt.' }),
  done: Type.Integer({ description: 'Stored (including those already present from an earlier job).' }),
  failed: Type.Integer({ description: 'Given up on: a non-retryable error, or retries exhausted.' }),
  error: Type.Union([Type.String(), Type.Null()]),
  attempt: Type.Integer(),
  cancelRequested: Type.Boolean(),
  createdById: Type.Union([Type.String(), Type.Null()]),
  createdAt: Timestamp,
  startedAt: NullableTimestamp,
  finishedAt: NullableTimestamp,
  updatedAt: Timestamp,
});
export type Generation = Static<typeof GenerationSchema>;

export const GenerationFailureSchema = Type.Object({
  promptId: Type.String({ format: 'uuid' }),
  externalId: Type.Union([Type.String(), Type.Null()]),
  promptPreview: Type.String(),
  failed: Type.Integer({ description: 'Failed items of this prompt.' }),
  items: Type.Array(
    Type.Object({
      versionId: Type.String({ format: 'uuid' }),
      versionName: Type.String(),
      sampleIndex: Type.Integer(),
      attempts: Type.Integer(),
      error: Type.Union([Type.String(), Type.Null()]),
    }),
  ),
});
export type GenerationFailure = Static<typeof GenerationFailureSchema>;

export const GenerationDetailSchema = Type.Object({
  job: GenerationSchema,
  failures: Type.Array(GenerationFailureSchema, {
    description: 'Prompts with failed items, most failures first (at most 100).',
  }),
  failedPrompts: Type.Integer({ description: 'Prompts with at least one failed item.' }),
});
export type GenerationDetail = Static<typeof GenerationDetailSchema>;
