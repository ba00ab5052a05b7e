// What the users page loads at once and its sections share: the accounts, the invitations, and the
// active projects an invitation may name.
import type { Invite, Project, User } from '$shared/index.js';

export interface Directory {
  users: User[];
  invites: Invite[];
  /** Active projects only. */
  projects: Project[];
}
