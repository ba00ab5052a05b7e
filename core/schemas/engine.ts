// Rounds on external training engines (TRL first): a round's engine and its settings, and the
// protocol its workers speak over HTTP (claim with a lease and an attempt number, heartbeat,
// events, metrics, snapshot, results, fail). The settings' defaults and limits are in
// engine-defaults.ts, which the web bundle reads without the schema library.
import { Type, type Static } from 'typebox';
import { Timestamp } from './common.js';
import {
  BASE_MODEL_MAX_LENGTH,
  ENGINE_ALGORITHM_VALUES,
  ENGINE_DEFAULTS,
  ENGINE_LIMITS,
} from './engine-defaults.js';

export { ENGINE_DEFAULTS };

export const EngineSchema = Type.Union([Type.Literal('builtin'), Type.Literal('trl')], {
  description:
    'builtin: the TensorFlow.js trainer (default); trl: an external worker (Hugging Face TRL) takes the round over HTTP.',
});
export type Engine = Static<typeof EngineSchema>;

export const EngineAlgorithmSchema = Type.Union(
  [Type.Literal('dpo'), Type.Literal('rloo'), Type.Literal('grpo')],
  { description: 'dpo: DPOTrainer on the preferences; rloo/grpo: online RL with the round’s reward model.' },
);

/** The schema's algorithms are exactly engine-defaults.ts's list (the web reads that one). */
const sameAlgorithms: [
  Static<typeof EngineAlgorithmSchema>,
  (typeof ENGINE_ALGORITHM_VALUES)[number],
] extends [(typeof ENGINE_ALGORITHM_VALUES)[number], Static<typeof EngineAlgorithmSchema>]
  ? true
  : false = true;
void sameAlgorithms;

/** What an external engine trains with; the worker maps these onto its trainers' arguments. */
export const EngineSettingsSchema = Type.Object(
  {
    baseModel: Type.String({
      minLength: 1,
      maxLength: BASE_MODEL_MAX_LENGTH,
      description: 'The policy to start from: a local path on the worker or a hub name.',
    }),
    algorithm: Type.Optional(EngineAlgorithmSchema),
    lora: Type.Optional(
      Type.Boolean({ description: 'Train a LoRA adapter (PEFT) instead of every weight.' }),
    ),
    loraRank: Type.Optional(
      Type.Integer({ minimum: ENGINE_LIMITS.loraRank.min, maximum: ENGINE_LIMITS.loraRank.max }),
    ),
    beta: Type.Optional(
      Type.Number({
        minimum: ENGINE_LIMITS.beta.min,
        maximum: ENGINE_LIMITS.beta.max,
        description: 'DPO β, or the KL coefficient.',
      }),
    ),
    learningRate: Type.Optional(
      Type.Number({
        exclusiveMinimum: ENGINE_LIMITS.learningRate.min,
        maximum: ENGINE_LIMITS.learningRate.max,
      }),
    ),
    epochs: Type.Optional(
      Type.Integer({ minimum: ENGINE_LIMITS.epochs.min, maximum: ENGINE_LIMITS.epochs.max }),
    ),
  },
  { additionalProperties: false },
);
export type EngineSettings = Static<typeof EngineSettingsSchema>;

export const LeaseSeconds = Type.Integer({
  minimum: 10,
  maximum: 7 * 24 * 3600,
  description: 'How long the lease lasts without a heartbeat (default 120 s; up to a week for offline runs).',
});

export const ClaimBody = Type.Object(
  {
    engine: Type.Literal('trl'),
    worker: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'A name for logs.' })),
    leaseSeconds: Type.Optional(LeaseSeconds),
  },
  { additionalProperties: false },
);
export type ClaimBody = Static<typeof ClaimBody>;

export const ComparisonPromptSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  text: Type.String({ description: 'The prompt as the built-in trainer reads it (turns joined).' }),
  messages: Type.Unknown({ description: 'The prompt’s messages as stored.' }),
});

