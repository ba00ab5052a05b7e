// The audit log, newest first (admins only).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { HttpError } from '../../core/errors.js';
import { AuditPage, AuditQuery } from '../../core/schemas/audit.js';

const MAX_BIGINT = 9_223_372_036_854_775_807n;

const audit: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/api/audit',
    {
      config: { access: ['ADMIN'] },
      schema: {
        operationId: 'listAuditEvents',
        tags: ['audit'],
        summary: 'Audit log, newest first',
        querystring: AuditQuery,
        response: { 200: AuditPage },
      },
    },
    async (request) => {
      const before = request.query.before === undefined ? undefined : BigInt(request.query.before);
      // Ids are 64-bit: a larger cursor (19 digits fit the pattern) names no entry.
      if (before !== undefined && before > MAX_BIGINT)
        throw new HttpError(
          400,
          `Invalid request: querystring.before: must be at most ${MAX_BIGINT} (a 64-bit id)`,
          'VALIDATION',
        );
      return app.services.audit.list(before, request.query.limit ?? 50);
    },
  );
};
export default audit;
