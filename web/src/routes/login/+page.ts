import { redirect } from '@sveltejs/kit';
import { api } from '../../lib/api.js';
import { homeFor, loadSession, safeNext } from '../../lib/auth.js';
import { session } from '../../lib/session.svelte.js';
import type { PageLoad } from './$types';

export const load: PageLoad = async ({ url }) => {
  await loadSession();
  if (session.user) redirect(307, safeNext(url.searchParams.get('next')) ?? homeFor(session.user.role));

  try {
    return { needsSetup: (await api.setupStatus()).needsSetup };
  } catch {
    return { needsSetup: false };
  }
};
