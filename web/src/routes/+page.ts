import { redirect } from '@sveltejs/kit';
import { resolve } from '$app/paths';
import { api } from '../lib/api.js';
import { homeFor, loadSession } from '../lib/auth.js';
import { session } from '../lib/session.svelte.js';
import type { PageLoad } from './$types';

export const load: PageLoad = async () => {
  await loadSession();
  if (session.user) redirect(307, homeFor(session.user.role));

  let needsSetup = false;
  try {
    needsSetup = (await api.setupStatus()).needsSetup;
  } catch {
    // Server unreachable or older: the sign-in page explains errors when the user tries.
  }
  if (!needsSetup) redirect(307, resolve('/login'));
  return { needsSetup };
};
