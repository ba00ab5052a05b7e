// @vitest-environment jsdom
// The rating screen's keyboard (web/src/lib/rating/keys.ts): what each key does in which state, no
// shortcut while typing, and which keys the browser keeps.
import { describe, expect, it } from 'vitest';
import {
  isTypingTarget,
  keyAction,
  keyTarget,
  RatingKeys,
  type KeyContext,
  type KeyPress,
} from '../../../web/src/lib/rating/keys.js';

const context: KeyContext = {
  dialogOpen: false,
  ready: true,
  choices: ['LEFT', 'RIGHT', 'TIE', 'BOTH_BAD'],
  strengths: 4,
  side: true,
};

function press(key: string, more: Partial<KeyPress> = {}): KeyPress {
  return {
    key,
    ctrl: false,
    alt: false,
    meta: false,
    composing: false,
    handled: false,
    target: 'other',
    ...more,
  };
}

describe('keyAction', () => {
  it('maps the choice keys to the choices the project allows', () => {
    expect(keyAction(press('1'), context)).toEqual({ kind: 'choose', choice: 'LEFT' });
    expect(keyAction(press('2'), context)).toEqual({ kind: 'choose', choice: 'RIGHT' });
    expect(keyAction(press('3'), context)).toEqual({ kind: 'choose', choice: 'TIE' });
    expect(keyAction(press('4'), context)).toEqual({ kind: 'choose', choice: 'BOTH_BAD' });
    const noTie = { ...context, choices: ['LEFT', 'RIGHT', 'BOTH_BAD'] as const };
    expect(keyAction(press('3'), noTie)).toBeNull();
    expect(keyAction(press('4'), noTie)).toEqual({ kind: 'choose', choice: 'BOTH_BAD' });
  });

  it('takes a strength key only after a side, and only as many levels as the project has', () => {
    expect(keyAction(press('5'), context)).toEqual({ kind: 'strength', level: 0 });
    expect(keyAction(press('8'), context)).toEqual({ kind: 'strength', level: 3 });
    expect(keyAction(press('9'), context)).toBeNull();
    expect(keyAction(press('-'), { ...context, strengths: 7 })).toEqual({ kind: 'strength', level: 6 });
    expect(keyAction(press('5'), { ...context, side: false })).toBeNull();
    expect(keyAction(press('5'), { ...context, strengths: 0 })).toBeNull();
  });

  it('submits, skips, undoes and toggles the guidelines, in either case', () => {
    expect(keyAction(press('Enter'), context)).toEqual({ kind: 'submit' });
    expect(keyAction(press('s'), context)).toEqual({ kind: 'skip' });
    expect(keyAction(press('S'), context)).toEqual({ kind: 'skip' });
    expect(keyAction(press('U'), context)).toEqual({ kind: 'undo' });
    expect(keyAction(press('g'), context)).toEqual({ kind: 'guidelines' });
    expect(keyAction(press('x'), context)).toBeNull();
  });

  it('leaves Enter to a link, the guidelines toggle or another button', () => {
    expect(keyAction(press('Enter', { target: 'control' }), context)).toBeNull();
  });

  it('only undoes while no comparison takes a judgment (loading, done, undoing)', () => {
    const waiting = { ...context, ready: false };
    expect(keyAction(press('u'), waiting)).toEqual({ kind: 'undo' });
    for (const key of ['Enter', 's', 'g', '1', '5']) expect(keyAction(press(key), waiting)).toBeNull();
  });

  it('does nothing while a dialog is open, with Alt, Meta or Ctrl, while composing, or once handled', () => {
    for (const key of ['1', 'u', 'Enter']) {
      expect(keyAction(press(key), { ...context, dialogOpen: true })).toBeNull();
      expect(keyAction(press(key, { alt: true }), context)).toBeNull();
      expect(keyAction(press(key, { meta: true }), context)).toBeNull();
      expect(keyAction(press(key, { ctrl: true }), context)).toBeNull();
      expect(keyAction(press(key, { composing: true }), context)).toBeNull();
      expect(keyAction(press(key, { handled: true }), context)).toBeNull();
    }
  });

  it('types in text fields; Ctrl+Enter in the rationale box submits and Escape leaves a field', () => {
    for (const target of ['text', 'textarea'] as const) {
      for (const key of ['1', '5', 'u', 's', 'g', 'Enter'])
        expect(keyAction(press(key, { target }), context)).toBeNull();
      expect(keyAction(press('Escape', { target }), context)).toEqual({ kind: 'leave-field' });
    }
    expect(keyAction(press('Enter', { target: 'textarea', ctrl: true }), context)).toEqual({
      kind: 'submit',
    });
    expect(keyAction(press('Enter', { target: 'text', ctrl: true }), context)).toBeNull();
  });
});

