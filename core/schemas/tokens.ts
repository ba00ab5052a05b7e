import { Type, type Static } from 'typebox';
import { NullableTimestamp, Timestamp } from './common.js';

export const TokenScope = Type.Union([Type.Literal('user'), Type.Literal('training')], {
  description:
    'user: acts as its user on every route the role allows; training (admins only): only the routes external training engines use to take rounds.',
});

export const ApiTokenSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  prefix: Type.String({ description: 'The first characters of the token, to recognise it.' }),
  scope: TokenScope,
  createdAt: Timestamp,
  lastUsedAt: NullableTimestamp,
  expiresAt: NullableTimestamp,
  revokedAt: NullableTimestamp,
});
export type ApiToken = Static<typeof ApiTokenSchema>;
export const ApiTokenList = Type.Array(ApiTokenSchema);

export const CreateTokenBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    expiresInDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
    scope: Type.Optional(TokenScope),
  },
  { additionalProperties: false },
);
export type CreateTokenBody = Static<typeof CreateTokenBody>;

/** `token` is shown once and never again. */
export const CreatedToken = Type.Object({ apiToken: ApiTokenSchema, token: Type.String() });
export type CreatedToken = Static<typeof CreatedToken>;
