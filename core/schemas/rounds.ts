import { Type, type Static } from 'typebox';
import { NullableTimestamp, Timestamp } from './common.js';
import { EngineSchema, EngineSettingsSchema } from './engine.js';

export const AlgorithmSchema = Type.Union(
  [
    Type.Literal('RLOO'),
    Type.Literal('PPO'),
    Type.Literal('GRPO'),
    Type.Literal('DPO'),
    Type.Literal('BEST_OF_N'),
  ],
  { description: 'Policy optimization: RLOO (default), PPO, GRPO, DPO or best-of-n.' },
);
export type Algorithm = Static<typeof AlgorithmSchema>;

/** The main settings of a round; every field has a default chosen for the built-in model. */
export const RoundConfigSchema = Type.Object(
  {
    iterations: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 2000, description: 'RL iterations (DPO/best-of-n: steps).' }),
    ),
    learningRate: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 0.1 })),
    beta: Type.Optional(Type.Number({ minimum: 0, maximum: 10, description: 'KL coefficient (DPO: β).' })),
    samplesPerPrompt: Type.Optional(Type.Integer({ minimum: 2, maximum: 16 })),
    promptsPerIteration: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
    rewardModelEpochs: Type.Optional(Type.Integer({ minimum: 1, maximum: 20 })),
    /** After training: responses from the new version and its parent, paired for raters. */
    generateComparisons: Type.Optional(Type.Boolean()),
    comparisonPrompts: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000 })),
    seed: Type.Optional(Type.Integer()),
    /**
     * Weigh each judgment by its rater's estimated reliability (Dawid–Skene over the project's
     * judgments and gold) when enough comparisons overlap; raters an admin excluded are left out either way.
     */
    reliabilityWeights: Type.Optional(Type.Boolean()),
    klTarget: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 100,
        description: 'Target KL (nats) of the adaptive KL controller (Ziegler et al.); 0 keeps β fixed.',
      }),
    ),
    klHorizon: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 10_000_000,
        description: 'Horizon of the adaptive KL controller, in samples.',
      }),
    ),
    klLimit: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: 100,
        description:
          'Held-out KL beyond which the policy phase stops early and the result is not better than its parent.',
      }),
    ),
    guardEvery: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 2000,
        description: 'Iterations between held-out checks that may stop the policy phase early (0: none).',
      }),
    ),
    rewardEnsemble: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 5,
        description:
          'Reward models fitted (1: one; 2-5: an ensemble of bootstrap resamples whose disagreement lowers the reward the policy is optimized for, and whose members each judge the result against its parent).',
      }),
    ),
    uncertaintyPenalty: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 100,
        description:
          "With an ensemble: λ of Coste et al.'s uncertainty-weighted reward, mean − λ·variance of the members' rewards (0: their mean).",
      }),
    ),
  },
  { additionalProperties: false },
);
export type RoundConfig = Static<typeof RoundConfigSchema>;

export const CreateRoundBody = Type.Object(
  {
    algorithm: Type.Optional(AlgorithmSchema),
    config: Type.Optional(RoundConfigSchema),
    engine: Type.Optional(EngineSchema),
    /** Required for an external engine (its base model at least). */
    engineSettings: Type.Optional(EngineSettingsSchema),
  },
  { additionalProperties: false },
);
export type CreateRoundBody = Static<typeof CreateRoundBody>;

export const RoundStatusSchema = Type.Union([
  Type.Literal('QUEUED'),
  Type.Literal('RUNNING'),
  Type.Literal('SUCCEEDED'),
  Type.Literal('FAILED'),
  Type.Literal('CANCELLED'),
]);

export const RoundSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  projectId: Type.String({ format: 'uuid' }),
  number: Type.Integer(),
  status: RoundStatusSchema,
  algorithm: AlgorithmSchema,
  config: Type.Record(Type.String(), Type.Unknown()),
  phase: Type.Union([Type.String(), Type.Null()]),
  progress: Type.Number({ description: '0..1 over the whole round' }),
  metrics: Type.Record(Type.String(), Type.Unknown()),
  error: Type.Union([Type.String(), Type.Null()]),
  attempt: Type.Integer(),
  inputPolicyVersionId: Type.Union([Type.String(), Type.Null()]),
  outputPolicyVersionId: Type.Union([Type.String(), Type.Null()]),
  snapshotId: Type.Union([Type.String(), Type.Null()]),
  cancelRequested: Type.Boolean(),
  engine: EngineSchema,
  engineSettings: Type.Record(Type.String(), Type.Unknown()),
  leaseExpiresAt: Type.Union([Timestamp, Type.Null()], {
    description: 'An external worker’s lease; the round goes to another worker once it lapses.',
  }),
  workerName: Type.Union([Type.String(), Type.Null()]),
  createdAt: Timestamp,
  startedAt: NullableTimestamp,
  finishedAt: NullableTimestamp,
});
export type Round = Static<typeof RoundSchema>;

export const RoundEventSchema = Type.Object({
  id: Type.String({ description: 'Monotonic; pass as `after` to get only newer events.' }),
  phase: Type.String(),
  step: Type.Union([Type.Integer(), Type.Null()]),
  data: Type.Record(Type.String(), Type.Unknown()),
  message: Type.Union([Type.String(), Type.Null()]),
  createdAt: Timestamp,
});
export type RoundEvent = Static<typeof RoundEventSchema>;

export const RoundEventsQuery = Type.Object(
  {
    after: Type.Optional(Type.String({ pattern: '^[0-9]{1,19}$' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000, default: 1000 })),
  },
  { additionalProperties: false },
);

export const PolicyVersionSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  projectId: Type.String({ format: 'uuid' }),
  name: Type.String(),
  kind: Type.Union([Type.Literal('BUILTIN'), Type.Literal('EXTERNAL'), Type.Literal('IMPORTED')]),
  status: Type.Union([
    Type.Literal('TRAINING'),
    Type.Literal('READY'),
    Type.Literal('FAILED'),
    Type.Literal('RETIRED'),
  ]),
  parentId: Type.Union([Type.String(), Type.Null()]),
  roundId: Type.Union([Type.String(), Type.Null()]),
  rewardModelId: Type.Union([Type.String(), Type.Null()]),
  snapshotId: Type.Union([Type.String(), Type.Null()]),
  metrics: Type.Record(Type.String(), Type.Unknown()),
  current: Type.Boolean({ description: 'The promoted version: the one that answers new prompts.' }),
  promotedAt: NullableTimestamp,
  createdAt: Timestamp,
});
export type PolicyVersion = Static<typeof PolicyVersionSchema>;
