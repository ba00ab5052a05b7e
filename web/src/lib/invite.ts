// Shared loader for the one-time link pages (/setup and /invite).
import type { InviteLookup } from '$shared/index.js';
import { api, ApiError, errorMessage } from './api.js';
import { loadSession } from './auth.js';

export type LinkState =
  | { status: 'ok'; token: string; lookup: InviteLookup }
  | { status: 'missing' }
  | { status: 'invalid' }
  | { status: 'error'; message: string };

/**
 * The token of a one-time link. Links carry it in the fragment (`/invite#token=…`), which the
 * browser never sends to the server; a link from an older version (`?token=…`) still works.
 */
export function linkToken(url: URL, hash: string): string {
  const fromHash = new URLSearchParams(hash.replace(/^#/, '')).get('token')?.trim();
  return fromHash || (url.searchParams.get('token')?.trim() ?? '');
}

export async function lookupLink(url: URL): Promise<LinkState> {
  await loadSession();
  // The fragment is not part of a load function's URL: it is read from the address bar itself.
  const token = linkToken(url, typeof location === 'undefined' ? '' : location.hash);
  if (!token) return { status: 'missing' };
  try {
    const lookup = await api.lookupInvite(token);
    return { status: 'ok', token, lookup };
  } catch (error) {
    // 404: unknown, used or expired. 400: malformed token (schema validation).
    if (error instanceof ApiError && (error.status === 404 || error.status === 400))
      return { status: 'invalid' };
    return { status: 'error', message: errorMessage(error) };
  }
}
