// Liveness and readiness: 200 only when the database answers.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { HttpError } from '../errors.js';
import { ErrorSchema } from '../schemas/common.js';
import { HealthResponse } from '../schemas/health.js';

const health: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/api/health',
    {
      config: { access: 'public' },
      schema: {
        tags: ['system'],
        summary: 'Health check',
        response: { 200: HealthResponse, 503: ErrorSchema },
      },
    },
    async () => {
      try {
        await app.prisma.$queryRaw`SELECT 1`;
      } catch {
        throw new HttpError(503, 'The database is unavailable.', 'DATABASE_UNAVAILABLE');
      }
      return { status: 'ok' as const };
    },
  );
};
export default health;
