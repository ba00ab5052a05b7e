// TypeBox schemas shared by the server (validation, OpenAPI) and the web client (types).
import { Type, type Static } from 'typebox';

export const RoleSchema = Type.Union([
  Type.Literal('ADMIN'),
  Type.Literal('RESEARCHER'),
  Type.Literal('RATER'),
]);
export type Role = Static<typeof RoleSchema>;
export const ROLES: readonly Role[] = ['ADMIN', 'RESEARCHER', 'RATER'];

export const ErrorSchema = Type.Object(
  {
    statusCode: Type.Integer(),
    error: Type.String(),
    message: Type.String(),
    code: Type.Optional(Type.String()),
    requestId: Type.Optional(
      Type.String({
        description:
          "The request's id, also in the X-Request-Id header and on the request's log lines: quote it when reporting a problem.",
      }),
    ),
  },
  { $id: 'Error', description: 'Every 4xx and 5xx answer has this shape; 5xx never carries internals.' },
);
export type ApiError = Static<typeof ErrorSchema>;

export const IdParams = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });
export type IdParams = Static<typeof IdParams>;

/** ISO-8601 timestamp as sent over JSON. */
export const Timestamp = Type.String({ format: 'date-time' });
export const NullableTimestamp = Type.Union([Timestamp, Type.Null()]);
/**
 * A timestamp a client sends: ISO-8601 with a four-digit year from 0001 to 9999, so it fits
 * PostgreSQL's timestamps and JavaScript's dates (year 0000 or 10000 would fail in the database).
 */
export const InputTimestamp = Type.String({
  format: 'date-time',
  pattern: '^(?!0000)[0-9]{4}-',
  description: 'ISO-8601 date-time, years 0001 to 9999.',
});

export const Email = Type.String({ format: 'email', minLength: 3, maxLength: 254 });
/** Length bounds follow OWASP: at least 12 characters, at most 256 (argon2 input stays bounded). */
export const Password = Type.String({ minLength: 12, maxLength: 256 });
export const DisplayName = Type.String({ minLength: 1, maxLength: 120 });
