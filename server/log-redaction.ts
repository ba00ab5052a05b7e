// What the server's log may show of a request: never a secret. Secrets travel in bodies (never
// logged) and headers (not logged either; redacted should anything log them). One-time links keep
// their token in the URL fragment, which browsers do not send; a link from an older version
// (`/invite?token=…`) or a hand-made URL still reaches the server, so query parameters named like a
// secret are masked in every URL the log shows.
import type { FastifyRequest } from 'fastify';

const CENSOR = '[redacted]';

/** A query parameter whose name says it carries a secret (token, secret, password, key, ...). */
const SECRET_PARAM = /([?&][^=&#]*(?:token|secret|passw|key|session|csrf)[^=&#]*=)[^&#]*/gi;

/** The URL with the values of secret-looking query parameters masked. */
export function redactUrl(url: string): string {
  return url.replace(SECRET_PARAM, `$1${CENSOR}`);
}

/** Fastify logger options: the request as Fastify logs it, its URL masked; secret headers redacted. */
export const logRedaction = {
  redact: {
    paths: [
      'req.headers.authorization',
      'req.headers.cookie',
      'req.headers["x-csrf-token"]',
      'res.headers["set-cookie"]',
      'headers.authorization',
      'headers.cookie',
      'headers["x-csrf-token"]',
    ],
    censor: CENSOR,
  },
  serializers: {
    req(request: FastifyRequest) {
      return {
        method: request.method,
        url: redactUrl(request.url),
        host: request.host,
        remoteAddress: request.ip,
        remotePort: request.socket?.remotePort,
      };
    },
  },
};
