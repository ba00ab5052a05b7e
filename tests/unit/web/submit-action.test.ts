// The form flow (web/src/lib/submit-action.svelte.ts): check first, then run with a busy flag, and
// end with the action's note or the failure's message.
import { describe, expect, it, vi } from 'vitest';
import { SubmitAction } from '../../../web/src/lib/submit-action.svelte.js';
import { deferred } from './deferred.js';

describe('SubmitAction', () => {
  it('keeps the form from reloading the page, runs the action busy, and shows its note', async () => {
    const step = deferred<string>();
    const form = new SubmitAction(() => step.promise);
    const event = new Event('submit', { cancelable: true });
    const submitted = form.submit(event);
    expect(event.defaultPrevented).toBe(true);
    expect(form.busy).toBe(true);
    step.resolve('Password changed.');
    expect(await submitted).toBe(true);
    expect(form).toMatchObject({ busy: false, notice: 'Password changed.', error: null });
  });

  it('stops at the check, with its message, before any request', async () => {
    const action = vi.fn(() => Promise.resolve());
    const form = new SubmitAction(action, { check: () => 'Enter your current password.' });
    expect(await form.submit()).toBe(false);
    expect(action).not.toHaveBeenCalled();
    expect(form).toMatchObject({ busy: false, error: 'Enter your current password.', notice: null });
  });

  it('shows why the action failed, worded by describe, and clears it on the next try', async () => {
    let fail = true;
    const form = new SubmitAction(() => (fail ? Promise.reject(new Error('409')) : Promise.resolve()), {
      describe: (error) => `Refused (${(error as Error).message})`,
    });
    expect(await form.submit()).toBe(false);
    expect(form).toMatchObject({ busy: false, error: 'Refused (409)', notice: null });
    fail = false;
    expect(await form.submit()).toBe(true);
    // An action that returns nothing leaves no note.
    expect(form).toMatchObject({ busy: false, error: null, notice: null });
  });

  it('clears the last note before it checks again', async () => {
    const form: SubmitAction = new SubmitAction(() => Promise.resolve('Saved.'), {
      check: (): string | null => (form.notice ? 'Again?' : null),
    });
    await form.submit();
    expect(form.notice).toBe('Saved.');
    await form.submit();
    expect(form).toMatchObject({ error: null, notice: 'Saved.' });
  });
});
