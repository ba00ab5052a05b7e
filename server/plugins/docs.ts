// The OpenAPI document (/api/docs/json) and its browsable page (/api/docs), generated from the
// routes' TypeBox schemas.
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { ErrorSchema } from '../schemas/common.js';

export default fp(async function docs(app: FastifyInstance) {
  app.addSchema(ErrorSchema);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Loom API',
        version: '0.1.0',
        description:
          'RLHF with the whole loop inside. Authenticate with the session cookie from POST /api/auth/login ' +
          '(send the x-csrf-token header on writes) or with `Authorization: Bearer <API token>`.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'An API token created under API tokens.' },
          session: { type: 'apiKey', in: 'cookie', name: 'loom_session' },
        },
      },
      security: [{ bearer: [] }, { session: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/api/docs', staticCSP: false });
});
