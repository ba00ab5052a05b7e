// Named parameters compiled into PostgreSQL's `$n` once: what is a parameter, what is left alone.
import { describe, expect, it } from 'vitest';
import { statementName } from '../../core/db/client.js';
import { compileNamed, sql, type RowOf } from '../../core/db/sql-params.js';

describe('compileNamed', () => {
  it('numbers names in order of first use, one number per name', () => {
    expect(compileNamed('SELECT * FROM t WHERE a = :rater AND b = :project OR c = :rater')).toEqual({
      text: 'SELECT * FROM t WHERE a = $1 AND b = $2 OR c = $1',
      names: ['rater', 'project'],
    });
  });

  it('keeps casts, including a cast right after a parameter', () => {
    expect(compileNamed(`SELECT :schema::jsonb, x::text, :ids::uuid[], :n`)).toEqual({
      text: 'SELECT $1::jsonb, x::text, $2::uuid[], $3',
      names: ['schema', 'ids', 'n'],
    });
  });

  it('leaves literals, quoted identifiers and comments alone', () => {
    const source = `SELECT 'a :x it''s :y', "col:z", e"q"":w" -- the project's rate: :not
      /* :neither */ FROM t WHERE a = :yes AND b = 'HH24:MI'`;
    const { text, names } = compileNamed(source);
    expect(names).toEqual(['yes']);
    expect(text).toBe(source.replace(':yes', '$1'));
  });

  it('takes names with digits and underscores, and a name at the end of the text', () => {
    expect(compileNamed('a = :max_2 AND b = :_x')).toEqual({
      text: 'a = $1 AND b = $2',
      names: ['max_2', '_x'],
    });
  });

  it('leaves a colon that starts no name alone (array slices, "a: b")', () => {
    expect(compileNamed('SELECT ids[1:2], ids[:3] FROM t')).toEqual({
      text: 'SELECT ids[1:2], ids[:3] FROM t',
      names: [],
    });
  });

  it('refuses positional parameters and unterminated quotes or comments', () => {
    expect(() => compileNamed('a = $1 AND b = :b')).toThrow(/Positional/);
    expect(() => compileNamed(`a = 'open`)).toThrow(/Unterminated/);
    expect(() => compileNamed('a = "open')).toThrow(/Unterminated/);
    expect(() => compileNamed('a /* open')).toThrow(/Unterminated/);
  });
});

describe('sql', () => {
  const statement = sql<{ rater: string; all: boolean; since: Date | null }, { n: number }>(
    'SELECT count(*)::int AS n FROM t WHERE (r = :rater OR :all) AND (:since IS NULL OR at >= :since)',
  );

  it('gives the compiled text, its prepared statement name and the values in $n order', () => {
    expect(statement.text).toBe(
      'SELECT count(*)::int AS n FROM t WHERE (r = $1 OR $2) AND ($3 IS NULL OR at >= $3)',
    );
    expect(statement.name).toBe(statementName(statement.text));
    expect(statement.names).toEqual(['rater', 'all', 'since']);
    expect(statement.values({ since: null, all: false, rater: 'u1' })).toEqual(['u1', false, null]);
    // The row type travels with the statement.
    const row: RowOf<typeof statement> = { n: 1 };
    expect(row.n).toBe(1);
  });

  it('refuses a call that leaves a parameter without a value', () => {
    expect(() => statement.values({ rater: 'u1', all: true } as never)).toThrow(/No value for :since/);
  });
});
