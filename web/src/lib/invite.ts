// Shared loader for the one-time link pages (/setup and /invite).
import type { InviteLookup } from '$shared/index.js';
import { api, ApiError, errorMessage } from './api.js';
import { loadSession } from './auth.js';

export type LinkState =
  | { status: 'ok'; token: string; lookup: InviteLookup }
  | { status: 'missing' }
  | { status: 'invalid' }
  | { status: 'error'; message: string };

export async function lookupLink(url: URL): Promise<LinkState> {
  await loadSession();
  const token = url.searchParams.get('token')?.trim() ?? '';
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
