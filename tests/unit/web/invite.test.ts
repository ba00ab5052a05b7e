// The one-time link pages' loader (web/src/lib/invite.ts): where the token is read from, and what a
// lookup's answer or failure becomes.
import { beforeEach, describe, expect, it, vi } from 'vitest';

const lookupInvite = vi.fn();

class FakeApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

vi.mock('../../../web/src/lib/api.js', () => ({
  api: { lookupInvite: (token: string) => lookupInvite(token) },
  ApiError: FakeApiError,
  errorMessage: (error: unknown) => (error instanceof Error ? error.message : 'Something went wrong.'),
}));
vi.mock('../../../web/src/lib/auth.js', () => ({ loadSession: () => Promise.resolve() }));

const { linkToken, lookupLink } = await import('../../../web/src/lib/invite.js');

describe('linkToken', () => {
  it('reads the token from the fragment, which the browser never sends', () => {
    expect(linkToken(new URL('https://loom.test/invite'), '#token=abc')).toBe('abc');
    expect(linkToken(new URL('https://loom.test/invite'), 'token=%20abc%20')).toBe('abc');
  });

  it('falls back to the query of an older link, and prefers the fragment when both are there', () => {
    expect(linkToken(new URL('https://loom.test/invite?token=old'), '')).toBe('old');
    expect(linkToken(new URL('https://loom.test/invite?token=old'), '#token=new')).toBe('new');
  });

  it('is empty when the link has none', () => {
    expect(linkToken(new URL('https://loom.test/invite'), '')).toBe('');
    expect(linkToken(new URL('https://loom.test/invite'), '#other=1')).toBe('');
  });
});

describe('lookupLink', () => {
  beforeEach(() => {
    lookupInvite.mockReset();
    vi.stubGlobal('location', { hash: '' });
  });

  it('says the token is missing without asking the server', async () => {
    expect(await lookupLink(new URL('https://loom.test/invite'))).toEqual({ status: 'missing' });
    expect(lookupInvite).not.toHaveBeenCalled();
  });

  it('gives the lookup of a valid token, read from the address bar', async () => {
    vi.stubGlobal('location', { hash: '#token=t1' });
    const lookup = { role: 'RATER', email: 'a@example.com', kind: 'invite' };
    lookupInvite.mockResolvedValue(lookup);
    expect(await lookupLink(new URL('https://loom.test/invite'))).toEqual({
      status: 'ok',
      token: 't1',
      lookup,
    });
    expect(lookupInvite).toHaveBeenCalledWith('t1');
  });

  it('calls an unknown, used, expired or malformed token invalid', async () => {
    for (const status of [404, 400]) {
      lookupInvite.mockRejectedValueOnce(new FakeApiError(status, 'nope'));
      expect(await lookupLink(new URL('https://loom.test/invite?token=t'))).toEqual({ status: 'invalid' });
    }
  });

  it('passes any other failure on with its message', async () => {
    lookupInvite.mockRejectedValueOnce(new FakeApiError(503, 'The server is starting.'));
    expect(await lookupLink(new URL('https://loom.test/invite?token=t'))).toEqual({
      status: 'error',
      message: 'The server is starting.',
    });
    lookupInvite.mockRejectedValueOnce(new TypeError('Failed to fetch'));
    expect(await lookupLink(new URL('https://loom.test/invite?token=t'))).toEqual({
      status: 'error',
      message: 'Failed to fetch',
    });
  });
});
