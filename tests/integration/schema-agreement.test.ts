// Proves that the hand-written migrations in prisma/migrations produce exactly the database that
// prisma/schema.prisma describes: tables, columns, types, defaults, enums, indexes and foreign keys.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import internals from '@prisma/internals';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

const { getDMMF } = internals;

type Datamodel = Awaited<ReturnType<typeof getDMMF>>['datamodel'];
type Model = Datamodel['models'][number];
type Field = Model['fields'][number];

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const schemaPath = path.join(root, 'prisma', 'schema.prisma');

/** The migration runner's bookkeeping table: the only thing allowed in `public` besides the schema. */
const MIGRATIONS_TABLE = '_prisma_migrations';

/** PostgreSQL truncates identifiers to 63 bytes. */
const MAX_IDENTIFIER_LENGTH = 63;

// ---------------------------------------------------------------------------------------------
// What schema.prisma says the database must contain, derived as Prisma's migration engine does.

/** Quotes an identifier the way PostgreSQL's format_type/regclass output does (keywords aside). */
function quoteIdent(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replaceAll('"', '""')}"`;
}

/** Prisma's default constraint names: `{table}_{columns}_{suffix}`, shortened to fit 63 bytes. */
function constraintName(table: string, columns: readonly string[], suffix: string): string {
  const stem = columns.length > 0 ? `${table}_${columns.join('_')}` : table;
  return `${stem.slice(0, MAX_IDENTIFIER_LENGTH - suffix.length - 1)}_${suffix}`;
}

/** Column types for Prisma scalar types without a native type attribute (PostgreSQL connector). */
const DEFAULT_TYPES: Record<string, string> = {
  String: 'text',
  Int: 'integer',
  BigInt: 'bigint',
  Float: 'double precision',
  Decimal: 'numeric(65,30)',
  Boolean: 'boolean',
  DateTime: 'timestamp(3) without time zone',
  Json: 'jsonb',
  Bytes: 'bytea',
};

/** `@db.X(args)` attributes as PostgreSQL's format_type() prints them. */
const NATIVE_TYPES: Record<string, (args: readonly string[]) => string> = {
  Text: () => 'text',
  Uuid: () => 'uuid',
  VarChar: ([n]) => (n ? `character varying(${n})` : 'character varying'),
  Char: ([n]) => `character(${n ?? '1'})`,
  Citext: () => 'citext',
  Inet: () => 'inet',
  Xml: () => 'xml',
  Integer: () => 'integer',
  SmallInt: () => 'smallint',
  BigInt: () => 'bigint',
  Oid: () => 'oid',
  DoublePrecision: () => 'double precision',
  Real: () => 'real',
  Money: () => 'money',
  Decimal: ([p, s]) => (p ? `numeric(${p},${s ?? '0'})` : 'numeric'),
  Boolean: () => 'boolean',
  Timestamp: ([p]) => (p ? `timestamp(${p}) without time zone` : 'timestamp without time zone'),
  Timestamptz: ([p]) => (p ? `timestamp(${p}) with time zone` : 'timestamp with time zone'),
  Date: () => 'date',
  Time: ([p]) => (p ? `time(${p}) without time zone` : 'time without time zone'),
  Timetz: ([p]) => (p ? `time(${p}) with time zone` : 'time with time zone'),
  Json: () => 'json',
  JsonB: () => 'jsonb',
  ByteA: () => 'bytea',
  Bit: ([n]) => `bit(${n ?? '1'})`,
  VarBit: ([n]) => (n ? `bit varying(${n})` : 'bit varying'),
};

/** Prisma's referential actions as pg_constraint.confdeltype / confupdtype letters. */
const ACTION_CODES: Record<string, string> = {
  NoAction: 'a',
  Restrict: 'r',
  Cascade: 'c',
  SetNull: 'n',
  SetDefault: 'd',
};
const ACTION_NAMES = Object.fromEntries(Object.entries(ACTION_CODES).map(([name, code]) => [code, name]));

/** Index algorithms (`@@index(type: ...)`) as pg_am names. */
const INDEX_METHODS: Record<string, string> = {
  BTree: 'btree',
  Hash: 'hash',
  Gist: 'gist',
  Gin: 'gin',
  SpGist: 'spgist',
  Brin: 'brin',
};

/** A default that the test can only check for presence, not for its exact expression. */
const ANY_DEFAULT = Symbol('any default');

/**
 * Foreign keys left without an index that starts with their columns on purpose (the rule below),
 * and why.
 */
