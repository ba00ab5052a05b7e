// Loading what a page shows (web/src/lib/resource.svelte.ts): value, error and retry; loading
// whenever the page may see it and its inputs change; polling while a condition holds.
import { flushSync } from 'svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Resource } from '../../../web/src/lib/resource.svelte.js';
import { deferred } from './deferred.js';

/** Runs `setup` as a component's setup would, and returns what ends it (its effects too). */
function mount(setup: () => void): () => void {
  return $effect.root(setup);
}

describe('Resource', () => {
  it('holds the value loaded, and is loading meanwhile', async () => {
    const step = deferred<string[]>();
    const tokens = new Resource(() => step.promise);
    expect(tokens.value).toBeNull();
    const loaded = tokens.refresh();
    expect(tokens.loading).toBe(true);
    step.resolve(['t1']);
    await loaded;
    expect(tokens).toMatchObject({ value: ['t1'], error: null, loading: false });
  });

  it('keeps the last value when a load fails, says why, and clears the error on a good retry', async () => {
    let answer: () => Promise<number> = () => Promise.resolve(1);
    const count = new Resource(() => answer());
    await count.refresh();
    answer = () => Promise.reject(new Error('The server is down.'));
    await count.refresh();
    expect(count).toMatchObject({ value: 1, error: 'The server is down.', loading: false });
    answer = () => Promise.resolve(2);
    await count.refresh();
    expect(count).toMatchObject({ value: 2, error: null });
  });

  it('words errors as it is told', async () => {
    const failing = new Resource(
      () => Promise.reject(new Error('x')),
      () => 'Not now.',
    );
    await failing.refresh();
    expect(failing.error).toBe('Not now.');
  });
});

describe('Resource.loadWhen', () => {
  it('loads once the page may be seen, and again when what the fetch reads changes', async () => {
    const allowed = $state({ yes: false });
    const id = $state({ value: 'p1' });
    const fetch = vi.fn((projectId: string) => Promise.resolve(`project ${projectId}`));
    let project!: Resource<string>;
    const unmount = mount(() => {
      project = new Resource(() => fetch(id.value)).loadWhen(() => allowed.yes);
    });
    flushSync();
    expect(fetch).not.toHaveBeenCalled();

    allowed.yes = true;
    flushSync();
    expect(fetch).toHaveBeenCalledTimes(1);
    await vi.waitFor(() => expect(project.value).toBe('project p1'));
    // Its own new value does not set it off again.
    flushSync();
    expect(fetch).toHaveBeenCalledTimes(1);

    id.value = 'p2';
    flushSync();
    expect(fetch).toHaveBeenLastCalledWith('p2');
    await vi.waitFor(() => expect(project.value).toBe('project p2'));
    expect(fetch).toHaveBeenCalledTimes(2);

    unmount();
    id.value = 'p3';
    flushSync();
    expect(fetch).toHaveBeenCalledTimes(2);
  });
});

describe('Resource.pollWhile', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('loads again on each tick while the condition holds, and stops with the page', () => {
    let preparing = true;
    const fetch = vi.fn(() => Promise.resolve(0));
    const unmount = mount(() => {
      new Resource(fetch).pollWhile(2000, () => preparing);
    });
    flushSync();
    vi.advanceTimersByTime(1999);
    expect(fetch).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fetch).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(4000);
    expect(fetch).toHaveBeenCalledTimes(3);

    preparing = false;
    vi.advanceTimersByTime(10_000);
    expect(fetch).toHaveBeenCalledTimes(3);

    preparing = true;
    unmount();
    vi.advanceTimersByTime(10_000);
    expect(fetch).toHaveBeenCalledTimes(3);
  });
});
