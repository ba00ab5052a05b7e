// Liveness and readiness: 200 only when the database answers.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ErrorSchema } from '../../core/schemas/common.js';
import { HealthResponse } from '../../core/schemas/health.js';

const health: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/api/health',
    {
      config: { access: 'public' },
      schema: {
        operationId: 'getHealth',
        tags: ['system'],
        summary: 'Health check',
        response: { 200: HealthResponse, 503: ErrorSchema },
      },
    },
    async () => {
      await app.services.health.check();
      return { status: 'ok' as const };
    },
  );
};
export default health;
