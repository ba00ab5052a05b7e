// Text PostgreSQL cannot store: a NUL character (text and jsonb cannot hold U+0000), a lone
// surrogate (not Unicode; the driver would silently store U+FFFD in text, and jsonb refuses it), and
// JSON nested deeper than any route takes (a stack overflow in the database's jsonb parser). The API
// checks every request with these (server/plugins/input.ts); the import readers check every row.

/** Deeper than any schema of the API (label schemas and criteria are the deepest, at 4 levels). */
export const MAX_JSON_DEPTH = 32;

/** A UTF-16 surrogate without its pair (no UTF-8 form); the import reader searches with it too. */
export const LONE_SURROGATE_SOURCE =
  '[\\ud800-\\udbff](?![\\udc00-\\udfff])|(?<![\\ud800-\\udbff])[\\udc00-\\udfff]';
export const LONE_SURROGATE_PROBLEM =
  'contains a lone surrogate (e.g. \\ud800), which is not valid Unicode text';
const LONE_SURROGATE = new RegExp(LONE_SURROGATE_SOURCE);

/** What is wrong with a string for PostgreSQL, or null when it can be stored as it is. */
export function unstorableText(text: string): string | null {
  if (text.includes('\u0000')) return 'contains a NUL character (\\u0000), which cannot be stored';
  if (LONE_SURROGATE.test(text)) return LONE_SURROGATE_PROBLEM;
  return null;
}

function isPlainContainer(value: unknown): value is Record<string, unknown> | unknown[] {
  if (typeof value !== 'object' || value === null) return false;
  if (Array.isArray(value)) return true;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

/**
 * The first problem in a parsed JSON value (or query string), as `<path>: <what>`; the path uses
 * dots like the validator's messages (`.filters.split.seed`, `.userIds.0`). Walks without recursion.
 */
export function findUnstorable(value: unknown, maxDepth = MAX_JSON_DEPTH): string | null {
  const stack: { value: unknown; path: string; depth: number }[] = [{ value, path: '', depth: 0 }];
  while (stack.length) {
    const item = stack.pop()!;
    if (typeof item.value === 'string') {
      const problem = unstorableText(item.value);
      if (problem) return `${item.path}: ${problem}`;
      continue;
    }
    if (!isPlainContainer(item.value)) continue;
    if (item.depth >= maxDepth) return `${item.path}: nested deeper than ${maxDepth} levels`;
    const entries = Array.isArray(item.value)
      ? item.value.map((child, index) => [String(index), child] as const)
      : Object.entries(item.value);
    for (let i = entries.length - 1; i >= 0; i--) {
      const [key, child] = entries[i]!;
      const keyProblem = unstorableText(key);
      if (keyProblem) return `${item.path}: a key ${keyProblem}`;
      stack.push({ value: child, path: `${item.path}.${key}`, depth: item.depth + 1 });
    }
  }
  return null;
}
