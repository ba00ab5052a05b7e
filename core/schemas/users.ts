import { Type, type Static } from 'typebox';
import { DisplayName, Email, NullableTimestamp, Password, RoleSchema, Timestamp } from './common.js';

export const CreateUserBody = Type.Object(
  { email: Email, name: DisplayName, role: RoleSchema, password: Password },
  { additionalProperties: false },
);
export type CreateUserBody = Static<typeof CreateUserBody>;

export const UpdateUserBody = Type.Object(
  {
    name: Type.Optional(DisplayName),
    role: Type.Optional(RoleSchema),
    disabled: Type.Optional(
      Type.Boolean({ description: 'Disabling ends every session and token use at once.' }),
    ),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateUserBody = Static<typeof UpdateUserBody>;

export const CreateInviteBody = Type.Object(
  {
    email: Email,
    role: RoleSchema,
    expiresInHours: Type.Optional(Type.Integer({ minimum: 1, maximum: 24 * 30, default: 72 })),
    projectIds: Type.Optional(
      Type.Array(Type.String({ format: 'uuid' }), {
        maxItems: 200,
        uniqueItems: true,
        description: 'Projects the new user becomes a member of when they accept (active projects only).',
      }),
    ),
  },
  { additionalProperties: false },
);
export type CreateInviteBody = Static<typeof CreateInviteBody>;

/** A project an invitation names. */
export const InviteProjectSchema = Type.Object({ id: Type.String({ format: 'uuid' }), name: Type.String() });

export const InviteSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  email: Type.Union([Type.String(), Type.Null()]),
  role: RoleSchema,
  projects: Type.Array(InviteProjectSchema, { description: 'Projects joined on acceptance.' }),
  createdAt: Timestamp,
  expiresAt: Timestamp,
  acceptedAt: NullableTimestamp,
  revokedAt: NullableTimestamp,
});
export type Invite = Static<typeof InviteSchema>;
export const InviteList = Type.Array(InviteSchema);

/** The link is shown once; only its hash is stored. */
export const CreatedInvite = Type.Object({
  invite: InviteSchema,
  url: Type.String(),
  token: Type.String(),
  replaced: Type.Boolean({
    description: 'This email had a pending invitation: it is revoked, and its link no longer works.',
  }),
});
export type CreatedInvite = Static<typeof CreatedInvite>;
