import { Type, type Static } from 'typebox';
import { NullableTimestamp, Timestamp } from './common.js';
import { AlgorithmSchema, RoundConfigSchema } from './rounds.js';

/**
 * Which rule says a new version should be promoted: `human` (raters' win rate against its parent,
 * the lower end of its 95% interval above a margin) or `reward-model` (the reward model's win rate
 * against the parent at least 0.5 + a margin).
 */
export const PromotionRuleSchema = Type.Union([Type.Literal('human'), Type.Literal('reward-model')], {
  description: 'Promotion rule: `human` (default) or `reward-model`.',
});
export type PromotionRule = Static<typeof PromotionRuleSchema>;

/**
 * Which comparisons raters get first: `fixed` (the priorities as set, then the stored order) or
 * `uncertainty` (after each round, the comparisons its reward model is least sure about).
 */
export const QueueOrderSchema = Type.Union([Type.Literal('fixed'), Type.Literal('uncertainty')], {
  description:
    'Rating queue order: `fixed` (default: the priorities as set) or `uncertainty` (after each round its reward model ' +
    'sets the priorities of the open comparisons that are not gold, least certain first, the round’s own comparisons of its ' +
    'new version against the parent before all; priorities set by hand are overwritten).',
});
export type QueueOrder = Static<typeof QueueOrderSchema>;

/** When rounds start by themselves, and when their versions are promoted by themselves. */
export const ScheduleSchema = Type.Object(
  {
    enabled: Type.Boolean({ description: 'Start rounds by themselves.' }),
    minNewPreferences: Type.Integer({
      minimum: 1,
      maximum: 1_000_000,
      description: 'Judgments since the last round needed to start one.',
    }),
    minIntervalMinutes: Type.Integer({
      minimum: 1,
      maximum: 525_600,
      description: 'At most one round this often.',
    }),
    algorithm: AlgorithmSchema,
    config: Type.Optional(RoundConfigSchema),
    autoPromote: Type.Boolean({
      description: 'Promote a new version by itself once the promotion rule says so.',
    }),
    promoteMargin: Type.Number({
      minimum: 0,
      maximum: 0.5,
      description: 'The reward-model rule: required RM-judged win rate over 0.5.',
    }),
    promotionRule: Type.Optional(PromotionRuleSchema),
    promotionMargin: Type.Optional(
      Type.Number({
        minimum: 0.5,
        maximum: 0.99,
        description:
          'The human rule: promote when the lower end of the 95% interval of the human-judged win rate against the parent is above this (default 0.5).',
      }),
    ),
    minVotes: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 1_000_000,
        description:
          'The human rule: votes on the new-vs-parent comparisons needed before deciding (default 20).',
      }),
    ),
    countSimulated: Type.Optional(
      Type.Boolean({
        description: 'The human rule also counts simulated raters’ votes (default false: human votes only).',
      }),
    ),
    queueOrder: Type.Optional(QueueOrderSchema),
  },
  { additionalProperties: false, $id: 'Schedule' },
);
export type Schedule = Static<typeof ScheduleSchema>;

export function defaultSchedule(): Schedule {
  return {
    enabled: false,
    minNewPreferences: 50,
    minIntervalMinutes: 60,
    algorithm: 'RLOO',
    autoPromote: false,
    promoteMargin: 0.05,
    promotionRule: 'human',
    promotionMargin: 0.5,
    minVotes: 20,
    countSimulated: false,
    queueOrder: 'fixed',
  };
}

/** Llama 2's four levels, strongest first; a judgment's `strength` is an index into this list. */
export const DEFAULT_STRENGTHS = [
  'Significantly better',
  'Better',
  'Slightly better',
  'Negligibly better / unsure',
] as const;

const Key = Type.String({ pattern: '^[a-z][a-z0-9_]{0,31}$', description: 'lower_snake_case identifier' });

export const LabelSchema = Type.Object(
  {
    allowTie: Type.Boolean({ default: true }),
    allowBothBad: Type.Boolean({ default: true }),
    /** Strength scale, strongest first; empty = no strength asked. */
    strengths: Type.Array(Type.String({ minLength: 1, maxLength: 60 }), { maxItems: 7 }),
    /** Criteria judged separately (e.g. helpfulness, harmlessness), each A/B/tie/both-bad. */
    criteria: Type.Array(
      Type.Object(
        {
          key: Key,
          label: Type.String({ minLength: 1, maxLength: 60 }),
          description: Type.Optional(Type.String({ maxLength: 500 })),
        },
        { additionalProperties: false },
      ),
      { maxItems: 6 },
    ),
    /** Optional flags a rater may set (e.g. unsafe, factually wrong). */
    flags: Type.Array(
      Type.Object(
        { key: Key, label: Type.String({ minLength: 1, maxLength: 60 }) },
        { additionalProperties: false },
      ),
      { maxItems: 10 },
    ),
  },
  { additionalProperties: false, $id: 'LabelSchema' },
);
export type LabelSchema = Static<typeof LabelSchema>;

