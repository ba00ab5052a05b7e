// GET /metrics for Prometheus (server/plugins/metrics.ts collects them). Protected by a bearer
// token of its own: with METRICS_TOKEN unset it answers 404 (metrics off); with it set, only
// `Authorization: Bearer <METRICS_TOKEN>` is answered (401 otherwise). The token is not an API
// token: it grants the metrics and nothing else, and neither API tokens nor sessions grant them.
import { createHash } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { HttpError, notFound } from '../../core/errors.js';
import { ErrorSchema } from '../../core/schemas/common.js';
import { safeEqual } from '../../core/services/secrets.js';

const digest = (text: string) => createHash('sha256').update(text).digest('hex');

const metrics: FastifyPluginAsyncTypebox = async (app) => {
  const token = app.config.metricsToken;
  const expected = token === undefined ? null : digest(token);
  app.get(
    '/metrics',
    {
      schema: {
        operationId: 'getMetrics',
        tags: ['system'],
        summary: 'Prometheus metrics (with the METRICS_TOKEN bearer token)',
        description:
          'The Prometheus text format. Answered only with `Authorization: Bearer <METRICS_TOKEN>`; ' +
          'without METRICS_TOKEN set on the server, 404. API tokens and sessions do not grant it.',
        security: [{ metricsToken: [] }],
        response: {
          200: {
            description: 'The metrics in the Prometheus text exposition format.',
            content: { 'text/plain': { schema: Type.String() } },
          },
          401: ErrorSchema,
          404: ErrorSchema,
        },
      },
    },
    async (request, reply) => {
      if (expected === null) throw notFound('Metrics are off: set METRICS_TOKEN to serve them.');
      const sent = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '')?.[1];
      if (sent === undefined || !safeEqual(digest(sent), expected)) {
        void reply.header('www-authenticate', 'Bearer realm="metrics"');
        throw new HttpError(401, 'Send the metrics token: Authorization: Bearer <METRICS_TOKEN>.');
      }
      return reply.type(app.metrics.contentType).send(await app.metrics.scrape(request.log));
    },
  );
};
export default metrics;
