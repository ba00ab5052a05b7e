// Pure helpers of the rater's screen: the choice and strength keys, idempotency keys and the judgment
// body. The keyboard itself: rating/keys.ts.
import type { LabelSchema, ShownChoice, SubmitBody } from '$shared/index.js';

/** Keys for the main choice. */
export const CHOICE_KEYS: Record<ShownChoice, string> = { LEFT: '1', RIGHT: '2', TIE: '3', BOTH_BAD: '4' };

/** Keys for the strength levels, strongest first (the scale has at most 7 levels). */
export const STRENGTH_KEYS = ['5', '6', '7', '8', '9', '0', '-'] as const;

/** The choices a project allows, in key order. */
export function allowedChoices(schema: LabelSchema): ShownChoice[] {
  const choices: ShownChoice[] = ['LEFT', 'RIGHT'];
  if (schema.allowTie) choices.push('TIE');
  if (schema.allowBothBad) choices.push('BOTH_BAD');
  return choices;
}

export function isSide(choice: ShownChoice | null): choice is 'LEFT' | 'RIGHT' {
  return choice === 'LEFT' || choice === 'RIGHT';
}

/** A fresh Idempotency-Key; crypto.randomUUID needs a secure context, so fall back to getRandomValues. */
export function newIdempotencyKey(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * What the rater decided (the request adds the time spent and may ask for the next comparison). A
 * judgment keeps its Idempotency-Key for every retry (see rating-session.svelte.ts).
 */
export type Judgment = Omit<SubmitBody, 'timeSpentMs' | 'next'>;
