// The audit log, newest first (admins only).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AuditPage, AuditQuery } from '../schemas/audit.js';
import { listAudit } from '../services/audit.js';

const audit: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/api/audit',
    {
      config: { access: ['ADMIN'] },
      schema: {
        tags: ['audit'],
        summary: 'Audit log, newest first',
        querystring: AuditQuery,
        response: { 200: AuditPage },
      },
    },
    async (request) =>
      listAudit(
        app.prisma,
        request.query.before === undefined ? undefined : BigInt(request.query.before),
        request.query.limit ?? 50,
      ),
  );
};
export default audit;
