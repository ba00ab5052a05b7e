// Who is signed in, and the CSRF token the API wants on every write. One reactive instance for the app.
import type { MeResponse, Role, User } from '$shared/index.js';

class Session {
  /** The signed-in user, or null. */
  user = $state<User | null>(null);
  /** Sent as `x-csrf-token` on POST/PATCH/PUT/DELETE; comes from the last login or /api/auth/me answer. */
  csrfToken = $state<string | null>(null);
  /** True once we asked the server who we are (so pages can tell "signed out" from "not known yet"). */
  loaded = $state(false);

  readonly role: Role | null = $derived(this.user?.role ?? null);

  set(me: MeResponse): void {
    this.user = me.user;
    this.csrfToken = me.csrfToken;
    this.loaded = true;
  }

  clear(): void {
    this.user = null;
    this.csrfToken = null;
    this.loaded = true;
  }

  hasRole(...roles: Role[]): boolean {
    return this.user !== null && roles.includes(this.user.role);
  }
}

export const session = new Session();
