// Schemas for researchers' data routes: exports (formats, filters, options), dataset snapshots and
// imports of existing preference data sets. Every object refuses unknown fields.
import { Type, type Static } from 'typebox';
import { ImportLineError } from './projects.js';
import { InputTimestamp, Timestamp } from './common.js';

export const EXPORT_FORMATS = [
  'trl',
  'trl-conversational',
  'hh',
  'openrlhf',
  'csv',
  'parquet',
  'ranking',
] as const;
export const ExportFormat = Type.Union(
  [
    Type.Literal('trl'),
    Type.Literal('trl-conversational'),
    Type.Literal('hh'),
    Type.Literal('openrlhf'),
    Type.Literal('csv'),
    Type.Literal('parquet'),
    Type.Literal('ranking'),
  ],
  {
    description:
      'trl: {prompt, chosen, rejected} strings; trl-conversational: the same as lists of {role, content}; ' +
      'hh: HH-RLHF {chosen, rejected} transcripts; openrlhf: prompt/chosen/rejected under configurable keys; ' +
      'csv and parquet: one row per judgment (or per comparison when aggregated) with every field; ' +
      'ranking: one row per ranking judgment, its responses best first (raw only). ' +
      'The pairwise formats carry each ranking as its K(K-1)/2 pairs, marked with from_ranking.',
  },
);
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

const Uuids = Type.Array(Type.String({ format: 'uuid' }), { minItems: 1, maxItems: 1000 });
const Share = Type.Number({ minimum: 0, maximum: 1 });
const KeyName = Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_.-]{0,63}$' });

