import { Type, type Static } from 'typebox';

const Nullable = <T extends ReturnType<typeof Type.Number>>(schema: T) => Type.Union([schema, Type.Null()]);

export const RaterQuality = Type.Object({
  raterId: Type.String({ format: 'uuid' }),
  name: Type.String(),
  email: Type.String(),
  simulated: Type.Boolean(),
  judgments: Type.Integer(),
  skips: Type.Integer(),
  goldJudged: Type.Integer(),
  goldAccuracy: Nullable(Type.Number()),
  /** Share of this rater's judgments that match the majority of the other raters. */
  majorityAgreement: Nullable(Type.Number()),
  medianTimeMs: Nullable(Type.Number()),
  /** Share of side choices (A/B) that picked the left response. */
  leftShare: Nullable(Type.Number()),
  /** Share of side choices that picked the longer response. */
  longerShare: Nullable(Type.Number()),
});
export type RaterQuality = Static<typeof RaterQuality>;

export const ProjectQuality = Type.Object({
  judgments: Type.Integer(),
  comparisonsWithMultipleJudgments: Type.Integer(),
  /** Share of rater pairs on the same comparison that made the same choice. */
  pairwiseAgreement: Nullable(Type.Number()),
  /** Krippendorff's alpha (nominal) over choices. */
  krippendorffAlpha: Nullable(Type.Number()),
  /** P(choose left) - 0.5 over side choices. */
  positionBias: Nullable(Type.Number()),
  /** P(choose the longer response) over side choices with different lengths. */
  longerShare: Nullable(Type.Number()),
  medianTimeMs: Nullable(Type.Number()),
  choiceCounts: Type.Object({
    A: Type.Integer(),
    B: Type.Integer(),
    TIE: Type.Integer(),
    BOTH_BAD: Type.Integer(),
  }),
  raters: Type.Array(RaterQuality),
});
export type ProjectQuality = Static<typeof ProjectQuality>;
