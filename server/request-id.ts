// Every request has an id: the caller's `X-Request-Id` when it looks like one (a proxy or a load
// balancer may have set it), else a fresh UUID. The id is on every log line of the request (pino's
// `reqId`), in the `X-Request-Id` response header and in every error body (`requestId`), so a user's
// report of an error leads to its lines in the log.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

export const REQUEST_ID_HEADER = 'x-request-id';

/** Letters, digits and `.`, `_`, `:`, `-`, 1 to 128 of them: nothing a log line or header could be bent by. */
const SANE = /^[A-Za-z0-9._:-]{1,128}$/;

/** The incoming id when it is sane (one header, the allowed characters, bounded), else a new one. */
export function requestIdOf(request: Pick<IncomingMessage, 'headers'>): string {
  const given = request.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && SANE.test(given) ? given : randomUUID();
}

/** Echoes the id on every answer, errors and unknown routes included. */
export default fp(async function requestId(app: FastifyInstance) {
  app.addHook('onRequest', async (request, reply) => {
    reply.header(REQUEST_ID_HEADER, request.id);
  });
});
