// @vitest-environment jsdom
// A ranking on the rater's screen: the ranks a sequence of picks makes (web/src/lib/rating/ranking.ts),
// the draft the keys and buttons change (rating/ranking-draft.svelte.ts) and the ranking keys
// (rating/ranking-keys.ts).
import { describe, expect, it } from 'vitest';
import type { LabelSchema } from '$shared/index.js';
import type { KeyPress } from '../../../web/src/lib/rating/keys.js';
import {
  ordinal,
  pickRanks,
  picksFromRanks,
  reorderRanking,
  shownRanks,
} from '../../../web/src/lib/rating/ranking.js';
import { RankingDraft } from '../../../web/src/lib/rating/ranking-draft.svelte.js';
import { rankingKeyAction, type RankingKeyContext } from '../../../web/src/lib/rating/ranking-keys.js';

const schema: LabelSchema = {
  allowTie: true,
  allowBothBad: true,
  strengths: ['Much better', 'Better'],
  criteria: [],
  flags: [{ key: 'unsafe', label: 'Unsafe' }],
};

describe('ranks', () => {
  it('are competition ranks: a tie shares the previous rank and the next rank skips', () => {
    const picks = [
      { index: 1, tied: false },
      { index: 3, tied: true },
      { index: 0, tied: false },
      { index: 2, tied: false },
    ];
    expect(pickRanks(picks)).toEqual([1, 1, 3, 4]);
    expect(shownRanks(picks, 4)).toEqual([3, 1, 4, 1]);
    expect(shownRanks(picks.slice(0, 2), 4)).toEqual([null, 1, null, 1]);
    // A first pick cannot tie with anything.
    expect(pickRanks([{ index: 0, tied: true }])).toEqual([1]);
    expect(pickRanks([0, 1, 2].map((index) => ({ index, tied: true })))).toEqual([1, 1, 1]);
  });

  it('come back as the same picks (ties in the order shown)', () => {
    expect(picksFromRanks([3, 1, 4, 1])).toEqual([
      { index: 1, tied: false },
      { index: 3, tied: true },
      { index: 0, tied: false },
      { index: 2, tied: false },
    ]);
    expect(shownRanks(picksFromRanks([2, 1, 3]), 3)).toEqual([2, 1, 3]);
    // Dense ranks become competition ranks of the same order.
    expect(shownRanks(picksFromRanks([1, 1, 2]), 3)).toEqual([1, 1, 3]);
  });

  it('follow the responses into another order, by their text', () => {
    const a = [{ text: 'x' }, { text: 'y' }, { text: 'z' }];
    const b = [{ text: 'z' }, { text: 'x' }, { text: 'y' }];
    expect(reorderRanking([1, 2, 3], a, b)).toEqual([3, 1, 2]);
    expect(reorderRanking([1, 2, 3], a, [{ text: 'x' }, { text: 'y' }, { text: 'w' }])).toBeNull();
    expect(reorderRanking([1, 2], a, b)).toBeNull();
  });

  it('read as ordinals', () => {
    expect([1, 2, 3, 4, 9].map(ordinal)).toEqual(['1st', '2nd', '3rd', '4th', '9th']);
  });
});