export function defaultLabelSchema(): LabelSchema {
  return { allowTie: true, allowBothBad: true, strengths: [...DEFAULT_STRENGTHS], criteria: [], flags: [] };
}

/** Phases of a project's preparation (the demo's first model), in the order they come. */
export const PREPARING_PHASES = [
  'waiting',
  'loading',
  'fine-tuning',
  'sampling',
  'saving',
  'failed',
] as const;
export type PreparingPhase = (typeof PREPARING_PHASES)[number];

export const PreparingSchema = Type.Union(
  [
    Type.Object({
      phase: Type.Union(
        [
          Type.Literal('waiting'),
          Type.Literal('loading'),
          Type.Literal('fine-tuning'),
          Type.Literal('sampling'),
          Type.Literal('saving'),
          Type.Literal('failed'),
        ],
        {
          description:
            'waiting: for a trainer worker; loading: the shipped first model; fine-tuning: training it here; ' +
            'sampling: its first responses; saving: the first comparisons; failed: the last attempt failed (the job is retried).',
        },
      ),
      progress: Type.Number({ minimum: 0, maximum: 1, description: 'Share of the whole preparation done.' }),
    }),
    Type.Null(),
  ],
  {
    description:
      "Set while the project is being prepared and has no comparisons yet (the demo's first model); null otherwise.",
  },
);
export type Preparing = Static<typeof PreparingSchema>;

export const ProjectSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  description: Type.String(),
  guidelines: Type.String({ description: 'Markdown shown to raters.' }),
  overlap: Type.Integer({ description: 'Distinct raters per comparison.' }),
  goldRate: Type.Number(),
  leaseSeconds: Type.Integer(),
  labelSchema: LabelSchema,
  schedule: ScheduleSchema,
  currentPolicyVersionId: Type.Union([Type.String(), Type.Null()]),
  isDemo: Type.Boolean(),
  archived: Type.Boolean(),
  preparing: PreparingSchema,
  createdAt: Timestamp,
  counts: Type.Object({
    prompts: Type.Integer(),
    responses: Type.Integer(),
    comparisons: Type.Integer(),
    preferences: Type.Integer(),
    /** Judgments still wanted across non-gold comparisons. */
    remainingJudgments: Type.Integer(),
    members: Type.Integer(),
  }),
});
export type Project = Static<typeof ProjectSchema>;

const ProjectFields = {
  name: Type.String({ minLength: 1, maxLength: 120 }),
  description: Type.String({ maxLength: 2000 }),
  guidelines: Type.String({ maxLength: 50_000 }),
  overlap: Type.Integer({ minimum: 1, maximum: 50 }),
  goldRate: Type.Number({ minimum: 0, maximum: 1 }),
  leaseSeconds: Type.Integer({ minimum: 30, maximum: 86_400 }),
  labelSchema: LabelSchema,
};

export const CreateProjectBody = Type.Object(
  {
    name: ProjectFields.name,
    description: Type.Optional(ProjectFields.description),
    guidelines: Type.Optional(ProjectFields.guidelines),
    overlap: Type.Optional(ProjectFields.overlap),
    goldRate: Type.Optional(ProjectFields.goldRate),
    leaseSeconds: Type.Optional(ProjectFields.leaseSeconds),
    labelSchema: Type.Optional(ProjectFields.labelSchema),
  },
  { additionalProperties: false },
);
export type CreateProjectBody = Static<typeof CreateProjectBody>;

