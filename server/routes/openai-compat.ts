// Loom's built-in versions behind an OpenAI-compatible API, for evaluation harnesses and scripts:
// POST /v1/chat/completions (non-streaming) and GET /v1/models. An API token is required
// (`Authorization: Bearer <token>`; sessions are not accepted here), and a token sees the versions of
// the projects its user sees. Errors come in OpenAI's shape, {error: {message, type, param, code}}.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { HttpError } from '../../core/errors.js';
import type { Principal } from '../../core/services/auth.js';
import { OpenAIError } from '../../core/services/serving.js';
import {
  ChatCompletionBody,
  ChatCompletionSchema,
  ModelListSchema,
  OpenAIErrorSchema,
  type OpenAIErrorBody,
} from '../../core/schemas/openai.js';

const TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'invalid_request_error',
  403: 'permission_error',
  404: 'invalid_request_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  429: 'rate_limit_error',
};

function errorBody(
  message: string,
  type: string,
  code: string | null = null,
  param: string | null = null,
): OpenAIErrorBody {
  return { error: { message, type, param, code } };
}

/** Every error of these routes in OpenAI's shape; 5xx without internals. */
function openAIErrorHandler(
  this: unknown,
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  if (error instanceof OpenAIError)
    return reply.status(error.status).send(errorBody(error.message, error.type, error.code, error.param));
  if (error.validation)
    return reply
      .status(400)
      .send(errorBody(`Invalid request: ${error.message}`, 'invalid_request_error', 'invalid_request'));
  const status = error instanceof HttpError ? error.statusCode : (error.statusCode ?? 500);
  if (status < 500)
    return reply.status(status).send(errorBody(error.message, TYPES[status] ?? 'invalid_request_error'));
  request.log.error({ err: error }, 'OpenAI-compatible request failed');
  return reply
    .status(500)
    .send(
      errorBody('The server had an error while answering; retry, or report the request id.', 'server_error'),
    );
}

const openaiCompat: FastifyPluginAsyncTypebox = async (app) => {
  async function principal(request: FastifyRequest): Promise<Principal> {
    const header = request.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!match)
      throw new OpenAIError(
        401,
        'An API token is required: send Authorization: Bearer <token> (create one under API tokens).',
        'invalid_request_error',
        'missing_api_key',
      );
    const found = await app.services.auth.resolveApiToken(match[1]!);
    if (!found)
      throw new OpenAIError(
        401,
        'This API token is invalid, expired or revoked.',
        'invalid_request_error',
        'invalid_api_key',
      );
    return found;
  }

  const errors = {
    400: OpenAIErrorSchema,
    401: OpenAIErrorSchema,
    404: OpenAIErrorSchema,
    429: OpenAIErrorSchema,
  };

  app.post(
    '/v1/chat/completions',
    {
      errorHandler: openAIErrorHandler,
      schema: {
        operationId: 'createChatCompletion',
        tags: ['openai'],
        summary: 'OpenAI-compatible chat completion from a built-in policy version (non-streaming)',
        description:
          'Send an API token as Bearer. `model` is a built-in version’s name or id (GET /v1/models). The policy is prompted with the last user message. temperature, top_p, max_tokens (characters for the built-in tokenizer), seed and stop are honoured; n must be 1 and stream false.',
        security: [{ bearer: [] }],
        body: ChatCompletionBody,
        response: { 200: ChatCompletionSchema, ...errors },
      },
    },
    async (request) => app.services.serving.complete(await principal(request), request.body),
  );

  app.get(
    '/v1/models',
    {
      errorHandler: openAIErrorHandler,
      schema: {
        operationId: 'listOpenAIModels',
        tags: ['openai'],
        summary: 'The built-in versions this API token may call, in OpenAI’s model list shape',
        security: [{ bearer: [] }],
        response: { 200: ModelListSchema, 401: OpenAIErrorSchema },
      },
    },
    async (request) => app.services.serving.models(await principal(request)),
  );
};
export default openaiCompat;
