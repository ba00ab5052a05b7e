// SQL written with named parameters (`:rater`, `:project`) instead of `$1…$n`: compiled once, when
// the module that holds the statement loads, into the `$n` text PostgreSQL takes and the order of
// its values. A call then only lists the values in that order; the statement's name (for preparing
// it once per connection) is computed with it.
import { statementName } from './client.js';

/**
 * A statement compiled from named parameters, with the values of a call in `$n` order; `P` names
 * the parameters a call passes, `R` the rows it returns.
 */
export interface Statement<P extends object, R = unknown> {
  /** The text with `$1…$n` in place of the names. */
  readonly text: string;
  /** The prepared statement's name (a hash of the text). */
  readonly name: string;
  /** The parameter names, `$1` first. */
  readonly names: readonly string[];
  /** The values of `params` in `$n` order; a name without a value (undefined) is an error. */
  values(params: P): unknown[];
  /** Never set: carries the row type to the code that runs the statement. */
  readonly row?: R;
}

/** The row type of a statement. */
export type RowOf<S> = S extends Statement<object, infer R> ? R : never;

const NAME_START = /[A-Za-z_]/;
const NAME_PART = /[A-Za-z0-9_]/;

/**
 * `:name` → `$n`, the same number for each use of a name, numbered in order of first use. Left as
 * they are: casts (`::jsonb`), string literals ('a:b'), quoted identifiers ("a:b") and comments
 * (`-- ...`, `/* ... *\/`). Positional parameters (`$1`) are refused: one statement, one style.
 */
export function compileNamed(source: string): { text: string; names: string[] } {
  const names: string[] = [];
  const numbers = new Map<string, number>();
  let text = '';
  let i = 0;
  // Copies the source from i up to `end` unchanged.
  const skipTo = (end: number) => {
    text += source.slice(i, end);
    i = end;
  };
  while (i < source.length) {
    const ch = source[i]!;
    const next = source[i + 1];
    if (ch === "'" || ch === '"') {
      // A literal or quoted identifier; a doubled quote inside it is an escaped quote.
      let end = i + 1;
      for (;;) {
        end = source.indexOf(ch, end);
        if (end < 0) throw new Error(`Unterminated ${ch} in SQL: ${source.slice(i, i + 40)}`);
        if (source[end + 1] === ch) end += 2;
        else break;
      }
      skipTo(end + 1);
    } else if (ch === '-' && next === '-') {
      const end = source.indexOf('\n', i);
      skipTo(end < 0 ? source.length : end);
    } else if (ch === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      if (end < 0) throw new Error('Unterminated /* comment in SQL');
      skipTo(end + 2);
    } else if (ch === ':' && next === ':') {
      skipTo(i + 2);
    } else if (ch === ':' && next !== undefined && NAME_START.test(next)) {
      let end = i + 2;
      while (end < source.length && NAME_PART.test(source[end]!)) end++;
      const name = source.slice(i + 1, end);
      let number = numbers.get(name);
      if (number === undefined) {
        names.push(name);
        numbers.set(name, (number = names.length));
      }
      text += `$${number}`;
      i = end;
    } else if (ch === '$' && next !== undefined && /[0-9]/.test(next)) {
      throw new Error(`Positional parameter in SQL written with names: ${source.slice(i, i + 40)}`);
    } else {
      text += ch;
      i++;
    }
  }
  return { text, names };
}

/**
 * A statement with named parameters, compiled once (call it at module load, not per query):
 * `sql<{ rater: string }, { n: number }>('SELECT count(*)::int AS n ... WHERE "raterId" = :rater')`.
 */
export function sql<P extends object, R = unknown>(source: string): Statement<P, R> {
  const { text, names } = compileNamed(source);
  const name = statementName(text);
  return {
    text,
    name,
    names,
    values(params) {
      const values = new Array<unknown>(names.length);
      for (let index = 0; index < names.length; index++) {
        const value = (params as Record<string, unknown>)[names[index]!];
        if (value === undefined) throw new Error(`No value for :${names[index]} (statement ${name})`);
        values[index] = value;
      }
      return values;
    },
  };
}