export const UpdateProjectBody = Type.Object(
  {
    name: Type.Optional(ProjectFields.name),
    description: Type.Optional(ProjectFields.description),
    guidelines: Type.Optional(ProjectFields.guidelines),
    overlap: Type.Optional(ProjectFields.overlap),
    goldRate: Type.Optional(ProjectFields.goldRate),
    leaseSeconds: Type.Optional(ProjectFields.leaseSeconds),
    labelSchema: Type.Optional(ProjectFields.labelSchema),
    archived: Type.Optional(Type.Boolean()),
    schedule: Type.Optional(ScheduleSchema),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateProjectBody = Static<typeof UpdateProjectBody>;

export const MemberSchema = Type.Object({
  userId: Type.String({ format: 'uuid' }),
  email: Type.String(),
  name: Type.String(),
  role: Type.String(),
  simulated: Type.Boolean(),
  addedAt: Timestamp,
});
export type Member = Static<typeof MemberSchema>;

export const AddMembersBody = Type.Object(
  { userIds: Type.Array(Type.String({ format: 'uuid' }), { minItems: 1, maxItems: 1000 }) },
  { additionalProperties: false },
);
export type AddMembersBody = Static<typeof AddMembersBody>;

export const MemberParams = Type.Object(
  { id: Type.String({ format: 'uuid' }), userId: Type.String({ format: 'uuid' }) },
  { additionalProperties: false },
);

// --- Import ------------------------------------------------------------------------------------

export const ImportBody = Type.Object(
  {
    format: Type.Union([Type.Literal('jsonl'), Type.Literal('csv')]),
    /** The file's text. */
    content: Type.String({ minLength: 1 }),
    /** true: parse and report, store nothing. */
    dryRun: Type.Optional(Type.Boolean({ default: false })),
    /** Name recorded as the source of responses that name none. */
    source: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  },
  { additionalProperties: false },
);
export type ImportBody = Static<typeof ImportBody>;

export const ImportLineError = Type.Object({ line: Type.Integer(), message: Type.String() });
export type ImportLineError = Static<typeof ImportLineError>;

export const ImportReport = Type.Object({
  dryRun: Type.Boolean(),
  /** Lines read (blank lines excluded). */
  lines: Type.Integer(),
  prompts: Type.Integer({ description: 'Prompts in the file (new and existing).' }),
  newPrompts: Type.Integer(),
  responses: Type.Integer(),
  errors: Type.Array(ImportLineError),
  /** The first prompts as parsed, for a preview. */
  preview: Type.Array(
    Type.Object({
      line: Type.Integer(),
      messages: Type.Array(Type.Object({ role: Type.String(), content: Type.String() })),
      responses: Type.Array(
        Type.Object({ text: Type.String(), source: Type.Union([Type.String(), Type.Null()]) }),
      ),
    }),
  ),
});
export type ImportReport = Static<typeof ImportReport>;

export const GenerateComparisonsBody = Type.Object(
  {
    strategy: Type.Union([
      Type.Literal('all-pairs'),
      Type.Literal('random-pairs'),
      Type.Literal('cross-source'),
      Type.Literal('ranking'),
    ]),
    /** random-pairs: at most this many pairs per prompt; ranking: this many rankings (default 1). */
    maxPerPrompt: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
    /** ranking: how many responses (of distinct text) a rater puts in order, 3 to 9. */
    rankSize: Type.Optional(Type.Integer({ minimum: 3, maximum: 9 })),
    /** cross-source: pair responses of sourceA with responses of sourceB (source names or policy version names). */
    sourceA: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    sourceB: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    priority: Type.Optional(Type.Integer({ minimum: -1000, maximum: 1000 })),
    seed: Type.Optional(Type.Integer()),
  },
  { additionalProperties: false },
);
export type GenerateComparisonsBody = Static<typeof GenerateComparisonsBody>;

export const GenerateComparisonsResult = Type.Object({
  created: Type.Integer(),
  skippedExisting: Type.Integer(),
  skippedIdentical: Type.Integer({
    description:
      "Pairs left out because both responses have the same text (ranking: responses left out for repeating another's text).",
  }),
  skippedTooFew: Type.Optional(
    Type.Integer({ description: 'ranking: prompts with fewer responses of distinct text than rankSize.' }),
  ),
});

export const ChoiceSchema = Type.Union([
  Type.Literal('A'),
  Type.Literal('B'),
  Type.Literal('TIE'),
  Type.Literal('BOTH_BAD'),
]);
export type Choice = Static<typeof ChoiceSchema>;

export const ComparisonSummary = Type.Object({
  id: Type.String({ format: 'uuid' }),
  promptId: Type.String({ format: 'uuid' }),
  promptPreview: Type.String(),
  sourceA: Type.Union([Type.String(), Type.Null()]),
  sourceB: Type.Union([Type.String(), Type.Null()]),
  /** A ranking item's K (its first two responses are A and B); 0 for a pair. */
  rankSize: Type.Integer(),
  priority: Type.Integer(),
  requiredVotes: Type.Integer(),
  voteCount: Type.Integer(),
  isGold: Type.Boolean(),
  goldChoice: Type.Union([ChoiceSchema, Type.Null()]),
  createdAt: Timestamp,
});
export type ComparisonSummary = Static<typeof ComparisonSummary>;

export const ComparisonListQuery = Type.Object(
  {
    cursor: Type.Optional(Type.String({ format: 'uuid' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
    status: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('complete'), Type.Literal('gold')])),
  },
  { additionalProperties: false },
);
export const ComparisonPage = Type.Object({
  items: Type.Array(ComparisonSummary),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
});
export type ComparisonPage = Static<typeof ComparisonPage>;

export const UpdateComparisonBody = Type.Object(
  {
    priority: Type.Optional(Type.Integer({ minimum: -1000, maximum: 1000 })),
    /** Set a known answer (gold) or null to make it a normal comparison again. */
    goldChoice: Type.Optional(Type.Union([ChoiceSchema, Type.Null()])),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateComparisonBody = Static<typeof UpdateComparisonBody>;

export { NullableTimestamp };
