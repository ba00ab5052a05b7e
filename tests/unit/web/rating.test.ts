// The rater's screen's pure helpers (web/src/lib/rating.ts) and the judgment being made
// (web/src/lib/rating/judgment-draft.svelte.ts): the choices a project allows, idempotency keys, and
// the judgment a draft makes or what it still lacks.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { LabelSchema } from '$shared/index.js';
import { allowedChoices, isSide, newIdempotencyKey } from '../../../web/src/lib/rating.js';
import { JudgmentDraft } from '../../../web/src/lib/rating/judgment-draft.svelte.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const schema: LabelSchema = {
  allowTie: true,
  allowBothBad: false,
  strengths: ['Much better', 'Better', 'Slightly better'],
  criteria: [
    { key: 'honest', label: 'Honesty' },
    { key: 'clear', label: 'Clarity' },
  ],
  flags: [
    { key: 'unsafe', label: 'Unsafe' },
    { key: 'wrong', label: 'Factually wrong' },
  ],
};

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('allowedChoices and isSide', () => {
  it('lists the choices a project allows, in key order', () => {
    expect(allowedChoices(schema)).toEqual(['LEFT', 'RIGHT', 'TIE']);
    expect(allowedChoices({ ...schema, allowTie: false, allowBothBad: true })).toEqual([
      'LEFT',
      'RIGHT',
      'BOTH_BAD',
    ]);
    expect(allowedChoices({ ...schema, allowTie: false })).toEqual(['LEFT', 'RIGHT']);
  });

  it('counts A and B as sides, not a tie, both bad or nothing', () => {
    expect([isSide('LEFT'), isSide('RIGHT'), isSide('TIE'), isSide('BOTH_BAD'), isSide(null)]).toEqual([
      true,
      true,
      false,
      false,
      false,
    ]);
  });
});

describe('newIdempotencyKey', () => {
  it('makes a fresh version-4 UUID each time', () => {
    const keys = Array.from({ length: 50 }, () => newIdempotencyKey());
    for (const key of keys) expect(key).toMatch(UUID_V4);
    expect(new Set(keys).size).toBe(50);
  });

  it('makes one from random bytes where randomUUID is missing (no secure context)', () => {
    const getRandomValues = crypto.getRandomValues.bind(crypto);
    vi.stubGlobal('crypto', { getRandomValues });
    const keys = Array.from({ length: 50 }, () => newIdempotencyKey());
    for (const key of keys) expect(key).toMatch(UUID_V4);
    expect(new Set(keys).size).toBe(50);
  });
});

describe('JudgmentDraft', () => {
  it('asks for a choice first, naming the keys where there is a keyboard', () => {
    const draft = new JudgmentDraft();
    expect(draft.build(schema, true)).toEqual({ missing: 'Choose first: 1 for A, 2 for B, 3 for a tie.' });
    expect(draft.build({ ...schema, allowTie: false, allowBothBad: true }, true)).toEqual({
      missing: 'Choose first: 1 for A, 2 for B, 4 if both are bad.',
    });
    expect(draft.build(schema, false)).toEqual({ missing: 'Choose first: which response is better?' });
  });

  it('asks how much better after a side, with the keys of the project’s levels', () => {
    const draft = new JudgmentDraft();
    expect(draft.choose('LEFT', allowedChoices(schema))).toBe(true);
    expect(draft.needsStrength(schema)).toBe(true);
    expect(draft.build(schema, true)).toEqual({ missing: 'How much better? Press 5–7.' });
    expect(draft.build(schema, false)).toEqual({ missing: 'How much better?' });
    draft.strength = 2;
    expect(draft.build(schema, true)).toEqual({ judgment: { choice: 'LEFT', strength: 2 } });
  });

  it('asks no strength for a tie, nor where the project has no scale', () => {
    const draft = new JudgmentDraft();
    draft.choose('TIE', allowedChoices(schema));
    expect(draft.needsStrength(schema)).toBe(false);
    expect(draft.build(schema, true)).toEqual({ judgment: { choice: 'TIE' } });
    draft.choose('RIGHT', allowedChoices(schema));
    expect(draft.build({ ...schema, strengths: [] }, true)).toEqual({ judgment: { choice: 'RIGHT' } });
  });

  it('refuses a choice the project does not allow, and forgets the strength when the side changes', () => {
    const draft = new JudgmentDraft();
    draft.choose('LEFT', allowedChoices(schema));
    draft.strength = 0;
    expect(draft.choose('BOTH_BAD', allowedChoices(schema))).toBe(false);
    expect([draft.choice, draft.strength]).toEqual(['LEFT', 0]);
    draft.choose('LEFT', allowedChoices(schema));
    expect(draft.strength).toBe(0);
    draft.choose('RIGHT', allowedChoices(schema));
    expect([draft.choice, draft.strength]).toEqual(['RIGHT', null]);
  });

  it('sends the criteria and flags set, in the schema’s order, and a trimmed rationale', () => {
    const draft = new JudgmentDraft();
    draft.choose('RIGHT', allowedChoices(schema));
    draft.strength = 1;
    draft.criteria.clear = 'TIE';
    draft.criteria.honest = 'LEFT';
    draft.criteria.unknown = 'RIGHT';
    draft.flags.wrong = true;
    draft.flags.unsafe = false;
    draft.rationale = '  B answers the question.  ';
    expect(draft.build(schema, true)).toEqual({
      judgment: {
        choice: 'RIGHT',
        strength: 1,
        criteria: { honest: 'LEFT', clear: 'TIE' },
        flags: ['wrong'],
        rationale: 'B answers the question.',
      },
    });
    expect(
      Object.keys((draft.build(schema, true) as { judgment: { criteria: object } }).judgment.criteria),
    ).toEqual(['honest', 'clear']);
    draft.rationale = '   ';
    expect(draft.build(schema, true)).not.toHaveProperty('judgment.rationale');
  });

  it('starts fresh, or from a judgment taken back', () => {
    const draft = new JudgmentDraft();
    draft.reset({
      choice: 'LEFT',
      strength: 0,
      criteria: { honest: 'RIGHT' },
      flags: ['unsafe'],
      rationale: 'A is shorter',
    });
    expect(draft.build(schema, true)).toEqual({
      judgment: {
        choice: 'LEFT',
        strength: 0,
        criteria: { honest: 'RIGHT' },
        flags: ['unsafe'],
        rationale: 'A is shorter',
      },
    });
    draft.reset();
    expect([draft.choice, draft.strength, draft.criteria, draft.flags, draft.rationale]).toEqual([
      null,
      null,
      {},
      {},
      '',
    ]);
  });
});
