// The shapes preference data takes in the tools researchers train with (TRL, HH-RLHF, OpenRLHF,
// CSV): pure functions from judgments to rows and back, shared by exports and imports.
import type { Choice } from '../db/client.js';
import type { ExportFormat, ExportOptions } from '../schemas/datasets.js';

export interface Message {
  role: string;
  content: string;
}

/** One preference pair as training tools see it. */
export interface Pair {
  messages: Message[];
  chosen: string;
  rejected: string;
  /** TRL's margin (larger = clearer preference), or null when unknown. */
  margin: number | null;
}

// --- Strength and margin --------------------------------------------------------------------

/**
 * A judgment's strength is an index into the project's scale, strongest first. Llama 2's margin
 * loss gives the strongest level the largest margin: with 4 levels, indexes 0..3 -> 3, 2, 1, 0.
 */
export function marginOf(strength: number | null, levels: number): number | null {
  if (strength === null || levels <= 0 || strength < 0 || strength >= levels) return null;
  return levels - 1 - strength;
}

/** The inverse of marginOf for imports: a margin outside the scale has no strength. */
export function strengthOf(margin: unknown, levels: number): number | null {
  if (typeof margin !== 'number' || !Number.isInteger(margin) || levels <= 0) return null;
  const strength = levels - 1 - margin;
  return strength >= 0 && strength < levels ? strength : null;
}

// --- HH-RLHF transcripts ----------------------------------------------------------------------

const HUMAN = '\n\nHuman: ';
const ASSISTANT = '\n\nAssistant: ';

/**
 * Messages as an HH-RLHF transcript: "\n\nHuman: ..." and "\n\nAssistant: ..." turns. A system
 * message has no HH turn; it is written as leading text before the first turn (and read back so).
 */
export function transcriptOf(messages: readonly Message[]): string {
  let text = '';
  for (const message of messages) {
    if (message.role === 'system') text += message.content;
    else text += (message.role === 'assistant' ? ASSISTANT : HUMAN) + message.content;
  }
  return text;
}

/** An HH row's full text for one response. */
export function hhText(messages: readonly Message[], response: string): string {
  return transcriptOf(messages) + ASSISTANT + response;
}

/** Splits a transcript prefix ("\n\nHuman: a\n\nAssistant: b\n\nHuman: c") into messages. */
export function messagesOfTranscript(text: string): Message[] {
  const messages: Message[] = [];
  const turn = /\n\n(Human|Assistant):[ ]?/g;
  let last = 0;
  let role: string | null = null;
  for (let match = turn.exec(text); match; match = turn.exec(text)) {
    const content = text.slice(last, match.index);
    if (role === null) {
      if (content !== '') messages.push({ role: 'system', content });
    } else messages.push({ role, content });
    role = match[1] === 'Human' ? 'user' : 'assistant';
    last = turn.lastIndex;
  }
  const rest = text.slice(last);
  if (role === null) {
    if (rest !== '') messages.push({ role: 'user', content: rest });
  } else messages.push({ role, content: rest });
  return messages;
}

/**
 * An HH-RLHF pair as (prompt, chosen, rejected): the prompt runs to the last "\n\nAssistant:" that
 * both transcripts share, so a response that itself invents "\n\nHuman:" or "\n\nAssistant:"
 * turns (a few HH rows do) stays one response; the space after the colon is not part of it.
 */
export function splitHhPair(
  chosen: string,
  rejected: string,
): { prompt: string; chosen: string; rejected: string } | null {
  const marker = '\n\nAssistant:';
  let common = 0;
  const shorter = Math.min(chosen.length, rejected.length);
  while (common < shorter && chosen.charCodeAt(common) === rejected.charCodeAt(common)) common++;
  const at = chosen.lastIndexOf(marker, common - marker.length);
  if (at < 0 || common < marker.length) return null;
  const rest = (text: string) => {
    const response = text.slice(at + marker.length);
    return response.startsWith(' ') ? response.slice(1) : response;
  };
  return { prompt: chosen.slice(0, at), chosen: rest(chosen), rejected: rest(rejected) };
}

// --- TRL -------------------------------------------------------------------------------------

/**
 * The prompt of the string formats (TRL standard, OpenRLHF strings): the conversation as an HH
 * transcript ending in "\n\nAssistant:". Training tools tokenize `prompt + completion` exactly as
 * given, so each completion starts with the separator (`COMPLETION_SEPARATOR`), as in TRL's own
 * examples ("The sky is" + " blue."): prompt + chosen is then the HH transcript of the answer.
 * Encoding 1 (snapshots made before) wrote a single user turn as its bare text and no separator.
 */
export function promptText(messages: readonly Message[], encoding = 2): string {
  if (encoding < 2 && messages.length === 1 && messages[0]!.role === 'user') return messages[0]!.content;
  return transcriptOf(messages) + '\n\nAssistant:';
}

/** What starts every completion of the string formats (encoding 2 on). */
export const COMPLETION_SEPARATOR = ' ';

/** A response as the completion of a string-format row. */
export function completionText(response: string, encoding = 2): string {
  return encoding < 2 ? response : COMPLETION_SEPARATOR + response;
}

