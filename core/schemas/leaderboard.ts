// The leaderboard of a project's policy versions from pairwise votes (Bradley-Terry, Chatbot Arena's
// method): the query and the answer.
import { Type, type Static } from 'typebox';

const NullableNumber = Type.Union([Type.Number(), Type.Null()]);

export const LEADERBOARD_SOURCES = ['simulated', 'imported'] as const;
export type LeaderboardSource = (typeof LEADERBOARD_SOURCES)[number];

export const LeaderboardQuery = Type.Object(
  {
    include: Type.Optional(
      Type.String({
        pattern: '^(simulated|imported)(,(simulated|imported))?$',
        description:
          'Judgments besides human ones to count, comma-separated: `simulated` (simulated raters), `imported` (imported data sets). Default: human judgments only.',
      }),
    ),
    bootstrap: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 5000,
        description: 'Bootstrap resamples for the 95% intervals (default 1000; 0 = no intervals).',
      }),
    ),
    seed: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 4294967295,
        description: 'Seed of the bootstrap (default 1): the same data and seed give the same intervals.',
      }),
    ),
  },
  { additionalProperties: false },
);
export type LeaderboardQuery = Static<typeof LeaderboardQuery>;

export const LeaderboardVersion = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  /** The project's promoted version. */
  current: Type.Boolean(),
  kind: Type.String(),
  /** Elo-like rating: 1000 + 400·log10(e)·θ, the mean over ranked versions 1000; null when not ranked. */
  rating: NullableNumber,
  ratingLow: NullableNumber,
  ratingHigh: NullableNumber,
  /** Natural-log Bradley-Terry strength θ, centred at 0 over the ranked versions. */
  logStrength: NullableNumber,
  logLow: NullableNumber,
  logHigh: NullableNumber,
  /** 1 + the number of versions whose interval lies wholly above this one's. */
  rank: Type.Union([Type.Integer(), Type.Null()]),
  votes: Type.Integer(),
  wins: Type.Integer(),
  losses: Type.Integer(),
  ties: Type.Integer(),
  bothBad: Type.Integer(),
  /** Compared, through other versions, with the ranked versions; false means no strength. */
  connected: Type.Boolean(),
});
export type LeaderboardVersion = Static<typeof LeaderboardVersion>;

export const LeaderboardCell = Type.Object({
  wins: Type.Integer(),
  losses: Type.Integer(),
  ties: Type.Integer(),
  bothBad: Type.Integer(),
  total: Type.Integer(),
  /** (wins + ½ ties, BOTH_BAD counted as a tie) / total; null without votes. */
  winRate: NullableNumber,
});
export type LeaderboardCell = Static<typeof LeaderboardCell>;

export const LeaderboardSchema = Type.Object({
  projectId: Type.String({ format: 'uuid' }),
  /** The sources counted: HUMAN always, SIMULATED and IMPORTED when asked. */
  sources: Type.Array(
    Type.Union([Type.Literal('HUMAN'), Type.Literal('SIMULATED'), Type.Literal('IMPORTED')]),
  ),
  /** Judgments between two different versions counted in the fit. */
  judgments: Type.Integer(),
  /** Judgments between versions left out because of their source. */
  leftOut: Type.Object({ simulated: Type.Integer(), imported: Type.Integer() }),
  bootstrap: Type.Integer(),
  seed: Type.Integer(),
  /** The fit reached its optimum (false only in pathological data). */
  converged: Type.Boolean(),
  method: Type.String(),
  /** Best first (by rating; versions without a rating last, by votes). */
  versions: Type.Array(LeaderboardVersion),
  /** matrix[i][j]: versions[i] against versions[j]; null on the diagonal and for pairs never compared. */
  matrix: Type.Array(Type.Array(Type.Union([LeaderboardCell, Type.Null()]))),
});
export type Leaderboard = Static<typeof LeaderboardSchema>;
