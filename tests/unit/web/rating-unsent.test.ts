// @vitest-environment jsdom
// Unsent judgments in localStorage (web/src/lib/rating/unsent-judgments.ts): one list per rater and
// project, several tabs sharing one, malformed entries left out, and signing out forgets them all.
import { beforeEach, describe, expect, it } from 'vitest';
import {
  forgetUnsentJudgments,
  isRatersList,
  readUnsent,
  unsentList,
  writeUnsent,
  type KeptJudgment,
} from '../../../web/src/lib/rating/unsent-judgments.js';

const list = unsentList('rater-1', 'project-1');

function kept(assignmentId: string, key: string): KeptJudgment {
  return { assignmentId, key, body: { choice: 'LEFT', strength: 0, timeSpentMs: 1200 } };
}

beforeEach(() => localStorage.clear());

describe('unsent judgments', () => {
  it('keeps one list per rater and project', () => {
    expect(list).toBe('loom.unsent.rater-1.project-1');
    expect(isRatersList(list, 'rater-1')).toBe(true);
    expect(isRatersList(unsentList('rater-2', 'project-1'), 'rater-1')).toBe(false);
  });

  it('writes a page’s judgments and reads them back as they were sent', () => {
    expect(writeUnsent(list, [kept('a', 'key-a'), kept('b', 'key-b')], ['key-a', 'key-b'])).toBe(true);
    expect(readUnsent(list)).toEqual([kept('a', 'key-a'), kept('b', 'key-b')]);
    // All stored: the list goes.
    expect(writeUnsent(list, [], ['key-a', 'key-b'])).toBe(true);
    expect(localStorage.getItem(list)).toBeNull();
    expect(readUnsent(list)).toEqual([]);
  });

  it('leaves another tab’s entries in a shared list', () => {
    writeUnsent(list, [kept('x', 'key-x')], ['key-x']);
    writeUnsent(list, [kept('a', 'key-a')], ['key-a']);
    expect(readUnsent(list).map((entry) => entry.key)).toEqual(['key-x', 'key-a']);
    writeUnsent(list, [], ['key-a']);
    expect(readUnsent(list).map((entry) => entry.key)).toEqual(['key-x']);
  });

  it('reads nothing from an unreadable list and leaves out malformed entries', () => {
    localStorage.setItem(list, '{not json');
    expect(readUnsent(list)).toEqual([]);
    localStorage.setItem(list, '{"assignmentId":"a"}');
    expect(readUnsent(list)).toEqual([]);
    localStorage.setItem(
      list,
      JSON.stringify([
        null,
        { assignmentId: 'a', key: 'k' },
        { assignmentId: 1, key: 'k', body: {} },
        kept('b', 'key-b'),
      ]),
    );
    expect(readUnsent(list)).toEqual([kept('b', 'key-b')]);
    // Writing over an unreadable list replaces it.
    localStorage.setItem(list, '{not json');
    writeUnsent(list, [kept('c', 'key-c')], ['key-c']);
    expect(readUnsent(list)).toEqual([kept('c', 'key-c')]);
  });

  it('forgets every rater’s lists on signing out, and nothing else', () => {
    writeUnsent(list, [kept('a', 'key-a')], ['key-a']);
    writeUnsent(unsentList('rater-2', 'project-9'), [kept('b', 'key-b')], ['key-b']);
    localStorage.setItem('loom.other', 'kept');
    forgetUnsentJudgments();
    expect(Object.keys(localStorage)).toEqual(['loom.other']);
  });
});
