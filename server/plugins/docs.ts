// The OpenAPI document (/api/docs/json) and its browsable page (/api/docs), generated from the
// routes' TypeBox schemas; `npm run openapi` writes it to docs/openapi.json and `npm run check`
// lints it with Redocly's recommended rules. Every route names its operationId, tags and summary;
// the answers every route can give (400 for a refused request, 401 and 403 from the access rule)
// are added here to the document only, and errors are one shared `Error` schema.
// A route renamed keeps its old path as a deprecated alias: `config.formerly` registers the same
// route under the old path too, with `deprecated: true` in the document.
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import { ErrorSchema } from '../../core/schemas/common.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's former path, still answered as a deprecated alias. */
    formerly?: string;
  }
}

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** The shared error schema (`$id: 'Error'`, added below) by reference. */
const ERROR_REF = { $ref: 'Error#' };

type Responses = Record<string, unknown>;

/** The route's responses for the document: shared errors by reference, and the ones every route may give. */
function documentedResponses(schema: FastifySchema, route: RouteOptions): Responses {
  const responses: Responses = {};
  for (const [status, response] of Object.entries((schema.response ?? {}) as Responses)) {
    responses[status] = response === ErrorSchema ? ERROR_REF : response;
  }
  // A file is streamed as it is made: its body is the file, errors stay JSON.
  if (schema.produces) {
    responses['200'] = {
      description: 'The file, streamed as it is made.',
      content: Object.fromEntries(
        schema.produces.map((type) => [type, { schema: { type: 'string', format: 'binary' } }]),
      ),
    };
  }
  const access = route.config?.access;
  const validated = Boolean(schema.body ?? schema.querystring ?? schema.params ?? schema.headers);
  if (validated) responses['400'] ??= ERROR_REF;
  if (access !== undefined && access !== 'public') {
    responses['401'] ??= ERROR_REF;
    // Role-limited routes refuse other roles; cookie-authenticated writes without the CSRF token.
    if (access !== 'authenticated' || [route.method].flat().some((m) => WRITES.has(m)))
      responses['403'] ??= ERROR_REF;
  }
  return responses;
}

export default fp(async function docs(app: FastifyInstance) {
  app.addSchema(ErrorSchema);

  app.addHook('onRoute', function (route) {
    const formerly = route.config?.formerly;
    if (!formerly) return;
    const schema = route.schema ?? {};
    this.route({
      method: route.method,
      url: formerly,
      schema: {
        ...schema,
        operationId: `${schema.operationId}Deprecated`,
        summary: `${schema.summary} (deprecated path: use ${route.url})`,
        deprecated: true,
      },
      config: { ...route.config, formerly: undefined },
      bodyLimit: route.bodyLimit,
      preValidation: route.preValidation,
      preHandler: route.preHandler,
      validatorCompiler: route.validatorCompiler,
      handler: route.handler,
    });
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Loom API',
        version: '0.1.0',
        description:
          'RLHF with the whole loop inside. Authenticate with the session cookie from POST /api/auth/login ' +
          '(send the x-csrf-token header on writes) or with `Authorization: Bearer <API token>`.',
        license: { name: 'MIT', identifier: 'MIT' },
      },
      servers: [{ url: '/', description: 'The server that serves this document.' }],
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'An API token created under API tokens.' },
          session: { type: 'apiKey', in: 'cookie', name: 'loom_session' },
          metricsToken: {
            type: 'http',
            scheme: 'bearer',
            description: 'The METRICS_TOKEN the server is configured with (GET /metrics only).',
          },
        },
      },
      security: [{ bearer: [] }, { session: [] }],
    },
    refResolver: {
      // Shared schemas keep their own names (`Error`) in components.
      buildLocalReference: (json, _baseUri, _fragment, i) =>
        typeof json.$id === 'string' ? json.$id : `def-${i}`,
    },
    transform: ({ schema, url, route }) => {
      if (!schema) return { schema, url };
      const { produces: _produces, ...rest } = schema;
      return { schema: { ...rest, response: documentedResponses(schema, route) }, url };
    },
  });
  await app.register(swaggerUi, { routePrefix: '/api/docs', staticCSP: false });
});