const UNCOVERED_BY_DESIGN: Record<string, string> = {
  'Assignment.raterId':
    'only open leases are looked up by rater (a partial index); users are disabled, never deleted',
};

/**
 * Predicates of partial indexes (`where: raw("...")`), which the DMMF leaves out: by model and
 * index fields (`Model:a,b`), read from the schema's text.
 */
function partialIndexPredicates(schema: string): Map<string, string> {
  const predicates = new Map<string, string>();
  for (const [, model, body] of schema.matchAll(/^model (\w+) \{([\s\S]*?)^\}/gm)) {
    for (const [, fields, predicate] of body!.matchAll(
      /@@(?:index|unique)\(\[([^\]]*)\][^\n]*?where:\s*raw\("((?:[^"\\]|\\.)*)"\)/g,
    )) {
      const names = fields!.split(',').map((field) => field.replace(/\(.*\)/, '').trim());
      predicates.set(`${model}:${names.join(',')}`, predicate!.replaceAll('\\"', '"'));
    }
  }
  return predicates;
}

/**
 * An index predicate in a form both sides can be compared in: PostgreSQL prints it with casts,
 * quoted names and parentheses (`(status = 'LEASED'::"AssignmentStatus")`), a schema as written.
 */
function normalizePredicate(predicate: string): string {
  return predicate
    .replace(/::(?:"[^"]+"|[a-z ]+)/g, '')
    .replaceAll('"', '')
    .replace(/[()]/g, '')
    .replace(/\s+/g, ' ')
    .trim();
}

interface Expected {
  tables: string[];
  columns: string[];
  /** Columns (as `"table"."column"`) whose default is checked for presence only. */
  anyDefault: Set<string>;
  enums: string[];
  indexes: string[];
  /** Each index's table and columns, for the foreign-key coverage rule. */
  indexColumns: { table: string; columns: string[] }[];
  sequences: string[];
  constraints: string[];
  foreignKeys: { table: string; columns: string[]; label: string }[];
}

function deriveExpected(datamodel: Datamodel, predicates: Map<string, string>): Expected {
  const models = new Map(datamodel.models.map((model) => [model.name, model]));
  const enums = new Map(datamodel.enums.map((en) => [en.name, en]));
  const tableOf = (model: Model): string => model.dbName ?? model.name;
  const columnOf = (field: Field): string => field.dbName ?? field.name;
  const fieldOf = (model: Model, name: string): Field => {
    const field = model.fields.find((candidate) => candidate.name === name);
    if (!field) throw new Error(`${model.name}.${name} is not a field`);
    return field;
  };
  const modelOf = (name: string): Model => {
    const model = models.get(name);
    if (!model) throw new Error(`${name} is not a model`);
    return model;
  };

  const columnType = (field: Field): string => {
    let base: string;
    if (field.kind === 'enum') {
      const en = enums.get(field.type);
      base = quoteIdent(en?.dbName ?? field.type);
    } else if (field.nativeType) {
      const [name, args] = field.nativeType;
      const native = NATIVE_TYPES[name];
      if (!native) throw new Error(`No mapping for @db.${name}: extend NATIVE_TYPES`);
      base = native(args);
    } else {
      const type = DEFAULT_TYPES[field.type];
      if (!type) throw new Error(`No mapping for Prisma type ${field.type}: extend DEFAULT_TYPES`);
      base = type;
    }
    return field.isList ? `${base}[]` : base;
  };

  // The column default Prisma's migration engine writes, as pg_get_expr() prints it back.
  const columnDefault = (
    table: string,
    column: string,
    field: Field,
    type: string,
  ): string | null | typeof ANY_DEFAULT => {
    const value = field.default;
    if (!field.hasDefaultValue || value === undefined) return null;
    if (Array.isArray(value)) {
      // `@default([])` becomes `DEFAULT ARRAY[]::TEXT[]`; non-empty list literals are only checked
      // for presence.
      return value.length === 0 ? `ARRAY[]::${type}` : ANY_DEFAULT;
    }
    if (typeof value === 'object' && value !== null && 'name' in value) {
      switch (value.name) {
        case 'autoincrement':
          return `nextval('${quoteIdent(`${table}_${column}_seq`)}'::regclass)`;
        case 'now':
          return 'CURRENT_TIMESTAMP';
        case 'dbgenerated':
          // `dbgenerated()` without an argument declares "some default exists".
          return typeof value.args[0] === 'string' ? value.args[0] : ANY_DEFAULT;
        case 'uuid':
        case 'cuid':
        case 'nanoid':
        case 'ulid':
          // Generated by Prisma Client, not by the database: no column default.
          return null;
        default:
          return ANY_DEFAULT;
      }
    }
    if (typeof value === 'boolean') return String(value);
    if (typeof value === 'number') return value >= 0 ? String(value) : `'${value}'::${type}`;
    if (typeof value === 'string') {
      if (field.type === 'Decimal' || field.type === 'DateTime') return ANY_DEFAULT;
      return `'${value.replaceAll("'", "''")}'::${type}`;
    }
    return ANY_DEFAULT;
  };

  const expected: Expected = {
    tables: [],
    columns: [],
    anyDefault: new Set(),
    enums: [],
    indexes: [],
    indexColumns: [],
    sequences: [],
    constraints: [],
    foreignKeys: [],
  };

  for (const en of datamodel.enums) {
    expected.enums.push(`${en.dbName ?? en.name} (${en.values.map((v) => v.dbName ?? v.name).join(', ')})`);
  }

  for (const model of datamodel.models) {
    const table = tableOf(model);
    expected.tables.push(table);

    for (const field of model.fields) {
      if (field.kind === 'object') continue;
      if (field.kind === 'unsupported') throw new Error(`${model.name}.${field.name}: Unsupported type`);
      const column = columnOf(field);
      const type = columnType(field);
      // Prisma creates scalar lists (String[] ...) as nullable columns even though they are required
      // in the schema (prisma/prisma#4729, #26425); every other required field is NOT NULL.
      const notNull = field.isRequired && !field.isList;
      const def = columnDefault(table, column, field, type);
      const key = `"${table}"."${column}"`;
      if (def === ANY_DEFAULT) expected.anyDefault.add(key);
      const defText = def === null ? '' : def === ANY_DEFAULT ? ' DEFAULT <any>' : ` DEFAULT ${def}`;
      // A column PostgreSQL computes (GENERATED ALWAYS AS (...) STORED) is declared as
      // `@default(dbgenerated("<expression>"))` with documentation starting "Generated by PostgreSQL".
      const generated = field.documentation?.startsWith('Generated by PostgreSQL') ? ' GENERATED' : '';
      expected.columns.push(`${key} ${type}${notNull ? ' NOT NULL' : ''}${defText}${generated}`);
      if (def === `nextval('${quoteIdent(`${table}_${column}_seq`)}'::regclass)`) {
        expected.sequences.push(`${table}_${column}_seq owned by "${table}"."${column}"`);
      }
    }

    // Relations: the side that holds `fields: [...]` owns the foreign key.
    for (const field of model.fields) {
      if (field.kind !== 'object' || !field.relationFromFields?.length) continue;
      const target = modelOf(field.type);
      const columns = field.relationFromFields.map((name) => columnOf(fieldOf(model, name)));
      const refColumns = (field.relationToFields ?? []).map((name) => columnOf(fieldOf(target, name)));
      // Not in the DMMF when left out of @relation: Prisma's defaults are onDelete Restrict for a
      // required relation and SetNull for an optional one, and onUpdate Cascade for both.
      const onDelete = field.relationOnDelete ?? (field.isRequired ? 'Restrict' : 'SetNull');
      const onUpdate = field.relationOnUpdate ?? 'Cascade';
      // @relation(map: ...) is not in the DMMF either; the schema uses Prisma's default names.
      const name = constraintName(table, columns, 'fkey');
      const label =
        `"${table}".${name} FOREIGN KEY (${columns.join(', ')}) REFERENCES "${tableOf(target)}"` +
        ` (${refColumns.join(', ')}) ON DELETE ${onDelete} ON UPDATE ${onUpdate}`;
      expected.foreignKeys.push({ table, columns, label });
    }
  }

  for (const index of datamodel.indexes) {
    const model = modelOf(index.model);
    const table = tableOf(model);
    const columns = index.fields.map((f) => columnOf(fieldOf(model, f.name)));
    if (index.type === 'fulltext')
      throw new Error(`${index.model}: fulltext indexes do not exist on PostgreSQL`);
    const suffix = index.type === 'id' ? 'pkey' : index.type === 'unique' ? 'key' : 'idx';
    // Primary keys are named after the table alone (`User_pkey`), the others after their columns.
    const name = index.dbName ?? constraintName(table, index.type === 'id' ? [] : columns, suffix);
    const kind = index.type === 'id' ? 'PRIMARY KEY' : index.type === 'unique' ? 'UNIQUE' : 'INDEX';
    const method = INDEX_METHODS[index.algorithm ?? 'BTree'] ?? index.algorithm ?? 'btree';
    const parts = index.fields.map((f, i) => `${columns[i]}${f.sortOrder === 'desc' ? ' DESC' : ''}`);
    const predicate = predicates.get(`${index.model}:${index.fields.map((f) => f.name).join(',')}`);
    const where = predicate === undefined ? '' : ` WHERE ${normalizePredicate(predicate)}`;
    expected.indexes.push(
      `"${table}".${name} ${kind}${method === 'btree' ? '' : ` USING ${method}`} (${parts.join(', ')})${where}`,
    );
    // A partial index finds only some rows: it covers no foreign key, unless all it leaves out is
    // its first column's NULLs (a key's lookups, "= value", never look for those).
    const leavesOutNullsOnly =
      predicate !== undefined &&
      normalizePredicate(predicate) === `${columns[0]!.replaceAll('"', '')} IS NOT NULL`;
    if (predicate === undefined || leavesOutNullsOnly) expected.indexColumns.push({ table, columns });
    if (index.type === 'id') expected.constraints.push(`"${table}".${name} PRIMARY KEY`);
  }
  for (const fk of expected.foreignKeys) expected.constraints.push(fk.label);

  for (const list of [expected.tables, expected.columns, expected.enums, expected.indexes]) list.sort();
  expected.sequences.sort();
  expected.constraints.sort();
  return expected;
}

// ---------------------------------------------------------------------------------------------
// What the migrated database contains, read from pg_catalog.

interface Actual {
  tables: string[];
  columns: string[];
  enums: string[];
  indexes: string[];
  sequences: string[];
  constraints: string[];
  /** Relations in `public` other than tables, indexes and sequences (views, composite types...). */
  relations: string[];
  /** Functions, non-enum types, triggers, rules, policies, extensions in `public`. */
  others: string[];
}

async function readDatabase(client: pg.Client, anyDefault: ReadonlySet<string>): Promise<Actual> {
  const ownedByMigrationsTable = (table: string | null): boolean => table === MIGRATIONS_TABLE;

  const relations = await client.query<{ name: string; kind: string; table: string | null }>(`
    SELECT c.relname AS name, c.relkind::text AS kind,
           COALESCE(it.relname, st.relname, CASE WHEN c.relkind IN ('r', 'p') THEN c.relname END) AS table
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_index i ON i.indexrelid = c.oid
      LEFT JOIN pg_class it ON it.oid = i.indrelid
      LEFT JOIN pg_depend d ON c.relkind = 'S' AND d.classid = 'pg_class'::regclass AND d.objid = c.oid
                           AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
      LEFT JOIN pg_class st ON st.oid = d.refobjid
     WHERE n.nspname = 'public'`);
  const rows = relations.rows.filter((row) => !ownedByMigrationsTable(row.table));

  const columns = await client.query<{
    table: string;
    column: string;
    type: string;
    not_null: boolean;
    default: string | null;
    identity: string;
    generated: string;
  }>(`
    SELECT c.relname AS table, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type,
           a.attnotnull AS not_null, pg_get_expr(ad.adbin, ad.adrelid) AS default,
           a.attidentity::text AS identity, a.attgenerated::text AS generated
      FROM pg_attribute a
      JOIN pg_class c ON c.oid = a.attrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped`);

  const enums = await client.query<{ name: string; values: string[] }>(`
    SELECT t.typname AS name,
           array(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) AS values
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname = 'public' AND t.typtype = 'e'`);

  const indexes = await client.query<{
    name: string;
    table: string;
    unique: boolean;
    primary: boolean;
    columns: (string | null)[];
    options: number[];
    method: string;
    key_count: number;
    column_count: number;
    predicate: string | null;
  }>(`
    SELECT ic.relname AS name, t.relname AS table, i.indisunique AS unique, i.indisprimary AS primary,
           array(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                   LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                  ORDER BY k.ord) AS columns,
           i.indoption::int2[]::int[] AS options, am.amname::text AS method,
           i.indnkeyatts::int AS key_count, i.indnatts::int AS column_count, pg_get_expr(i.indpred, i.indrelid) AS predicate
      FROM pg_index i
      JOIN pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_class t ON t.oid = i.indrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
      JOIN pg_am am ON am.oid = ic.relam
     WHERE n.nspname = 'public'`);

  const constraints = await client.query<{
    name: string;
    type: string;
    table: string;
    ref_table: string | null;
    columns: string[];
    ref_columns: string[];
    on_delete: string;
    on_update: string;
    deferrable: boolean;
    match: string;
  }>(`
    SELECT con.conname AS name, con.contype::text AS type, t.relname AS table, ft.relname AS ref_table,
           array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
                  ORDER BY k.ord) AS columns,
           array(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
                  ORDER BY k.ord) AS ref_columns,
           con.confdeltype::text AS on_delete, con.confupdtype::text AS on_update,
           con.condeferrable AS deferrable, con.confmatchtype::text AS match
      FROM pg_constraint con
      JOIN pg_class t ON t.oid = con.conrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
      LEFT JOIN pg_class ft ON ft.oid = con.confrelid
     WHERE n.nspname = 'public'`);

  const others = await client.query<{ what: string }>(`
    SELECT 'function ' || p.proname AS what
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
    UNION ALL
    SELECT 'type ' || t.typname || ' (typtype ' || t.typtype::text || ')'
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname = 'public' AND t.typtype <> 'e' AND t.typcategory <> 'A'
       AND NOT (t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c'))
    UNION ALL
    SELECT 'trigger ' || tg.tgname || ' on ' || c.relname
      FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND NOT tg.tgisinternal
    UNION ALL
    SELECT 'rule ' || rulename || ' on ' || tablename FROM pg_rules WHERE schemaname = 'public'
    UNION ALL
    SELECT 'policy ' || policyname || ' on ' || tablename FROM pg_policies WHERE schemaname = 'public'
    UNION ALL
    SELECT 'extension ' || e.extname
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE n.nspname = 'public'
    UNION ALL
    SELECT 'row level security on ' || c.relname
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relrowsecurity`);

  const actual: Actual = {
    tables: rows.filter((r) => r.kind === 'r' || r.kind === 'p').map((r) => r.name),
    columns: [],
    enums: enums.rows.map((row) => `${row.name} (${row.values.join(', ')})`),
    indexes: [],
    sequences: [],
    constraints: [],
    relations: rows
      .filter((r) => !['r', 'p', 'i', 'I', 'S'].includes(r.kind))
      .map((r) => `relation ${r.name} (relkind ${r.kind})`),
    others: others.rows.map((row) => row.what),
  };

  for (const col of columns.rows) {
    if (ownedByMigrationsTable(col.table)) continue;
    const key = `"${col.table}"."${col.column}"`;
    const def =
      col.default === null ? '' : anyDefault.has(key) ? ' DEFAULT <any>' : ` DEFAULT ${col.default}`;
    const extra = `${col.identity ? ' IDENTITY' : ''}${col.generated ? ' GENERATED' : ''}`;
    actual.columns.push(`${key} ${col.type}${col.not_null ? ' NOT NULL' : ''}${def}${extra}`);
  }

  for (const index of indexes.rows) {
    if (ownedByMigrationsTable(index.table)) continue;
    const kind = index.primary ? 'PRIMARY KEY' : index.unique ? 'UNIQUE' : 'INDEX';
    const parts = index.columns.map((column, i) => {
      const name = column ?? '<expression>';
      const option = index.options[i] ?? 0;
      // indoption bit 0 is DESC, bit 1 NULLS FIRST; Prisma's DESC keeps the default NULLS FIRST (3).
      return option === 0 ? name : option === 3 ? `${name} DESC` : `${name} (indoption ${option})`;
    });
    const include = index.column_count > index.key_count ? ' INCLUDE <columns>' : '';
    const where = index.predicate === null ? '' : ` WHERE ${normalizePredicate(index.predicate)}`;
    const using = index.method === 'btree' ? '' : ` USING ${index.method}`;
    actual.indexes.push(
      `"${index.table}".${index.name} ${kind}${using} (${parts.join(', ')})${include}${where}`,
    );
  }

  for (const con of constraints.rows) {
    // NOT NULL constraints are catalogued from PostgreSQL 18 on; nullability is checked per column.
    if (ownedByMigrationsTable(con.table) || con.type === 'n') continue;
    if (con.type === 'p') {
      actual.constraints.push(`"${con.table}".${con.name} PRIMARY KEY`);
    } else if (con.type === 'f') {
      const flags = `${con.deferrable ? ' DEFERRABLE' : ''}${con.match === 's' ? '' : ` MATCH ${con.match}`}`;
      actual.constraints.push(
        `"${con.table}".${con.name} FOREIGN KEY (${con.columns.join(', ')}) REFERENCES "${con.ref_table}"` +
          ` (${con.ref_columns.join(', ')}) ON DELETE ${ACTION_NAMES[con.on_delete] ?? con.on_delete}` +
          ` ON UPDATE ${ACTION_NAMES[con.on_update] ?? con.on_update}${flags}`,
      );
    } else {
      actual.constraints.push(`"${con.table}".${con.name} (contype ${con.type})`);
    }
  }

  for (const seq of rows.filter((r) => r.kind === 'S')) {
    const owner = await client.query<{ owner: string | null }>(
      `SELECT '"' || t.relname || '"."' || a.attname || '"' AS owner
         FROM pg_depend d
         JOIN pg_class t ON t.oid = d.refobjid
         JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
          AND d.objid = $1::regclass AND d.deptype IN ('a', 'i')`,
      [quoteIdent(seq.name)],
    );
    actual.sequences.push(`${seq.name} owned by ${owner.rows[0]?.owner ?? '<nothing>'}`);
  }

  for (const list of [actual.tables, actual.columns, actual.enums, actual.indexes]) list.sort();
  actual.sequences.sort();
  actual.constraints.sort();
  actual.others.sort();
  return actual;
}

// ---------------------------------------------------------------------------------------------

describe('schema.prisma and the migrated database agree', () => {
  let database: TestDatabase | undefined;
  let expected: Expected;
  let actual: Actual;

  beforeAll(async () => {
    const schema = readFileSync(schemaPath, 'utf8');
    const dmmf = await getDMMF({ datamodel: schema });
    expected = deriveExpected(dmmf.datamodel, partialIndexPredicates(schema));
    database = await createTestDatabase();
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      actual = await readDatabase(client, expected.anyDefault);
    } finally {
      await client.end();
    }
  }, 60_000);

  afterAll(async () => {
    await database?.drop();
  });

  it('has one table per model, and no other table but the migrations table', () => {
    expect(actual.tables).toEqual(expected.tables);
  });

  it('has every scalar field as a column with its type, nullability and default, and no other column', () => {
    expect(actual.columns).toEqual(expected.columns);
  });

  it('has every enum with the same values in the same order', () => {
    expect(actual.enums).toEqual(expected.enums);
  });

  it('has every @id, @unique, @@unique and @@index as an index with the same columns, and no other', () => {
    expect(actual.indexes).toEqual(expected.indexes);
  });

  it('has a primary key and a foreign key per relation with its columns, target and actions, and no other constraint', () => {
    expect(actual.constraints).toEqual(expected.constraints);
  });

  it('has a sequence only behind each autoincrement column', () => {
    expect(actual.sequences).toEqual(expected.sequences);
  });

  it('has nothing else in the public schema but the credential change notices', () => {
    // Prisma's schema cannot say these: the trigger that tells servers to forget cached
    // credentials (migration 20261126130000_credential_notify).
    const notices = [
      'function loom_notify_credentials',
      'trigger ApiToken_notify_credentials on ApiToken',
      'trigger Session_notify_credentials on Session',
      'trigger User_notify_credentials on User',
    ];
    expect(actual.others.filter((what) => notices.includes(what)).sort()).toEqual(notices);
    expect([...actual.relations, ...actual.others.filter((what) => !notices.includes(what))]).toEqual([]);
  });

  it('covers every foreign key by an index that starts with its columns (schema rule)', () => {
    const uncovered = expected.foreignKeys.filter(
      (fk) =>
        !expected.indexColumns.some(
          (index) => index.table === fk.table && fk.columns.every((column, i) => index.columns[i] === column),
        ),
    );
    // The exceptions are exactly the ones listed, with their reasons.
    expect(uncovered.map((fk) => `${fk.table}.${fk.columns.join(',')}`).sort()).toEqual(
      Object.keys(UNCOVERED_BY_DESIGN).sort(),
    );
  });

  it('gives partial indexes the predicates the schema states', () => {
    const partial = expected.indexes.filter((index) => index.includes(' WHERE '));
    expect(partial).toEqual([
      '"Assignment".Assignment_raterId_expiresAt_idx INDEX (raterId, expiresAt) WHERE status = \'LEASED\'',
      '"Comparison".Comparison_roundId_idx INDEX (roundId) WHERE roundId IS NOT NULL',
      '"Preference".Preference_raterId_idempotencyKey_key UNIQUE (raterId, idempotencyKey) WHERE raterId IS NOT NULL',
      '"Response".Response_policyVersionId_idx INDEX (policyVersionId) WHERE policyVersionId IS NOT NULL',
    ]);
  });
});
