// The judgment being made on the comparison on screen: the choice, its strength, the criteria, the
// flags and the rationale, as the form and the keys set them, and the judgment they make.
import type { LabelSchema, ShownChoice } from '$shared/index.js';
import { isSide, STRENGTH_KEYS, type Judgment } from '../rating.js';

export class JudgmentDraft {
  choice = $state<ShownChoice | null>(null);
  /** Index into the project's strengths, 0 = strongest. */
  strength = $state<number | null>(null);
  criteria = $state<Record<string, ShownChoice>>({});
  flags = $state<Record<string, boolean>>({});
  rationale = $state('');

  /** A fresh judgment, or (after an undo) the one taken back. */
  reset(restore?: Judgment): void {
    this.choice = restore?.choice ?? null;
    this.strength = restore?.strength ?? null;
    this.criteria = { ...restore?.criteria };
    this.flags = Object.fromEntries((restore?.flags ?? []).map((flag) => [flag, true]));
    this.rationale = restore?.rationale ?? '';
  }

  /** Picks a choice (one the project allows); another side forgets the strength. */
  choose(next: ShownChoice, allowed: readonly ShownChoice[]): boolean {
    if (!allowed.includes(next)) return false;
    if (this.choice !== next) this.strength = null;
    this.choice = next;
    return true;
  }

  /** Whether the choice made asks for a strength in this project. */
  needsStrength(schema: LabelSchema): boolean {
    return isSide(this.choice) && schema.strengths.length > 0;
  }

  /**
   * The judgment, or what is still to choose (`keys`: the message names the keys to press, as on a
   * screen with a keyboard).
   */
  build(schema: LabelSchema, keys: boolean): { judgment: Judgment } | { missing: string } {
    const choice = this.choice;
    if (!choice) {
      return {
        missing: keys
          ? 'Choose first: 1 for A, 2 for B' +
            (schema.allowTie ? ', 3 for a tie' : '') +
            (schema.allowBothBad ? ', 4 if both are bad' : '') +
            '.'
          : 'Choose first: which response is better?',
      };
    }
    const needsStrength = this.needsStrength(schema);
    if (needsStrength && this.strength === null) {
      return {
        missing: keys
          ? `How much better? Press ${STRENGTH_KEYS[0]}–${STRENGTH_KEYS[schema.strengths.length - 1]}.`
          : 'How much better?',
      };
    }
    const judgment: Judgment = { choice };
    if (needsStrength && this.strength !== null) judgment.strength = this.strength;
    const criteria = Object.fromEntries(
      schema.criteria.filter((c) => this.criteria[c.key]).map((c) => [c.key, this.criteria[c.key]!]),
    );
    if (Object.keys(criteria).length > 0) judgment.criteria = criteria;
    const flags = schema.flags.filter((f) => this.flags[f.key]).map((f) => f.key);
    if (flags.length > 0) judgment.flags = flags;
    if (this.rationale.trim()) judgment.rationale = this.rationale.trim();
    return { judgment };
  }
}
