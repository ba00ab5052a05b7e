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
  /** Rankings this rater gave. */
  rankings: Type.Integer(),
  /** Mean Kendall tau-b of this rater's rankings with the other raters' mean ranks of the same items. */
  rankTau: Nullable(Type.Number()),
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
  /** Rankings (K-wise judgments): the figures above are of pair judgments only. */
  rankings: Type.Object({
    judgments: Type.Integer(),
    /** Ranking items ranked by two raters or more. */
    itemsWithMultiple: Type.Integer(),
    /** Kendall's W (with the tie correction), averaged over those items: 1 = raters agree on the order. */
    kendallW: Nullable(Type.Number()),
  }),
  raters: Type.Array(RaterQuality),
});
export type ProjectQuality = Static<typeof ProjectQuality>;

export const RaterReliability = Type.Object({
  raterId: Type.String({ format: 'uuid' }),
  name: Type.String(),
  email: Type.String(),
  simulated: Type.Boolean(),
  judgments: Type.Integer(),
  goldJudged: Type.Integer(),
  /** Judgments on comparisons that someone else also judged. */
  overlapping: Type.Integer(),
  /** Estimated probability that the rater knew the outcome rather than guessed (Dawid–Skene). */
  reliability: Type.Number(),
  /** 95% interval of the reliability (Beta posterior). */
  low: Type.Number(),
  high: Type.Number(),
  /** Reliability below the threshold. */
  flagged: Type.Boolean(),
  /** Left out of this project's training and exports by an admin. */
  excluded: Type.Boolean(),
  excludedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  exclusionReason: Type.Union([Type.String(), Type.Null()]),
});
export type RaterReliability = Static<typeof RaterReliability>;

export const ProjectReliability = Type.Object({
  threshold: Type.Number(),
  /** Comparisons judged by two raters or more, or gold: what tells raters apart. */
  informativeComparisons: Type.Integer(),
  /** Whether there are enough of them for rounds to weight judgments by reliability. */
  enoughOverlap: Type.Boolean(),
  minInformativeComparisons: Type.Integer(),
  raters: Type.Array(RaterReliability),
});
export type ProjectReliability = Static<typeof ProjectReliability>;

export const ReliabilityQuery = Type.Object(
  { threshold: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })) },
  { additionalProperties: false },
);

export const RaterParams = Type.Object(
  { id: Type.String({ format: 'uuid' }), raterId: Type.String({ format: 'uuid' }) },
  { additionalProperties: false },
);

export const ExcludeRaterBody = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: 500 })) },
  { additionalProperties: false },
);