/** What a claim hands the worker: the round, its fencing attempt and lease, and where its data is. */
export const ClaimSchema = Type.Object({
  roundId: Type.String({ format: 'uuid' }),
  projectId: Type.String({ format: 'uuid' }),
  number: Type.Integer(),
  attempt: Type.Integer({ description: 'The fencing token: every later call names it in its path.' }),
  leaseExpiresAt: Timestamp,
  leaseSeconds: Type.Integer(),
  engine: EngineSchema,
  settings: Type.Object({
    baseModel: Type.String(),
    algorithm: EngineAlgorithmSchema,
    lora: Type.Boolean(),
    loraRank: Type.Integer(),
    beta: Type.Number(),
    learningRate: Type.Number(),
    epochs: Type.Integer(),
  }),
  snapshot: Type.Object({
    id: Type.String({ format: 'uuid' }),
    format: Type.String(),
    rows: Type.Integer(),
    sha256: Type.String(),
    path: Type.String({ description: 'Where to download it (relative to the server).' }),
  }),
  parent: Type.Object({
    id: Type.String({ format: 'uuid' }),
    name: Type.String(),
    kind: Type.String(),
  }),
  comparisonPrompts: Type.Array(ComparisonPromptSchema),
  paths: Type.Object(
    {
      heartbeat: Type.String(),
      events: Type.String(),
      metrics: Type.String(),
      results: Type.String(),
      fail: Type.String(),
    },
    { description: 'The round’s protocol routes for this attempt.' },
  ),
});
export type Claim = Static<typeof ClaimSchema>;

export const AttemptParams = Type.Object(
  { id: Type.String({ format: 'uuid' }), attempt: Type.Integer({ minimum: 1 }) },
  { additionalProperties: false },
);
export type AttemptParams = Static<typeof AttemptParams>;

export const HeartbeatBody = Type.Object(
  { leaseSeconds: Type.Optional(LeaseSeconds) },
  { additionalProperties: false },
);
export const HeartbeatSchema = Type.Object({
  cancel: Type.Boolean({ description: 'The round was cancelled: stop and send nothing more.' }),
  leaseExpiresAt: Type.Union([Timestamp, Type.Null()]),
});

export const EngineEventSchema = Type.Object(
  {
    phase: Type.String({
      minLength: 1,
      maxLength: 40,
      description:
        'snapshot, reward-model, policy, evaluation, comparisons (as the Rounds page charts them).',
    }),
    step: Type.Optional(Type.Integer({ minimum: 0 })),
    data: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), {
        description: 'e.g. {loss} for reward-model/policy steps, {meanScore, kl} for RL.',
      }),
    ),
    message: Type.Optional(Type.String({ maxLength: 2000 })),
  },
  { additionalProperties: false },
);
export const EventsBody = Type.Object(
  {
    events: Type.Array(EngineEventSchema, { maxItems: 1000 }),
    phase: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })),
    progress: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  },
  { additionalProperties: false },
);
export type EventsBody = Static<typeof EventsBody>;

export const MetricsBody = Type.Object(
  { metrics: Type.Record(Type.String(), Type.Unknown()) },
  { additionalProperties: false },
);

export const ResultsBody = Type.Object(
  {
    rewardModel: Type.Object(
      {
        metrics: Type.Object(
          { heldOutAccuracy: Type.Number({ minimum: 0, maximum: 1 }) },
          { additionalProperties: Type.Unknown() },
        ),
      },
      { additionalProperties: false },
    ),
    version: Type.Object(
      {
        kind: Type.Union([Type.Literal('EXTERNAL'), Type.Literal('IMPORTED')], {
          description:
            'EXTERNAL: served at an OpenAI-compatible endpoint (e.g. vLLM with the weights or adapter); IMPORTED: only its responses come back.',
        }),
        name: Type.Optional(Type.String({ minLength: 1, maxLength: 120 })),
        endpointUrl: Type.Optional(Type.String({ minLength: 1, maxLength: 2000 })),
        endpointModel: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
        metrics: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
      },
      { additionalProperties: false },
    ),
    responses: Type.Array(
      Type.Object(
        {
          promptId: Type.String({ format: 'uuid' }),
          text: Type.String({ maxLength: 100_000, description: 'The new version’s response.' }),
          parentText: Type.String({ maxLength: 100_000, description: 'The parent version’s response.' }),
        },
        { additionalProperties: false },
      ),
      { maxItems: 5000, description: 'For the round’s comparison prompts: new against parent.' },
    ),
    metrics: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { additionalProperties: false },
);
export type ResultsBody = Static<typeof ResultsBody>;

export const FailBody = Type.Object(
  { error: Type.String({ minLength: 1, maxLength: 2000 }) },
  { additionalProperties: false },
);