describe('keyTarget', () => {
  function element(html: string, selector: string): Element {
    const root = document.createElement('div');
    root.innerHTML = html;
    document.body.replaceChildren(root);
    return root.querySelector(selector)!;
  }

  it('tells places to type from controls and the rest', () => {
    expect(keyTarget(element('<textarea></textarea>', 'textarea'))).toBe('textarea');
    expect(keyTarget(element('<input type="text">', 'input'))).toBe('text');
    expect(keyTarget(element('<select></select>', 'select'))).toBe('text');
    expect(keyTarget(element('<input type="radio">', 'input'))).toBe('other');
    expect(keyTarget(element('<input type="checkbox">', 'input'))).toBe('other');
    expect(keyTarget(element('<a href="/rate"><span>Projects</span></a>', 'span'))).toBe('control');
    expect(keyTarget(element('<details><summary>Guidelines</summary></details>', 'summary'))).toBe('control');
    expect(keyTarget(element('<button class="btn">Skip</button>', 'button'))).toBe('control');
    expect(keyTarget(element('<button class="key-btn"><kbd>1</kbd> A</button>', 'kbd'))).toBe('other');
    expect(keyTarget(element('<section tabindex="-1"></section>', 'section'))).toBe('other');
    expect(keyTarget(null)).toBe('other');
  });

  it('counts text inputs as places to type, not buttons', () => {
    expect(isTypingTarget(element('<input type="submit">', 'input'))).toBe(false);
    expect(isTypingTarget(element('<input type="search">', 'input'))).toBe(true);
    expect(isTypingTarget(element('<input>', 'input'))).toBe(true);
  });
});

describe('RatingKeys', () => {
  function setup(state: Partial<KeyContext> = {}) {
    const calls: unknown[][] = [];
    const keys = new RatingKeys(() => ({ ...context, ...state }), {
      submit: () => calls.push(['submit']),
      undo: () => calls.push(['undo']),
      skip: () => calls.push(['skip']),
      toggleGuidelines: () => calls.push(['guidelines']),
      choose: (choice) => calls.push(['choose', choice]),
      strength: (level) => calls.push(['strength', level]),
      leftField: () => calls.push(['leftField']),
    });
    window.addEventListener('keydown', keys.onkeydown);
    const dispose = () => window.removeEventListener('keydown', keys.onkeydown);
    return { calls, dispose };
  }

  function send(target: Element, key: string, init: KeyboardEventInit = {}): KeyboardEvent {
    const event = new KeyboardEvent('keydown', { key, bubbles: true, cancelable: true, ...init });
    target.dispatchEvent(event);
    return event;
  }

  it('runs the handler for a key from anywhere on the page and takes the key from the browser', () => {
    const { calls, dispose } = setup();
    document.body.innerHTML = '<section tabindex="-1"></section>';
    const stage = document.querySelector('section')!;
    expect(send(stage, '2').defaultPrevented).toBe(true);
    expect(send(stage, '6').defaultPrevented).toBe(true);
    expect(send(stage, 'Enter').defaultPrevented).toBe(true);
    // G opens the guidelines and leaves the key to the browser too.
    expect(send(stage, 'g').defaultPrevented).toBe(false);
    // Not a shortcut: untouched.
    expect(send(stage, 'x').defaultPrevented).toBe(false);
    expect(calls).toEqual([['choose', 'RIGHT'], ['strength', 1], ['submit'], ['guidelines']]);
    dispose();
  });

  it('leaves the rationale box on Escape and submits from it on Ctrl+Enter', () => {
    const { calls, dispose } = setup();
    document.body.innerHTML = '<textarea></textarea>';
    const box = document.querySelector('textarea')!;
    box.focus();
    expect(document.activeElement).toBe(box);
    expect(send(box, '1').defaultPrevented).toBe(false);
    expect(send(box, 'Enter', { ctrlKey: true }).defaultPrevented).toBe(true);
    expect(send(box, 'Escape').defaultPrevented).toBe(false);
    expect(document.activeElement).not.toBe(box);
    expect(calls).toEqual([['submit'], ['leftField']]);
    dispose();
  });

  it('lets Enter on a button do what the button says, but submits from a choice button', () => {
    const { calls, dispose } = setup();
    document.body.innerHTML = '<button class="btn">Cancel</button><button class="key-btn">A</button>';
    const [other, choice] = [...document.querySelectorAll('button')];
    expect(send(other!, 'Enter').defaultPrevented).toBe(false);
    expect(send(choice!, 'Enter').defaultPrevented).toBe(true);
    expect(calls).toEqual([['submit']]);
    dispose();
  });

  it('ignores every key while the skip dialog is open', () => {
    const { calls, dispose } = setup({ dialogOpen: true });
    document.body.innerHTML = '<section></section>';
    const stage = document.querySelector('section')!;
    for (const key of ['1', 'u', 'Enter', 's']) expect(send(stage, key).defaultPrevented).toBe(false);
    expect(calls).toEqual([]);
    dispose();
  });
});