export const ExportFilters = Type.Object(
  {
    /** Judgments made at or after this time. */
    from: Type.Optional(InputTimestamp),
    /** Judgments made before this time. */
    to: Type.Optional(InputTimestamp),
    /** Comparisons where either response came from one of these policy versions. */
    policyVersionIds: Type.Optional(Uuids),
    /** Comparisons created for one of these training rounds. */
    roundIds: Type.Optional(Uuids),
    /** Comparisons whose majority share of the exported votes is at least this. */
    minAgreement: Type.Optional(Share),
    /** Leave out raters whose accuracy on gold comparisons is below this (raters without gold stay). */
    minGoldAccuracy: Type.Optional(Share),
    excludeSimulated: Type.Optional(Type.Boolean()),
    excludeImported: Type.Optional(Type.Boolean()),
    excludeGold: Type.Optional(Type.Boolean()),
    /** Only prompts whose stored split is one of these. */
    promptSplits: Type.Optional(
      Type.Array(Type.Union([Type.Literal('TRAIN'), Type.Literal('VALIDATION'), Type.Literal('TEST')]), {
        minItems: 1,
        maxItems: 3,
      }),
    ),
    /** A train/validation split by prompt hash: no prompt lands in both parts. */
    split: Type.Optional(
      Type.Object(
        {
          validationFraction: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1 }),
          part: Type.Union([Type.Literal('train'), Type.Literal('validation')]),
          seed: Type.Optional(Type.String({ maxLength: 100 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type ExportFilters = Static<typeof ExportFilters>;

export const ExportOptions = Type.Object(
  {
    /** Add TRL's `margin` column from the strength (strongest = scale length - 1 ... weakest = 0). */
    margin: Type.Optional(Type.Boolean()),
    /** TRL formats: explicit `prompt` column (default) or implicit (prompt inside chosen/rejected). */
    prompt: Type.Optional(Type.Union([Type.Literal('explicit'), Type.Literal('implicit')])),
    /** OpenRLHF keys (its --prompt_key, --chosen_key, --rejected_key). */
    promptKey: Type.Optional(KeyName),
    chosenKey: Type.Optional(KeyName),
    rejectedKey: Type.Optional(KeyName),
    /** OpenRLHF: messages lists (for --apply_chat_template) instead of strings. */
    conversational: Type.Optional(Type.Boolean()),
    /** Real rater ids instead of pseudonyms (an HMAC of the id with the server secret). */
    identifyRaters: Type.Optional(Type.Boolean()),
    /**
     * CSV: a cell that starts with =, +, -, @, tab or carriage return gets a leading apostrophe, so
     * model output and rationales cannot run as formulas in a spreadsheet (OWASP's CSV injection
     * advice). On unless false is sent: send false for pandas and other tools that want the text
     * exactly as stored.
     */
    spreadsheetSafe: Type.Optional(
      Type.Boolean({ description: 'CSV only. Default true; false keeps cells exactly as stored.' }),
    ),
    /**
     * Aggregated exports: each comparison's verdict is its most probable outcome under the raters'
     * estimated reliabilities (Dawid–Skene over the exported judgments and their gold answers)
     * instead of the plain majority; a reliable rater outweighs two who guess.
     */
    reliabilityWeights: Type.Optional(
      Type.Boolean({
        description:
          'Aggregated only. Verdicts weigh each rater by their estimated reliability. Default false.',
      }),
    ),
  },
  { additionalProperties: false },
);
export type ExportOptions = Static<typeof ExportOptions>;

const ExportFields = {
  format: ExportFormat,
  /** raw: one row per judgment; aggregated: one row per comparison (majority vote). */
  mode: Type.Optional(Type.Union([Type.Literal('raw'), Type.Literal('aggregated')])),
  filters: Type.Optional(ExportFilters),
  options: Type.Optional(ExportOptions),
};

export const ExportBody = Type.Object(ExportFields, { additionalProperties: false });
export type ExportBody = Static<typeof ExportBody>;

export const ExportCount = Type.Object({
  judgments: Type.Integer({ description: 'Judgments selected by the filters.' }),
  comparisons: Type.Integer(),
  prompts: Type.Integer(),
  identicalJudgments: Type.Integer({
    description:
      'A and B judgments of comparisons whose two responses have the same text: raw pairwise files leave them out.',
  }),
  identicalComparisons: Type.Integer({
    description:
      'Comparisons with the same text on both sides and an A or B majority: aggregated pairwise files leave them out.',
  }),
});
export type ExportCount = Static<typeof ExportCount>;

export const CreateSnapshotBody = Type.Object(
  {
    /** Cited in papers and used as the download's file name: no slashes, backslashes or "..". */
    name: Type.String({ minLength: 1, maxLength: 120, pattern: '^(?!.*\\.\\.)[^/\\\\\\u0000-\\u001f]+$' }),
    ...ExportFields,
  },
  { additionalProperties: false },
);
export type CreateSnapshotBody = Static<typeof CreateSnapshotBody>;

export const SnapshotSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  projectId: Type.String({ format: 'uuid' }),
  name: Type.String(),
  format: ExportFormat,
  mode: Type.Union([Type.Literal('raw'), Type.Literal('aggregated')]),
  filters: ExportFilters,
  options: ExportOptions,
  /** Rows in the file (lines for JSONL, data rows for CSV and Parquet). */
  rowCount: Type.Integer(),
  /** Judgments frozen in the snapshot. */
  judgments: Type.Integer(),
  /** Pairwise formats: pairs left out because both responses have the same text. */
  identicalLeftOut: Type.Integer(),
  /** sha256 of the file's bytes, hex. */
  contentHash: Type.String(),
  byteSize: Type.Integer(),
  createdById: Type.Union([Type.String(), Type.Null()]),
  createdAt: Timestamp,
});
export type Snapshot = Static<typeof SnapshotSchema>;

// --- Import of preference data sets -----------------------------------------------------------

export const PREFERENCE_IMPORT_FORMATS = ['trl', 'hh', 'csv'] as const;

export const PreferenceImportBody = Type.Object(
  {
    /**
     * trl: JSONL, standard or conversational, explicit or implicit prompt; hh: HH-RLHF JSONL; csv:
     * prompt,chosen,rejected; ranking: JSONL of {prompt, responses} with 3 to 9 responses best first
     * (strings, or {text, rank} where equal ranks tie), as the ranking export writes them.
     */
    format: Type.Union([
      Type.Literal('trl'),
      Type.Literal('hh'),
      Type.Literal('csv'),
      Type.Literal('ranking'),
    ]),
    content: Type.String({ minLength: 1 }),
    /** Recorded on every imported judgment (Preference.importSource) and response. */
    source: Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f]+$' }),
    /** skip: leave bad rows out and import the rest; refuse: import nothing if any row is bad. */
    onError: Type.Optional(Type.Union([Type.Literal('skip'), Type.Literal('refuse')])),
    dryRun: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type PreferenceImportBody = Static<typeof PreferenceImportBody>;

export const PreferenceImportReport = Type.Object({
  dryRun: Type.Boolean(),
  lines: Type.Integer({ description: 'Non-blank lines (CSV: data rows) read.' }),
  imported: Type.Integer({ description: 'Judgments stored (or that would be, in a dry run).' }),
  skipped: Type.Integer(),
  /** Bad rows by kind: empty-response, chosen-equals-rejected, unparsable, invalid. */
  errorCounts: Type.Record(Type.String(), Type.Integer()),
  errors: Type.Array(ImportLineError, { description: 'At most the first 1000.' }),
  prompts: Type.Integer({ description: 'Distinct prompts in the imported rows.' }),
  newPrompts: Type.Integer(),
  comparisons: Type.Integer(),
});
export type PreferenceImportReport = Static<typeof PreferenceImportReport>;