function sameItem(a: unknown, b: unknown): boolean {
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Python's seq[:i] and seq[i:] for a possibly negative i. */
function pySliceIndex(length: number, index: number): number {
  return index < 0 ? Math.max(0, length + index) : Math.min(index, length);
}

/**
 * TRL's `extract_prompt` (trl/data_utils.py), line for line: walk both sequences (characters or
 * messages) to the first difference; if the item before it is a space, the space goes to the
 * completions. Python's quirks are kept: when one sequence is a prefix of the other the loop ends
 * on its last index without `break`, and index -1 means "the last item".
 */
export function extractPromptTrl<T extends string | readonly unknown[]>(
  chosen: T,
  rejected: T,
): { prompt: T; chosen: T; rejected: T } {
  const shorter = Math.min(chosen.length, rejected.length);
  if (shorter === 0) throw new Error('chosen and rejected must be non-empty to extract a prompt');
  let idx: number;
  for (idx = 0; idx < shorter; idx++) {
    if (!sameItem(chosen[idx], rejected[idx])) {
      const before = idx - 1 < 0 ? chosen[chosen.length - 1] : chosen[idx - 1];
      if (before === ' ') idx -= 1;
      break;
    }
  }
  if (idx === shorter) idx = shorter - 1; // Python's loop variable keeps its last value.
  const cut = (sequence: T, from: number | null, to: number | null): T => {
    const start = from === null ? 0 : pySliceIndex(sequence.length, from);
    const end = to === null ? sequence.length : pySliceIndex(sequence.length, to);
    return sequence.slice(start, Math.max(start, end)) as T;
  };
  return {
    prompt: cut(chosen, null, idx),
    chosen: cut(chosen, idx, null),
    rejected: cut(rejected, idx, null),
  };
}

// --- Rows of each format -----------------------------------------------------------------------

/**
 * The JSON object one pair becomes in a pairwise format (trl, trl-conversational, hh, openrlhf).
 * In string formats prompt + chosen is the whole text a trainer reads: the HH transcript.
 */
export function pairRow(
  format: ExportFormat,
  pair: Pair,
  options: ExportOptions,
  encoding = 2,
): Record<string, unknown> {
  const margin = options.margin ? { margin: pair.margin ?? 0 } : {};
  const implicit = options.prompt === 'implicit';
  switch (format) {
    case 'trl': {
      const prompt = promptText(pair.messages, encoding);
      // TRL's own convention ("The sky is" + " blue."): the space belongs to the completion.
      if (implicit)
        return { chosen: `${prompt} ${pair.chosen}`, rejected: `${prompt} ${pair.rejected}`, ...margin };
      const chosen = completionText(pair.chosen, encoding);
      return { prompt, chosen, rejected: completionText(pair.rejected, encoding), ...margin };
    }
    case 'trl-conversational': {
      const chosen = [{ role: 'assistant', content: pair.chosen }];
      const rejected = [{ role: 'assistant', content: pair.rejected }];
      if (implicit)
        return {
          chosen: [...pair.messages, ...chosen],
          rejected: [...pair.messages, ...rejected],
          ...margin,
        };
      return { prompt: pair.messages, chosen, rejected, ...margin };
    }
    case 'hh':
      return { chosen: hhText(pair.messages, pair.chosen), rejected: hhText(pair.messages, pair.rejected) };
    case 'openrlhf': {
      const conversational = options.conversational ?? false;
      return {
        // OpenRLHF's string mode concatenates prompt and completion too.
        [options.promptKey ?? 'prompt']: conversational ? pair.messages : promptText(pair.messages, encoding),
        [options.chosenKey ?? 'chosen']: conversational
          ? [{ role: 'assistant', content: pair.chosen }]
          : completionText(pair.chosen, encoding),
        [options.rejectedKey ?? 'rejected']: conversational
          ? [{ role: 'assistant', content: pair.rejected }]
          : completionText(pair.rejected, encoding),
        ...margin,
      };
    }
    default:
      throw new Error(`${format} is not a pairwise format`);
  }
}

/** The pair a judgment states, or null for ties and both-bad (they have no chosen response). */
export function pairOfChoice(
  choice: Choice | null,
  messages: Message[],
  responseA: string,
  responseB: string,
  margin: number | null,
): Pair | null {
  if (choice === 'A') return { messages, chosen: responseA, rejected: responseB, margin };
  if (choice === 'B') return { messages, chosen: responseB, rejected: responseA, margin };
  return null;
}

/**
 * One CSV field (RFC 4180): quoted when it holds a comma, quote or line break. Spreadsheet-safe
 * fields that a spreadsheet would read as a formula (leading =, +, -, @, tab, CR) start with "'".
 */
export function csvField(value: unknown, spreadsheetSafe = false): string {
  if (value === null || value === undefined) return '';
  let text =
    typeof value === 'string'
      ? value
      : value instanceof Date
        ? value.toISOString()
        : typeof value === 'object'
          ? JSON.stringify(value)
          : String(value);
  if (spreadsheetSafe && typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function csvLine(values: readonly unknown[]): string {
  return values.map((value) => csvField(value)).join(',') + '\r\n';
}
