// Session bootstrap, sign-out and where each role lands.
import { redirect } from '@sveltejs/kit';
import { goto } from '$app/navigation';
import { resolve } from '$app/paths';
import type { Role } from '$shared/index.js';
import { api, ApiError } from './api.js';
import { forgetUnsentJudgments } from './rating-session.svelte.js';
import { session } from './session.svelte.js';

let pending: Promise<void> | null = null;

/** Ask the server once who is signed in; later calls reuse the answer. */
export function loadSession(): Promise<void> {
  if (session.loaded) return Promise.resolve();
  pending ??= api
    .me()
    .then((me) => session.set(me))
    .catch((error: unknown) => {
      // 401: nobody is signed in. Anything else (server down): treat as signed out, the sign-in page
      // will show the real error when the user tries.
      if (!(error instanceof ApiError)) console.error(error);
      session.clear();
    })
    .finally(() => {
      pending = null;
    });
  return pending;
}

/** Each role's home page (a route id; pass it to `resolve`). */
export function homeRoute(role: Role): '/admin/users' | '/tokens' | '/rate' {
  switch (role) {
    case 'ADMIN':
      return '/admin/users';
    case 'RESEARCHER':
      return '/tokens';
    case 'RATER':
      return '/rate';
  }
}

/** Each role's home page, as a path. */
export function homeFor(role: Role): string {
  return resolve(homeRoute(role));
}

/** Only same-site paths are followed after sign-in (no open redirect to another origin). */
export function safeNext(next: string | null): string | null {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return null;
  if (next.startsWith('/login') || next.startsWith('/setup') || next.startsWith('/invite')) return null;
  return next;
}

/** For page `load`s: make sure someone is signed in, else go to /login and come back afterwards. */
export async function requireSignedIn(url: URL): Promise<void> {
  await loadSession();
  if (!session.user) {
    redirect(307, resolve(`/login?next=${encodeURIComponent(url.pathname + url.search)}`));
  }
}

export async function signOut(): Promise<void> {
  try {
    await api.logout();
  } catch {
    // The session may already be gone; signing out locally is what matters.
  }
  session.clear();
  // Judgments left unsent here are not for whoever signs in next on this browser.
  forgetUnsentJudgments();
  await goto(resolve('/login'));
}
