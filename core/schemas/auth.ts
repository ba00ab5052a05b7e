import { Type, type Static } from 'typebox';
import { DisplayName, Email, NullableTimestamp, Password, RoleSchema, Timestamp } from './common.js';

export const UserSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    email: Type.String(),
    name: Type.String(),
    role: RoleSchema,
    simulated: Type.Boolean(),
    disabled: Type.Boolean(),
    lastLoginAt: NullableTimestamp,
    createdAt: Timestamp,
  },
  { $id: 'User' },
);
export type User = Static<typeof UserSchema>;

export const LoginBody = Type.Object(
  {
    email: Type.String({ minLength: 1, maxLength: 254 }),
    password: Type.String({ minLength: 1, maxLength: 256 }),
  },
  { additionalProperties: false },
);
export type LoginBody = Static<typeof LoginBody>;

/** The signed-in user and the CSRF token the browser must send as `x-csrf-token` on writes. */
export const MeResponse = Type.Object({
  user: UserSchema,
  csrfToken: Type.Union([Type.String(), Type.Null()], {
    description: 'Null when authenticated by an API token (no CSRF needed).',
  }),
});
export type MeResponse = Static<typeof MeResponse>;

export const SessionSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  current: Type.Boolean(),
  ip: Type.Union([Type.String(), Type.Null()]),
  userAgent: Type.Union([Type.String(), Type.Null()]),
  createdAt: Timestamp,
  lastSeenAt: Timestamp,
  expiresAt: Timestamp,
});
export type Session = Static<typeof SessionSchema>;
export const SessionList = Type.Array(SessionSchema);

export const ChangePasswordBody = Type.Object(
  { currentPassword: Type.String({ minLength: 1, maxLength: 256 }), newPassword: Password },
  { additionalProperties: false },
);
export type ChangePasswordBody = Static<typeof ChangePasswordBody>;

/** What a one-time link (setup or invitation) grants, shown before the user picks a password. */
export const InviteLookup = Type.Object({
  kind: Type.Union([Type.Literal('setup'), Type.Literal('invite')]),
  email: Type.Union([Type.String(), Type.Null()]),
  role: RoleSchema,
  expiresAt: Timestamp,
  projects: Type.Array(Type.Object({ name: Type.String() }), {
    description: 'Projects the new account joins.',
  }),
});
export type InviteLookup = Static<typeof InviteLookup>;

export const InviteLookupBody = Type.Object(
  { token: Type.String({ minLength: 16, maxLength: 200 }) },
  { additionalProperties: false },
);

export const AcceptInviteBody = Type.Object(
  {
    token: Type.String({ minLength: 16, maxLength: 200 }),
    email: Type.Optional(Email),
    name: DisplayName,
    password: Password,
  },
  { additionalProperties: false },
);
export type AcceptInviteBody = Static<typeof AcceptInviteBody>;

export const SetupStatus = Type.Object({
  needsSetup: Type.Boolean({ description: 'True until the first admin exists.' }),
});
export type SetupStatus = Static<typeof SetupStatus>;