describe('RankingDraft', () => {
  it('ranks by picks, ties the next pick when asked, takes picks back and builds the judgment', () => {
    const draft = new RankingDraft();
    draft.reset(4);
    expect(draft.toggleTie(schema)).toBe(false); // nothing to tie with yet
    expect(draft.place(1)).toBe(true);
    expect(draft.announcement).toBe('Response 2 ranked 1st. 3 left.');
    expect(draft.toggleTie(schema)).toBe(true);
    expect(draft.place(3)).toBe(true);
    expect(draft.announcement).toBe('Response 4 ranked 1st, tied with response 2. 2 left.');
    expect(draft.place(3)).toBe(false); // ranked already
    expect(draft.place(0)).toBe(true);
    expect(draft.ranks).toEqual([3, 1, null, 1]);
    expect(draft.unpick()).toBe(true);
    expect(draft.announcement).toBe('Response 1 is no longer ranked. 2 left.');
    draft.place(2);
    // A tie asked for and taken back by Undo pick.
    draft.toggleTie(schema);
    expect(draft.unpick()).toBe(true);
    expect(draft.tieNext).toBe(false);
    expect(draft.ranks).toEqual([null, 1, 3, 1]);
    // With one left, building ranks it last.
    draft.flags = { unsafe: true };
    draft.rationale = '  clear winner ';
    expect(draft.build(schema, true)).toEqual({
      judgment: { ranking: [4, 1, 3, 1], flags: ['unsafe'], rationale: 'clear winner' },
    });
    expect(draft.left).toBe(0);
  });

  it('asks for more picks while two or more are left, naming keys or taps', () => {
    const draft = new RankingDraft();
    draft.reset(4);
    draft.place(0);
    expect(draft.build(schema, true)).toEqual({
      missing: 'Rank every response first: press their numbers from best to worst (3 left).',
    });
    draft.place(1);
    expect(draft.build(schema, false)).toEqual({
      missing: 'Rank every response first: tap them from best to worst (2 left).',
    });
  });

  it('ties the last one left when a tie was asked for, and never where ties are not allowed', () => {
    const draft = new RankingDraft();
    draft.reset(3);
    draft.place(2);
    draft.place(0);
    draft.toggleTie(schema);
    expect(draft.build(schema, true)).toEqual({ judgment: { ranking: [2, 2, 1] } });
    draft.reset(3);
    draft.place(0);
    expect(draft.toggleTie({ ...schema, allowTie: false })).toBe(false);
  });

  it('brings an undone ranking back, with its flags and rationale', () => {
    const draft = new RankingDraft();
    draft.reset(4, { ranking: [3, 1, 4, 1], flags: ['unsafe'], rationale: 'why' });
    expect(draft.ranks).toEqual([3, 1, 4, 1]);
    expect(draft.picks.map((pick) => pick.tied)).toEqual([false, true, false, false]);
    expect(draft.flags).toEqual({ unsafe: true });
    expect(draft.rationale).toBe('why');
    // A ranking of another size (or none) starts afresh.
    draft.reset(3, { ranking: [3, 1, 4, 1] });
    expect(draft.ranks).toEqual([null, null, null]);
  });
});

describe('rankingKeyAction', () => {
  const context: RankingKeyContext = { dialogOpen: false, ready: true, size: 4, allowTie: true };
  const press = (key: string, more: Partial<KeyPress> = {}): KeyPress => ({
    key,
    ctrl: false,
    alt: false,
    meta: false,
    composing: false,
    handled: false,
    target: 'other',
    ...more,
  });

  it('places by number up to K, ties with =, takes back with Backspace', () => {
    expect(rankingKeyAction(press('1'), context)).toEqual({ kind: 'place', index: 0 });
    expect(rankingKeyAction(press('4'), context)).toEqual({ kind: 'place', index: 3 });
    expect(rankingKeyAction(press('5'), context)).toBeNull();
    expect(rankingKeyAction(press('0'), context)).toBeNull();
    expect(rankingKeyAction(press('9'), { ...context, size: 9 })).toEqual({ kind: 'place', index: 8 });
    expect(rankingKeyAction(press('='), context)).toEqual({ kind: 'tie' });
    expect(rankingKeyAction(press('='), { ...context, allowTie: false })).toBeNull();
    expect(rankingKeyAction(press('Backspace'), context)).toEqual({ kind: 'unpick' });
  });

  it('submits, skips, undoes and opens the guidelines; U works while not ready, the rest does not', () => {
    expect(rankingKeyAction(press('Enter'), context)).toEqual({ kind: 'submit' });
    expect(rankingKeyAction(press('Enter', { target: 'control' }), context)).toBeNull();
    expect(rankingKeyAction(press('s'), context)).toEqual({ kind: 'skip' });
    expect(rankingKeyAction(press('g'), context)).toEqual({ kind: 'guidelines' });
    expect(rankingKeyAction(press('U'), { ...context, ready: false })).toEqual({ kind: 'undo' });
    expect(rankingKeyAction(press('1'), { ...context, ready: false })).toBeNull();
    expect(rankingKeyAction(press('1'), { ...context, dialogOpen: true })).toBeNull();
  });

  it('leaves text fields alone but for Ctrl+Enter in the rationale and Escape', () => {
    expect(rankingKeyAction(press('Backspace', { target: 'textarea' }), context)).toBeNull();
    expect(rankingKeyAction(press('2', { target: 'textarea' }), context)).toBeNull();
    expect(rankingKeyAction(press('Enter', { target: 'textarea', ctrl: true }), context)).toEqual({
      kind: 'submit',
    });
    expect(rankingKeyAction(press('Escape', { target: 'text' }), context)).toEqual({ kind: 'leave-field' });
    expect(rankingKeyAction(press('1', { ctrl: true }), context)).toBeNull();
  });
});
