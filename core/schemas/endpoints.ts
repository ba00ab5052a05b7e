// External policy versions: models behind OpenAI-compatible chat-completions endpoints, their
// sampling settings, and a test of the connection. API keys go in and never come out.
import { Type, type Static } from 'typebox';
import { NullableTimestamp, Timestamp } from './common.js';

export const MAX_SYSTEM_PROMPT_CHARS = 20_000;
export const MAX_ENDPOINT_CONCURRENCY = 256;

export const SamplingSettingsSchema = Type.Object(
  {
    systemPrompt: Type.Optional(
      Type.String({
        maxLength: MAX_SYSTEM_PROMPT_CHARS,
        description: 'Sent first unless the prompt brings its own system message.',
      }),
    ),
    temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2 })),
    topP: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'Nucleus sampling (top_p).' })),
    maxTokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 32768, description: 'max_tokens.' })),
    seed: Type.Optional(Type.Integer({ minimum: -2147483648, maximum: 2147483647 })),
    stop: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 200 }), {
        maxItems: 4,
        description: 'Up to four stop sequences.',
      }),
    ),
  },
  { additionalProperties: false },
);
export type SamplingSettingsBody = Static<typeof SamplingSettingsSchema>;

const VersionName = Type.String({ minLength: 1, maxLength: 100, pattern: '\\S' });
const BaseUrl = Type.String({
  minLength: 1,
  maxLength: 2000,
  description:
    'The API base URL, e.g. http://vllm-host:8000/v1 (http or https; checked against the outbound guard).',
});
const ModelName = Type.String({
  minLength: 1,
  maxLength: 200,
  description: 'The model name the endpoint expects.',
});
const ApiKey = Type.String({
  minLength: 1,
  maxLength: 4096,
  description: 'Stored encrypted; never returned.',
});
const Concurrency = Type.Integer({
  minimum: 1,
  maximum: MAX_ENDPOINT_CONCURRENCY,
  description: 'Requests in flight at once (default 4).',
});

export const CreateEndpointBody = Type.Object(
  {
    name: VersionName,
    baseUrl: BaseUrl,
    model: ModelName,
    apiKey: Type.Optional(ApiKey),
    settings: Type.Optional(SamplingSettingsSchema),
    concurrency: Type.Optional(Concurrency),
  },
  { additionalProperties: false },
);
export type CreateEndpointBody = Static<typeof CreateEndpointBody>;

export const UpdateEndpointBody = Type.Object(
  {
    name: Type.Optional(VersionName),
    baseUrl: Type.Optional(BaseUrl),
    model: Type.Optional(ModelName),
    apiKey: Type.Optional(
      Type.Union([ApiKey, Type.Null()], {
        description: 'A new key replaces the stored one; null removes it; left out, the stored key stays.',
      }),
    ),
    settings: Type.Optional(SamplingSettingsSchema),
    concurrency: Type.Optional(Concurrency),
  },
  { additionalProperties: false },
);
export type UpdateEndpointBody = Static<typeof UpdateEndpointBody>;

export const TestDraftEndpointBody = Type.Object(
  {
    baseUrl: BaseUrl,
    model: ModelName,
    apiKey: Type.Optional(ApiKey),
    settings: Type.Optional(SamplingSettingsSchema),
    versionId: Type.Optional(
      Type.String({
        format: 'uuid',
        description: 'An external version whose stored API key to use when apiKey is left out.',
      }),
    ),
  },
  { additionalProperties: false },
);
export type TestDraftEndpointBody = Static<typeof TestDraftEndpointBody>;

const NullableString = Type.Union([Type.String(), Type.Null()]);

/** A policy version of a project as the Models page shows it; endpoint fields for external ones. */
export const ModelVersionSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  projectId: Type.String({ format: 'uuid' }),
  name: Type.String(),
  kind: Type.Union([Type.Literal('BUILTIN'), Type.Literal('EXTERNAL'), Type.Literal('IMPORTED')]),
  status: Type.String(),
  /** The project's promoted version. */
  current: Type.Boolean(),
  endpointUrl: NullableString,
  endpointModel: NullableString,
  /** Whether an API key is stored (the key itself is never returned). */
  hasApiKey: Type.Boolean(),
  settings: SamplingSettingsSchema,
  concurrency: Type.Integer(),
  responses: Type.Integer({ description: 'Responses stored for this version.' }),
  createdAt: Timestamp,
  promotedAt: NullableTimestamp,
});
export type ModelVersion = Static<typeof ModelVersionSchema>;

export const EndpointTestResultSchema = Type.Object({
  ok: Type.Boolean(),
  latencyMs: Type.Integer(),
  /** The sample answer. */
  text: NullableString,
  finishReason: NullableString,
  model: NullableString,
  usage: Type.Union([
    Type.Object({
      promptTokens: Type.Integer(),
      completionTokens: Type.Integer(),
      totalTokens: Type.Integer(),
    }),
    Type.Null(),
  ]),
  /** Why it failed: the endpoint's message (the API key removed) or the outbound guard's. */
  error: NullableString,
  /** The endpoint's HTTP status when it answered with an error. */
  status: Type.Union([Type.Integer(), Type.Null()]),
});
export type EndpointTestResult = Static<typeof EndpointTestResultSchema>;
