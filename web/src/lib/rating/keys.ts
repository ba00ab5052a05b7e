// The rating screen's keyboard: what a key press does (keyAction, a pure function of the press and
// the screen's state), how a browser event becomes a press (readKey), and RatingKeys, which runs the
// screen's handler for it.
//
// 1-4 choose, 5-0 and - pick the strength, Enter submits, S skips, U undoes, G opens the guidelines.
// In a text field no shortcut works: Ctrl+Enter in the rationale box submits, Escape leaves the field.
import type { ShownChoice } from '$shared/index.js';
import { CHOICE_KEYS, STRENGTH_KEYS } from '../rating.js';

export type KeyAction =
  | { kind: 'submit' }
  | { kind: 'undo' }
  | { kind: 'skip' }
  | { kind: 'guidelines' }
  | { kind: 'choose'; choice: ShownChoice }
  | { kind: 'strength'; level: number }
  | { kind: 'leave-field' };

/**
 * Where a key press was aimed: `textarea` and `text`, places to type (`textarea`: the rationale
 * box); `control`, a link, the guidelines' toggle or a button other than a choice (Enter does what
 * it says there); `other`, anywhere else.
 */
export type KeyTarget = 'textarea' | 'text' | 'control' | 'other';

/** A key press as the shortcuts see it. */
export interface KeyPress {
  key: string;
  ctrl: boolean;
  alt: boolean;
  meta: boolean;
  /** Part of an input method's composition. */
  composing: boolean;
  /** Something handled it already (its default is prevented). */
  handled: boolean;
  target: KeyTarget;
}

/** What the screen shows when the key comes. */
export interface KeyContext {
  /** A dialog is open: the keys are its own. */
  dialogOpen: boolean;
  /** A comparison is on screen and takes a judgment (not loading, not undoing). */
  ready: boolean;
  /** The choices the project allows. */
  choices: readonly ShownChoice[];
  /** How many strength levels the project has. */
  strengths: number;
  /** The choice made is A or B (a side takes a strength). */
  side: boolean;
}

/** What the key does on the rating screen, or null when it is none of the screen's business. */
export function keyAction(press: KeyPress, context: KeyContext): KeyAction | null {
  if (context.dialogOpen || press.handled || press.composing || press.alt || press.meta) return null;
  if (press.target === 'textarea' || press.target === 'text') {
    if (press.key === 'Enter' && press.ctrl && press.target === 'textarea') return { kind: 'submit' };
    if (press.key === 'Escape') return { kind: 'leave-field' };
    return null;
  }
  if (press.ctrl) return null;
  const key = press.key.toLowerCase();
  if (key === 'u') return { kind: 'undo' };
  // Nothing waits for the server here: a judgment is sent in the background.
  if (!context.ready) return null;
  if (key === 'enter') return press.target === 'control' ? null : { kind: 'submit' };
  if (key === 's') return { kind: 'skip' };
  if (key === 'g') return { kind: 'guidelines' };
  const choice = context.choices.find((option) => CHOICE_KEYS[option] === key);
  if (choice) return { kind: 'choose', choice };
  const level = (STRENGTH_KEYS as readonly string[]).indexOf(key);
  if (level >= 0 && level < context.strengths && context.side) return { kind: 'strength', level };
  return null;
}

/** Is the keyboard event aimed at a place where the user types text (no shortcuts there)? */
export function isTypingTarget(target: EventTarget | null): boolean {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable) return true;
  if (target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement) return true;
  if (target instanceof HTMLInputElement) {
    return !['checkbox', 'radio', 'button', 'submit', 'reset', 'range', 'color', 'file'].includes(
      target.type,
    );
  }
  return false;
}

/** Where a browser's key event was aimed, in the terms of keyAction(). */
export function keyTarget(target: EventTarget | null): KeyTarget {
  if (isTypingTarget(target)) return target instanceof HTMLTextAreaElement ? 'textarea' : 'text';
  // A choice button (focused after a click) is not a control: Enter there submits.
  if (target instanceof Element && target.closest('a, summary, button:not(.key-btn)')) return 'control';
  return 'other';
}

export function readKey(event: KeyboardEvent): KeyPress {
  return {
    key: event.key,
    ctrl: event.ctrlKey,
    alt: event.altKey,
    meta: event.metaKey,
    composing: event.isComposing,
    handled: event.defaultPrevented,
    target: keyTarget(event.target),
  };
}

/** What the screen does for each action. */
export interface KeyHandlers {
  submit(): void;
  undo(): void;
  skip(): void;
  toggleGuidelines(): void;
  choose(choice: ShownChoice): void;
  strength(level: number): void;
  /** After the field the key came from lost the focus. */
  leftField(): void;
}

/** The screen's key handler: `<svelte:window onkeydown={keys.onkeydown} />`. */
export class RatingKeys {
  constructor(
    private readonly context: () => KeyContext,
    private readonly handlers: KeyHandlers,
  ) {}

  onkeydown = (event: KeyboardEvent): void => {
    const action = keyAction(readKey(event), this.context());
    if (!action) return;
    // G and Escape leave the key to the browser too; the others are the screen's alone.
    if (action.kind !== 'guidelines' && action.kind !== 'leave-field') event.preventDefault();
    switch (action.kind) {
      case 'submit':
        return this.handlers.submit();
      case 'undo':
        return this.handlers.undo();
      case 'skip':
        return this.handlers.skip();
      case 'guidelines':
        return this.handlers.toggleGuidelines();
      case 'choose':
        return this.handlers.choose(action.choice);
      case 'strength':
        return this.handlers.strength(action.level);
      case 'leave-field':
        if (event.target instanceof HTMLElement) event.target.blur();
        return this.handlers.leftField();
    }
  };
}
