// Loom's own versions behind an OpenAI-compatible API: POST /v1/chat/completions (non-streaming)
// and GET /v1/models, in OpenAI's shapes, errors included.
import { Type, type Static } from 'typebox';

const TextPart = Type.Object(
  { type: Type.Literal('text'), text: Type.String({ maxLength: 100_000 }) },
  { additionalProperties: false },
);

export const ChatMessageSchema = Type.Object(
  {
    role: Type.Union([
      Type.Literal('system'),
      Type.Literal('developer'),
      Type.Literal('user'),
      Type.Literal('assistant'),
    ]),
    content: Type.Union([Type.String({ maxLength: 100_000 }), Type.Array(TextPart, { maxItems: 64 })]),
    name: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);

export const ChatCompletionBody = Type.Object(
  {
    model: Type.String({
      minLength: 1,
      maxLength: 200,
      description: 'A built-in policy version’s name or id.',
    }),
    messages: Type.Array(ChatMessageSchema, { minItems: 1, maxItems: 256 }),
    temperature: Type.Optional(Type.Union([Type.Number({ minimum: 0, maximum: 2 }), Type.Null()])),
    top_p: Type.Optional(Type.Union([Type.Number({ minimum: 0, maximum: 1 }), Type.Null()])),
    max_tokens: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 32768 }), Type.Null()])),
    max_completion_tokens: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1, maximum: 32768 }), Type.Null()]),
    ),
    seed: Type.Optional(
      Type.Union([Type.Integer({ minimum: -2147483648, maximum: 2147483647 }), Type.Null()]),
    ),
    stop: Type.Optional(
      Type.Union([
        Type.String({ minLength: 1, maxLength: 200 }),
        Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 4 }),
        Type.Null(),
      ]),
    ),
    n: Type.Optional(Type.Union([Type.Literal(1), Type.Null()], { description: 'Only 1 is supported.' })),
    stream: Type.Optional(
      Type.Union([Type.Literal(false), Type.Null()], { description: 'Streaming is not supported.' }),
    ),
    user: Type.Optional(Type.String({ maxLength: 256 })),
  },
  { additionalProperties: false },
);
export type ChatCompletionBody = Static<typeof ChatCompletionBody>;

export const ChatCompletionSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('chat.completion'),
  created: Type.Integer(),
  model: Type.String(),
  choices: Type.Array(
    Type.Object({
      index: Type.Integer(),
      message: Type.Object({ role: Type.Literal('assistant'), content: Type.String() }),
      finish_reason: Type.Union([Type.Literal('stop'), Type.Literal('length')]),
      logprobs: Type.Null(),
    }),
  ),
  usage: Type.Object({
    prompt_tokens: Type.Integer(),
    completion_tokens: Type.Integer(),
    total_tokens: Type.Integer(),
  }),
});
export type ChatCompletion = Static<typeof ChatCompletionSchema>;

export const ModelListSchema = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(
    Type.Object({
      id: Type.String({ description: 'The version’s id; its name works as `model` too.' }),
      object: Type.Literal('model'),
      created: Type.Integer(),
      owned_by: Type.String({ description: 'The project’s name.' }),
      name: Type.String(),
      project_id: Type.String(),
    }),
  ),
});
export type ModelList = Static<typeof ModelListSchema>;

export const OpenAIErrorSchema = Type.Object(
  {
    error: Type.Object({
      message: Type.String(),
      type: Type.String(),
      param: Type.Union([Type.String(), Type.Null()]),
      code: Type.Union([Type.String(), Type.Null()]),
    }),
  },
  { description: 'Errors of the OpenAI-compatible routes, in OpenAI’s shape.' },
);
export type OpenAIErrorBody = Static<typeof OpenAIErrorSchema>;
