// The rating screen's keyboard for a ranking item (a pair's keys are rating/keys.ts, whose reading of
// a browser's key event this shares): 1–K rank the response with that number next, = ties the next
// pick with the previous one (where the project allows ties), Backspace takes the last pick back,
// Enter submits, S skips, U undoes the last submission, G opens the guidelines. In a text field no
// shortcut works: Ctrl+Enter in the rationale box submits, Escape leaves the field.
import { readKey, type KeyPress } from './keys.js';

export type RankingKeyAction =
  | { kind: 'place'; index: number }
  | { kind: 'tie' }
  | { kind: 'unpick' }
  | { kind: 'submit' }
  | { kind: 'undo' }
  | { kind: 'skip' }
  | { kind: 'guidelines' }
  | { kind: 'leave-field' };

/** What the screen shows when the key comes. */
export interface RankingKeyContext {
  /** A dialog is open: the keys are its own. */
  dialogOpen: boolean;
  /** A ranking item is on screen and takes a judgment (not loading, not undoing). */
  ready: boolean;
  /** How many responses are shown. */
  size: number;
  /** The project allows ties. */
  allowTie: boolean;
}

/** The key that asks for a tie with the previous pick. */
export const TIE_KEY = '=';

/** What the key does on a ranking item, or null when it is none of the screen's business. */
export function rankingKeyAction(press: KeyPress, context: RankingKeyContext): RankingKeyAction | null {
  if (context.dialogOpen || press.handled || press.composing || press.alt || press.meta) return null;
  if (press.target === 'textarea' || press.target === 'text') {
    if (press.key === 'Enter' && press.ctrl && press.target === 'textarea') return { kind: 'submit' };
    if (press.key === 'Escape') return { kind: 'leave-field' };
    return null;
  }
  if (press.ctrl) return null;
  const key = press.key.toLowerCase();
  if (key === 'u') return { kind: 'undo' };
  if (!context.ready) return null;
  if (key === 'enter') return press.target === 'control' ? null : { kind: 'submit' };
  if (key === 's') return { kind: 'skip' };
  if (key === 'g') return { kind: 'guidelines' };
  if (key === 'backspace') return { kind: 'unpick' };
  if (key === TIE_KEY) return context.allowTie ? { kind: 'tie' } : null;
  if (/^[1-9]$/.test(key) && Number(key) <= context.size) return { kind: 'place', index: Number(key) - 1 };
  return null;
}

/** What the screen does for each action. */
export interface RankingKeyHandlers {
  place(index: number): void;
  tie(): void;
  unpick(): void;
  submit(): void;
  undo(): void;
  skip(): void;
  toggleGuidelines(): void;
  /** After the field the key came from lost the focus. */
  leftField(): void;
}

/** The key handler while a ranking item is on screen (the page picks it or the pair's). */
export class RankingKeys {
  constructor(
    private readonly context: () => RankingKeyContext,
    private readonly handlers: RankingKeyHandlers,
  ) {}

  onkeydown = (event: KeyboardEvent): void => {
    const action = rankingKeyAction(readKey(event), this.context());
    if (!action) return;
    // G and Escape leave the key to the browser too; the others are the screen's alone (Backspace
    // would otherwise go back a page in some browsers).
    if (action.kind !== 'guidelines' && action.kind !== 'leave-field') event.preventDefault();
    switch (action.kind) {
      case 'place':
        return this.handlers.place(action.index);
      case 'tie':
        return this.handlers.tie();
      case 'unpick':
        return this.handlers.unpick();
      case 'submit':
        return this.handlers.submit();
      case 'undo':
        return this.handlers.undo();
      case 'skip':
        return this.handlers.skip();
      case 'guidelines':
        return this.handlers.toggleGuidelines();
      case 'leave-field':
        if (event.target instanceof HTMLElement) event.target.blur();
        return this.handlers.leftField();
    }
  };
}
