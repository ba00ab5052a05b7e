// The confirmed-action flow (web/src/lib/confirm-action.svelte.ts): ask about a row, run the action
// with a busy flag on confirm, report a failure, close the dialog either way.
import { describe, expect, it, vi } from 'vitest';
import { ConfirmAction } from '../../../web/src/lib/confirm-action.svelte.js';
import { deferred } from './deferred.js';

describe('ConfirmAction', () => {
  it('opens the dialog for the row asked about', () => {
    const flow = new ConfirmAction<string>(vi.fn(), vi.fn());
    expect(flow.open).toBe(false);
    flow.ask('token-1');
    expect(flow.target).toBe('token-1');
    expect(flow.open).toBe(true);
  });

  it('runs the action on that row, busy while it runs, then closes', async () => {
    const step = deferred<void>();
    const action = vi.fn(() => step.promise);
    const flow = new ConfirmAction<string>(action, vi.fn());
    flow.ask('token-1');
    const confirmed = flow.confirm();
    expect(action).toHaveBeenCalledWith('token-1');
    expect(flow.busy).toBe(true);
    expect(flow.open).toBe(true);
    step.resolve();
    await confirmed;
    expect(flow.busy).toBe(false);
    expect(flow.open).toBe(false);
  });

  it('hands a failure to onError and still closes', async () => {
    const failure = new Error('refused');
    const onError = vi.fn();
    const flow = new ConfirmAction<string>(() => Promise.reject(failure), onError);
    flow.ask('token-1');
    await flow.confirm();
    expect(onError).toHaveBeenCalledWith(failure);
    expect(flow.busy).toBe(false);
    expect(flow.open).toBe(false);
  });

  it('does nothing when nothing was asked about', async () => {
    const action = vi.fn(() => Promise.resolve());
    await new ConfirmAction<string>(action, vi.fn()).confirm();
    expect(action).not.toHaveBeenCalled();
  });
});
