// A page's answer to its last action (web/src/lib/feedback.svelte.ts): a note or an error, never both.
import { describe, expect, it } from 'vitest';
import { Feedback } from '../../../web/src/lib/feedback.svelte.js';

describe('Feedback', () => {
  it('shows a note or an error, the later replacing the earlier', () => {
    const feedback = new Feedback();
    feedback.fail(new Error('Could not revoke.'));
    expect(feedback).toMatchObject({ notice: null, error: 'Could not revoke.' });
    feedback.say('Revoked.');
    expect(feedback).toMatchObject({ notice: 'Revoked.', error: null });
    feedback.fail('a thrown string');
    expect(feedback).toMatchObject({ notice: null, error: 'Something went wrong.' });
    feedback.clear();
    expect(feedback).toMatchObject({ notice: null, error: null });
  });

  it('words errors as it is told', () => {
    const feedback = new Feedback((error) => `Failed: ${String(error)}`);
    feedback.fail(409);
    expect(feedback.error).toBe('Failed: 409');
  });
});
