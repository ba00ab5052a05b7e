// One error handler for the whole API: 4xx answers say what was wrong, 5xx answers never carry
// internals (the details go to the log with the request id, which every error body carries).
import type { FastifyError, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { HttpError } from '../../core/errors.js';

const PRISMA_STATUS: Record<string, { status: number; message: string }> = {
  P2002: { status: 409, message: 'This already exists.' },
  P2003: { status: 409, message: 'This refers to something that does not exist or is still in use.' },
  P2025: { status: 404, message: 'Not found.' },
};

/**
 * PostgreSQL's "this value cannot be stored" errors: input the validation let through. A safety
 * net (routes and importers check first, naming the field); answered 400, never 500.
 */
const POSTGRES_INVALID_INPUT: Record<string, string> = {
  '22P02': 'A value has an invalid form for the database.',
  '22021': 'A text contains a character the database cannot store (such as NUL, \\u0000).',
  '22P05': 'A text contains a character the database cannot store (such as NUL, \\u0000).',
  '22008': 'A date or time is out of the range the database can store.',
  '22007': 'A date or time has an invalid form.',
  '22003': 'A number is out of the range the database can store.',
  '54001': 'A value is nested too deeply to be stored.',
};

/** The SQLSTATE of a database error, from the pg driver or from Prisma's driver adapter. */
export function postgresCode(error: unknown): string | undefined {
  const e = error as {
    code?: unknown;
    meta?: { driverAdapterError?: { cause?: { originalCode?: string; code?: string } } };
    cause?: { originalCode?: string; code?: string };
  };
  const cause = e?.meta?.driverAdapterError?.cause ?? e?.cause;
  const code = cause?.originalCode ?? cause?.code ?? e?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** Errors that mean the database cannot be reached: answer 503 so clients retry. */
function isDatabaseUnavailable(error: unknown): boolean {
  const text = `${(error as Error)?.name ?? ''} ${(error as Error)?.message ?? ''} ${(error as { code?: string })?.code ?? ''}`;
  return /ECONNREFUSED|ECONNRESET|ETIMEDOUT|timeout exceeded when trying to connect|timeout expired|Query read timeout|Connection terminated|DatabaseNotReachable|P1001|P1017|57P01|57P03/i.test(
    text,
  );
}

function statusText(status: number): string {
  const texts: Record<number, string> = {
    400: 'Bad Request',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not Found',
    405: 'Method Not Allowed',
    406: 'Not Acceptable',
    408: 'Request Timeout',
    409: 'Conflict',
    413: 'Payload Too Large',
    415: 'Unsupported Media Type',
    422: 'Unprocessable Entity',
    429: 'Too Many Requests',
    500: 'Internal Server Error',
    503: 'Service Unavailable',
  };
  return texts[status] ?? (status >= 500 ? 'Internal Server Error' : 'Bad Request');
}

export default fp(async function errors(app: FastifyInstance) {
  app.setErrorHandler((error: FastifyError & { code?: string; validation?: unknown }, request, reply) => {
    let status = error.statusCode ?? 500;
    let message = error.message;
    let code: string | undefined = error.code;
    let extra: Record<string, unknown> = {};

    if (error instanceof HttpError) {
      status = error.statusCode;
      code = error.code;
      extra = error.extra ?? {};
    } else if (error.validation) {
      status = 400;
      message = `Invalid request: ${error.message}`;
      code = 'VALIDATION';
    } else if (code && code in PRISMA_STATUS) {
      const mapped = PRISMA_STATUS[code]!;
      status = mapped.status;
      message = mapped.message;
    } else if (postgresCode(error) && postgresCode(error)! in POSTGRES_INVALID_INPUT) {
      request.log.warn({ err: error }, 'the database refused a value the validation let through');
      status = 400;
      message = POSTGRES_INVALID_INPUT[postgresCode(error)!]!;
      code = 'INVALID_VALUE';
    } else if (isDatabaseUnavailable(error)) {
      status = 503;
      message = 'The database is unavailable; try again shortly.';
      code = 'DATABASE_UNAVAILABLE';
    }
    // Changes to credentials may go unheard while the database is away.
    if (code === 'DATABASE_UNAVAILABLE') app.services.auth.databaseTrouble();

    if (status >= 500) {
      request.log.error({ err: error }, 'request failed');
      if (status !== 503) {
        message = 'Something went wrong on our side. The error has been logged.';
        code = undefined;
      }
    } else {
      request.log.info({ status, code, message }, 'request refused');
    }
    void reply.status(status).send({
      ...extra,
      statusCode: status,
      error: statusText(status),
      message,
      ...(code ? { code } : {}),
      requestId: request.id,
    });
  });
});
