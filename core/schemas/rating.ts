import { Type, type Static } from 'typebox';
import { Timestamp } from './common.js';
import { LabelSchema, PreparingSchema } from './projects.js';

export const MessageSchema = Type.Object({ role: Type.String(), content: Type.String() });

/** What the rater sees: sides are as shown (left/right); sources and versions stay hidden. */
export const AssignmentView = Type.Object({
  id: Type.String({ format: 'uuid' }),
  projectId: Type.String({ format: 'uuid' }),
  expiresAt: Timestamp,
  messages: Type.Array(MessageSchema),
  left: Type.Object({ text: Type.String() }),
  right: Type.Object({ text: Type.String() }),
  ranked: Type.Optional(
    Type.Array(Type.Object({ text: Type.String() }), {
      minItems: 3,
      maxItems: 9,
      description:
        'A ranking item: the responses to put in order, as shown (left and right are the first two); absent for a pair.',
    }),
  ),
});
export type AssignmentView = Static<typeof AssignmentView>;

export const NextAssignmentBody = Type.Object(
  {
    /** Leases the client already holds (e.g. the one on screen) that should not be returned again. */
    exclude: Type.Optional(Type.Array(Type.String({ format: 'uuid' }), { maxItems: 5 })),
  },
  { additionalProperties: false },
);
export type NextAssignmentBody = Static<typeof NextAssignmentBody>;

export const NextAssignmentResult = Type.Object({
  assignment: Type.Union([AssignmentView, Type.Null()], {
    description: 'Null when nothing is waiting for this rater.',
  }),
});
export type NextAssignmentResult = Static<typeof NextAssignmentResult>;

export const ShownChoice = Type.Union([
  Type.Literal('LEFT'),
  Type.Literal('RIGHT'),
  Type.Literal('TIE'),
  Type.Literal('BOTH_BAD'),
]);
export type ShownChoice = Static<typeof ShownChoice>;

export const SubmitBody = Type.Object(
  {
    /** A pair's judgment (required for a pair, refused for a ranking). */
    choice: Type.Optional(ShownChoice),
    /**
     * A ranking's judgment (required for a ranking, refused for a pair): the rank of each response
     * as shown, 1 = best; tied responses share a rank (1, 1, 3, 4), where the project allows ties.
     */
    ranking: Type.Optional(
      Type.Array(Type.Integer({ minimum: 1, maximum: 9 }), { minItems: 3, maxItems: 9 }),
    ),
    /** Index into the project's strength scale (0 = strongest); required when the scale is set and the choice is a side. */
    strength: Type.Optional(Type.Integer({ minimum: 0, maximum: 6 })),
    criteria: Type.Optional(Type.Record(Type.String({ pattern: '^[a-z][a-z0-9_]{0,31}$' }), ShownChoice)),
    flags: Type.Optional(
      Type.Array(Type.String({ pattern: '^[a-z][a-z0-9_]{0,31}$' }), { maxItems: 10, uniqueItems: true }),
    ),
    rationale: Type.Optional(Type.String({ maxLength: 5000 })),
    timeSpentMs: Type.Integer({ minimum: 0, maximum: 86_400_000 }),
    /**
     * Also take the next comparison, in the same request (answered as `next`); `exclude` lists the
     * leases the client already holds. Not part of the judgment: a retry may send it differently.
     */
    next: Type.Optional(NextAssignmentBody),
  },
  { additionalProperties: false },
);
export type SubmitBody = Static<typeof SubmitBody>;

export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.String({ minLength: 8, maxLength: 100, pattern: '^[A-Za-z0-9_.:-]+$' }),
});

export const SubmitResult = Type.Object({
  preferenceId: Type.String({ format: 'uuid' }),
  /** Until when U (undo) works. */
  undoUntil: Timestamp,
  next: Type.Optional(
    Type.Union([AssignmentView, Type.Null()], {
      description: 'When asked for: the next comparison for me, or null when nothing is waiting.',
    }),
  ),
});
export type SubmitResult = Static<typeof SubmitResult>;

export const SkipBody = Type.Object(
  { reason: Type.String({ minLength: 1, maxLength: 500 }) },
  { additionalProperties: false },
);
export type SkipBody = Static<typeof SkipBody>;

export const UndoResult = Type.Object({ assignment: AssignmentView });
export type UndoResult = Static<typeof UndoResult>;

export const RaterProgress = Type.Object({
  today: Type.Integer({ description: 'My judgments in this project since midnight UTC.' }),
  total: Type.Integer({ description: 'My judgments in this project.' }),
  remaining: Type.Integer({ description: 'Judgments the project still needs (all raters).' }),
  availableToMe: Type.Integer({
    description: 'Comparisons I could still judge: ones I could be served and the ones I hold.',
  }),
});
export type RaterProgress = Static<typeof RaterProgress>;

export const RatingContext = Type.Object({
  projectId: Type.String({ format: 'uuid' }),
  name: Type.String(),
  guidelines: Type.String(),
  labelSchema: LabelSchema,
});
export type RatingContext = Static<typeof RatingContext>;

export const RaterProjectList = Type.Array(
  Type.Object({
    id: Type.String({ format: 'uuid' }),
    name: Type.String(),
    description: Type.String(),
    isDemo: Type.Boolean(),
    progress: RaterProgress,
    preparing: PreparingSchema,
  }),
);
export type RaterProjectList = Static<typeof RaterProjectList>;
