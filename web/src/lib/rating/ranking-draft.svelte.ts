// The ranking being made of the responses on screen (a ranking item): the picks, best first, a tie
// waiting for the next pick, the flags and the rationale, as the keys and the buttons set them; what
// the screen reader is told after each; and the judgment they make (the rank of each response in
// the order shown). The pure part is rating/ranking.ts.
import type { LabelSchema } from '$shared/index.js';
import type { Judgment } from '../rating.js';
import { ordinal, picksFromRanks, shownRanks, type Pick } from './ranking.js';

export class RankingDraft {
  /** How many responses are shown. */
  size = $state(0);
  /** Best first. */
  picks = $state<Pick[]>([]);
  /** The next pick shares the previous pick's rank. */
  tieNext = $state(false);
  flags = $state<Record<string, boolean>>({});
  rationale = $state('');
  /** The last change, in words, for the live region. */
  announcement = $state('');

  /** Each shown response's rank (null: not picked yet). */
  readonly ranks = $derived(shownRanks(this.picks, this.size));
  readonly left = $derived(this.size - this.picks.length);

  /** A fresh ranking of `size` responses, or (after an undo) the one taken back. */
  reset(size: number, restore?: Judgment): void {
    this.size = size;
    const ranking = restore?.ranking;
    this.picks = ranking && ranking.length === size ? picksFromRanks(ranking) : [];
    this.tieNext = false;
    this.flags = Object.fromEntries((restore?.flags ?? []).map((flag) => [flag, true]));
    this.rationale = restore?.rationale ?? '';
    this.announcement = '';
  }

  /** Whether "tie with the previous" can be asked for now. */
  canTie(schema: LabelSchema): boolean {
    return schema.allowTie && this.picks.length > 0 && this.left > 0;
  }

  /** Ranks the response shown at `index` (0-based) next; false when it is ranked already. */
  place(index: number): boolean {
    if (index < 0 || index >= this.size) return false;
    const rank = this.ranks[index];
    if (rank != null) {
      this.announcement = `Response ${index + 1} is ranked ${ordinal(rank)} already. Undo pick takes back the last pick.`;
      return false;
    }
    const previous = this.picks.at(-1);
    const tied = this.tieNext && previous !== undefined;
    this.picks = [...this.picks, { index, tied }];
    this.tieNext = false;
    const placed = this.ranks[index]!;
    this.announcement =
      `Response ${index + 1} ranked ${ordinal(placed)}` +
      (tied && previous ? `, tied with response ${previous.index + 1}` : '') +
      (this.left === 0 ? '. All ranked: submit when ready.' : `. ${this.left} left.`);
    return true;
  }

  /** Asks for (or cancels) a tie of the next pick with the previous one. */
  toggleTie(schema: LabelSchema): boolean {
    if (!this.canTie(schema)) return false;
    this.tieNext = !this.tieNext;
    const previous = this.picks.at(-1)!;
    this.announcement = this.tieNext
      ? `The next response you pick ties with response ${previous.index + 1}.`
      : 'Tie cancelled.';
    return true;
  }

  /** Takes back the last pick (or the tie asked for after it). */
  unpick(): boolean {
    if (this.tieNext) {
      this.tieNext = false;
      this.announcement = 'Tie cancelled.';
      return true;
    }
    const last = this.picks.at(-1);
    if (!last) {
      this.announcement = 'Nothing picked yet.';
      return false;
    }
    this.picks = this.picks.slice(0, -1);
    this.announcement = `Response ${last.index + 1} is no longer ranked. ${this.left} left.`;
    return true;
  }

  /**
   * The judgment, or what is still to do (`keys`: the message names the keys, as on a screen with a
   * keyboard). With one response left it goes last (tied with the one before, if a tie was asked).
   */
  build(schema: LabelSchema, keys: boolean): { judgment: Judgment } | { missing: string } {
    if (this.left > 1) {
      return {
        missing: keys
          ? `Rank every response first: press their numbers from best to worst (${this.left} left).`
          : `Rank every response first: tap them from best to worst (${this.left} left).`,
      };
    }
    if (this.left === 1) {
      const index = this.ranks.findIndex((rank) => rank === null);
      this.place(index);
    }
    const judgment: Judgment = { ranking: this.ranks.map((rank) => rank!) };
    const flags = schema.flags.filter((f) => this.flags[f.key]).map((f) => f.key);
    if (flags.length > 0) judgment.flags = flags;
    if (this.rationale.trim()) judgment.rationale = this.rationale.trim();
    return { judgment };
  }
}
