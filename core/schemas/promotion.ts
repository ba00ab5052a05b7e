// Promotion evidence: for each version with a parent, both rules side by side (raters' win rate
// against the parent with its 95% interval and votes; the reward model's win rate and margin).
import { Type, type Static } from 'typebox';
import { PromotionRuleSchema } from './projects.js';

export const PromotionDecisionSchema = Type.Union(
  [
    Type.Literal('promote'),
    Type.Literal('not-yet'),
    Type.Literal('below-margin'),
    Type.Literal('worse'),
    Type.Literal('unavailable'),
    Type.Literal('not-better'),
  ],
  {
    description:
      '`promote`; `not-yet` (more votes may settle it); `below-margin` (the reward model’s win rate is over 0.5 but short of the margin); `worse` (the parent is preferred); `unavailable` (nothing to judge by); `not-better` (the round found it worse than its parent on its own held-out checks: a candidate no schedule promotes).',
  },
);
export type PromotionDecision = Static<typeof PromotionDecisionSchema>;

const Share = Type.Number({ minimum: 0, maximum: 1 });

export const HumanWinRateSchema = Type.Object({
  votes: Type.Integer({ description: 'Votes counted: wins + losses + ties + bothBad.' }),
  wins: Type.Integer({ description: 'Votes for the new version.' }),
  losses: Type.Integer({ description: 'Votes for the parent.' }),
  ties: Type.Integer(),
  bothBad: Type.Integer({ description: 'Counted as ties (½): the rater prefers neither.' }),
  comparisons: Type.Integer({ description: 'New-vs-parent comparisons with a counted vote.' }),
  simulatedVotes: Type.Integer({
    description: 'Votes of simulated raters: counted when the project counts them, else left out.',
  }),
  winRate: Type.Union([Share, Type.Null()], {
    description: '(wins + ½ (ties + bothBad)) / votes; null without votes.',
  }),
  low: Share,
  high: Share,
  effectiveVotes: Type.Number({
    description: 'Votes as independent ones (votes on one comparison are correlated): votes / design effect.',
  }),
  decision: PromotionDecisionSchema,
  reason: Type.String(),
});
export type HumanWinRate = Static<typeof HumanWinRateSchema>;

export const RewardModelWinRateSchema = Type.Object({
  winRate: Type.Union([Share, Type.Null()], {
    description: 'The round’s reward-model-judged win rate against the parent (held-out prompts).',
  }),
  threshold: Share,
  decision: PromotionDecisionSchema,
  reason: Type.String(),
});

export const VersionPromotionSchema = Type.Object({
  versionId: Type.String({ format: 'uuid' }),
  parentId: Type.String({ format: 'uuid' }),
  human: HumanWinRateSchema,
  rewardModel: RewardModelWinRateSchema,
  /** What the project's active rule says; `not-better` whatever it says when the round's verdict was. */
  decision: PromotionDecisionSchema,
  notBetterReasons: Type.Array(Type.String(), {
    description: 'Why the round marked the version not better than its parent; empty when it did not.',
  }),
});
export type VersionPromotion = Static<typeof VersionPromotionSchema>;

export const PromotionSettingsSchema = Type.Object({
  rule: PromotionRuleSchema,
  autoPromote: Type.Boolean(),
  margin: Type.Number({ description: 'Human rule: the interval’s lower end must be above this.' }),
  minVotes: Type.Integer(),
  countSimulated: Type.Boolean(),
  rewardModelMargin: Type.Number({ description: 'Reward-model rule: its win rate must be ≥ 0.5 + this.' }),
});

export const PromotionEvidenceSchema = Type.Object({
  settings: PromotionSettingsSchema,
  interval: Type.String({ description: 'How the interval is computed.' }),
  versions: Type.Array(VersionPromotionSchema),
});
export type PromotionEvidence = Static<typeof PromotionEvidenceSchema>;
