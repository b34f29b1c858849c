/**
 * What the postgres plugin knows about its destination table, read from the catalog once per run,
 * and the checks that turn a wrong destination into one clear message per problem (a missing
 * table, a missing column, a key without a unique index, a type that cannot fit) before any
 * record is written.
 */
import { closest } from 'fastest-levenshtein';
import type pg from 'pg';
import type { Strategy } from '../plugin.ts';

/** One column of the destination table. */
export interface ColumnInfo {
  name: string;
  /** As PostgreSQL prints it: `integer`, `character varying(80)`, `jsonb`, `text[]`. */
  type: string;
  /** The type's family, for the type checks and the JSON handling. */
  family: Family;
  notNull: boolean;
  hasDefault: boolean;
  /** A generated column, or an identity column GENERATED ALWAYS: it cannot be written. */
  readOnly: string | null;
}

/** The destination table. */
export interface TableInfo {
  schema: string;
  table: string;
  /** `"schema"."table"`, quoted, for statements. */
  ref: string;
  columns: Map<string, ColumnInfo>;
  primaryKey: string[] | null;
  /** The column sets of the unique indexes that ON CONFLICT can use (immediate, not partial, no expressions). */
  uniqueKeys: string[][];
  /** Tables whose foreign keys reference this one (TRUNCATE refuses them). */
  referencedBy: string[];
  privileges: Record<'insert' | 'update' | 'delete' | 'truncate' | 'select', boolean>;
}

/** A problem with the destination, at a path inside the sync (`destination.object`, `mapping.score`). */
export interface DestinationIssue {
  path: string;
  message: string;
}

/** What the destination asks for, as the sync describes it. */
export interface DestinationRequest {
  strategy: Strategy;
  /** The mapping's destination fields, in order. */
  fields: string[];
  /** `destination.key_columns`, if set. */
  keyColumns?: string[];
  replaceMode?: 'owner' | 'shared';
  /** The warehouse type of each mapped field, when known (`ebb validate`): enables the type checks. */
  fieldTypes?: Record<string, string>;
}

/** How the plugin writes: the table and its resolved match columns. */
export interface Target {
  info: TableInfo;
  /** The mapped fields, every one a writable column. */
  fields: string[];
  /** The match columns; empty only for `send` into a table without a usable key. */
  keys: string[];
  /** The mapped fields that are not match columns. */
  nonKeys: string[];
}

export type Family = 'integer' | 'decimal' | 'float' | 'text' | 'boolean' | 'temporal' | 'json' | 'list' | 'null' | 'other';

/** `schema.table` or `table` (then the connection's schema). Names are used exactly as written. */
export function splitObject(object: string, defaultSchema: string): { schema: string; table: string } {
  const dot = object.indexOf('.');
  return dot === -1 ? { schema: defaultSchema, table: object } : { schema: object.slice(0, dot), table: object.slice(dot + 1) };
}

/** Reads the table from the catalog; undefined when there is no such table (or view). */
export async function readTable(client: pg.ClientBase, schema: string, table: string, quote: (s: string) => string): Promise<TableInfo | undefined> {
  const found = await client.query<{ oid: number; relkind: string }>(
    `SELECT c.oid, c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'f', 'm')`,
    [schema, table],
  );
  if (found.rows.length === 0) return undefined;
  const { oid, relkind } = found.rows[0];
  if (relkind !== 'r' && relkind !== 'p') {
    const what = relkind === 'v' ? 'a view' : relkind === 'm' ? 'a materialized view' : 'a foreign table';
    throw new DestinationError([{ path: 'destination.object', message: `${schema}.${table} is ${what}; ebb writes to tables only` }]);
  }
  const columns = await client.query<{ name: string; type: string; base: string; category: string; not_null: boolean; has_default: boolean; generated: string; identity: string }>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
            format_type(CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END, NULL) AS base,
            t.typcategory AS category, a.attnotnull AS not_null, a.atthasdef AS has_default,
            a.attgenerated AS generated, a.attidentity AS identity
     FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
     WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [oid],
  );
  const indexes = await client.query<{ is_primary: boolean; columns: string[] }>(
    `SELECT i.indisprimary AS is_primary,
            ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                  JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord) AS columns
     FROM pg_catalog.pg_index i
     WHERE i.indrelid = $1 AND i.indisunique AND i.indimmediate AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
     ORDER BY i.indisprimary DESC, i.indexrelid`,
    [oid],
  );
  const referencing = await client.query<{ name: string }>(
    `SELECT DISTINCT conrelid::regclass::text AS name FROM pg_catalog.pg_constraint WHERE confrelid = $1 AND contype = 'f' AND conrelid <> $1`,
    [oid],
  );
  const privileges = await client.query<TableInfo['privileges']>(
    `SELECT has_table_privilege($1::oid, 'INSERT') AS insert, has_table_privilege($1::oid, 'UPDATE') AS update,
            has_table_privilege($1::oid, 'DELETE') AS delete, has_table_privilege($1::oid, 'TRUNCATE') AS truncate,
            has_table_privilege($1::oid, 'SELECT') AS select`,
    [oid],
  );
  const primary = indexes.rows.find((i) => i.is_primary);
  return {
    schema,
    table,
    ref: `${quote(schema)}.${quote(table)}`,
    columns: new Map(
      columns.rows.map((c) => [
        c.name,
        {
          name: c.name,
          type: c.type,
          family: postgresFamily(c.base, c.category),
          notNull: c.not_null,
          hasDefault: c.has_default || c.identity !== '' || c.generated !== '',
          readOnly: c.generated !== '' ? 'a generated column' : c.identity === 'a' ? 'an identity column GENERATED ALWAYS' : null,
        },
      ]),
    ),
    primaryKey: primary ? primary.columns : null,
    uniqueKeys: indexes.rows.map((i) => i.columns),
    referencedBy: referencing.rows.map((r) => r.name),
    privileges: privileges.rows[0],
  };
}

/** Why a missing table is missing: the schema, or a near name. */
export async function missingTable(client: pg.ClientBase, schema: string, table: string): Promise<DestinationIssue> {
  const schemas = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_catalog.pg_namespace WHERE nspname = $1', [schema]);
  if (schemas.rows[0].n === 0) {
    return { path: 'destination.object', message: `schema "${schema}" does not exist in database ${await currentDatabase(client)}; create it, or set the connection's config.schema` };
  }
  const tables = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1`,
    [schema],
  );
  const names = tables.rows.map((r) => r.name);
  return { path: 'destination.object', message: `table "${table}" does not exist in schema "${schema}"${didYouMean(table, names, ' (names are case-sensitive)')}; create it first: ebb does not create tables` };
}

async function currentDatabase(client: pg.ClientBase): Promise<string> {
  return (await client.query<{ db: string }>('SELECT current_database() AS db')).rows[0].db;
}

function didYouMean(name: string, candidates: string[], caseNote = ''): string {
  if (candidates.length === 0) return '';
  const sameCase = candidates.find((c) => c.toLowerCase() === name.toLowerCase());
  if (sameCase) return `; did you mean "${sameCase}"?${caseNote}`;
  return `; did you mean "${closest(name, candidates)}"?`;
}

/** The strategies whose creates rely on ON CONFLICT over the match columns. */
const conflictStrategies: ReadonlySet<Strategy> = new Set(['create', 'upsert', 'mirror', 'replace']);

/**
 * Checks the sync against the table and resolves its match columns. Every problem is reported,
 * each with the place in the sync to fix.
 */
export function checkDestination(info: TableInfo, request: DestinationRequest): { issues: DestinationIssue[]; target: Target } {
  const issues: DestinationIssue[] = [];
  const { strategy, fields } = request;
  const name = `${info.schema}.${info.table}`;
  const columnNames = [...info.columns.keys()];
  for (const field of fields) {
    const column = info.columns.get(field);
    if (!column) issues.push({ path: `mapping.${field}`, message: `table ${name} has no column "${field}"${didYouMean(field, columnNames, ' (names are case-sensitive)')}` });
    else if (column.readOnly) issues.push({ path: `mapping.${field}`, message: `column "${field}" of ${name} is ${column.readOnly}: PostgreSQL writes it; remove it from the mapping` });
  }

  let keys: string[] = [];
  if (request.keyColumns) {
    keys = request.keyColumns;
    request.keyColumns.forEach((k, i) => {
      const path = `destination.key_columns[${i}]`;
      if (!info.columns.has(k)) issues.push({ path, message: `table ${name} has no column "${k}"${didYouMean(k, columnNames)}` });
      else if (!fields.includes(k)) issues.push({ path, message: `match column "${k}" is not in the mapping; map it, so that each record carries the value to match on` });
    });
    if (strategy !== 'send' && !info.uniqueKeys.some((u) => sameSet(u, keys))) {
      issues.push({
        path: 'destination.key_columns',
        message: `${name} has no primary key or unique index on exactly (${keys.join(', ')}), so a row cannot be matched unambiguously; add one: CREATE UNIQUE INDEX ON ${name} (${keys.join(', ')})`,
      });
    }
  } else if (info.primaryKey) {
    keys = info.primaryKey;
    const unmapped = keys.filter((k) => !fields.includes(k));
    if (unmapped.length > 0) {
      if (strategy === 'send') keys = [];
      else {
        issues.push({
          path: 'destination.key_columns',
          message: `the primary key of ${name} is (${info.primaryKey.join(', ')}), and ${unmapped.map((k) => `"${k}"`).join(', ')} is not in the mapping; map it, or set destination.key_columns to mapped columns with a unique index`,
        });
      }
    }
  } else if (strategy !== 'send') {
    const unique = info.uniqueKeys.find((u) => u.every((k) => fields.includes(k)));
    issues.push({
      path: 'destination.key_columns',
      message: `${name} has no primary key; set destination.key_columns to the mapped column(s) that identify a row${unique ? ` (a unique index covers ${unique.join(', ')})` : ', and give them a unique index'}`,
    });
  }

  // A column that must hold a value but is neither mapped nor defaulted fails every insert.
  if (strategy !== 'update') {
    for (const column of info.columns.values()) {
      // An unmapped primary key is reported above already.
      if (column.notNull && !column.hasDefault && !fields.includes(column.name) && !(keys.includes(column.name) && issues.some((i) => i.path === 'destination.key_columns'))) {
        issues.push({ path: 'mapping', message: `column "${column.name}" of ${name} is NOT NULL and has no default, so every new row needs it: map it` });
      }
    }
  }

  if (strategy === 'replace') {
    if (!request.replaceMode) {
      issues.push({
        path: 'destination.replace_mode',
        message:
          'the replace strategy needs replace_mode: owner (the table holds this sync alone: it is emptied and loaded in one transaction) or shared (other tools write to it too: the mapped columns are set to null, then the records are upserted)',
      });
    } else if (request.replaceMode === 'owner' && info.referencedBy.length > 0) {
      issues.push({
        path: 'destination.replace_mode',
        message: `replace_mode owner empties ${name} with TRUNCATE, which PostgreSQL refuses while foreign keys of ${info.referencedBy.join(', ')} reference it; use replace_mode: shared`,
      });
    } else if (request.replaceMode === 'shared') {
      for (const field of fields) {
        const column = info.columns.get(field);
        if (column?.notNull && !keys.includes(field)) {
          issues.push({ path: `mapping.${field}`, message: `replace_mode shared sets the mapped columns to null before loading, but column "${field}" of ${name} is NOT NULL; use replace_mode: owner, or drop the constraint` });
        }
      }
    }
  }

  const needed = privilegesFor(strategy, request.replaceMode);
  const missing = needed.filter((p) => !info.privileges[p]);
  if (missing.length > 0) {
    issues.push({ path: 'destination.object', message: `the connection's user lacks the ${missing.map((p) => p.toUpperCase()).join(', ')} privilege on ${name}, which the ${strategy} strategy needs: GRANT ${missing.map((p) => p.toUpperCase()).join(', ')} ON ${name} TO <user>` });
  }

  if (request.fieldTypes) {
    for (const field of fields) {
      const column = info.columns.get(field);
      const source = request.fieldTypes[field];
      if (!column || source === undefined) continue;
      const problem = typeProblem(source, column);
      if (problem) issues.push({ path: `mapping.${field}`, message: `type mismatch: ${problem}` });
    }
  }

  if (conflictStrategies.has(strategy) && keys.length === 0 && issues.length === 0) {
    issues.push({ path: 'destination.key_columns', message: `the ${strategy} strategy needs match columns; set destination.key_columns` });
  }
  const nonKeys = fields.filter((f) => !keys.includes(f));
  return { issues, target: { info, fields, keys, nonKeys } };
}

function privilegesFor(strategy: Strategy, replaceMode: 'owner' | 'shared' | undefined): Array<keyof TableInfo['privileges']> {
  switch (strategy) {
    case 'create':
    case 'send':
      return ['insert', 'select'];
    case 'update':
      return ['update', 'select'];
    case 'upsert':
      return ['insert', 'update', 'select'];
    case 'mirror':
      return ['insert', 'update', 'delete', 'select'];
    case 'replace':
      return replaceMode === 'owner' ? ['truncate', 'insert', 'update', 'select'] : ['insert', 'update', 'select'];
  }
}

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

/** The family of a PostgreSQL type, from its base type's name and category. */
export function postgresFamily(base: string, category: string): Family {
  if (base === 'json' || base === 'jsonb') return 'json';
  if (category === 'A') return 'list';
  if (category === 'N') {
    if (base === 'smallint' || base === 'integer' || base === 'bigint') return 'integer';
    if (base === 'real' || base === 'double precision') return 'float';
    if (base === 'numeric') return 'decimal';
    return 'other';
  }
  if (category === 'S') return 'text';
  if (category === 'B') return 'boolean';
  if (category === 'D' || category === 'T') return 'temporal';
  return 'other';
}

/** The family of a warehouse type (DuckDB or Snowflake), as `describe` names it. */
export function warehouseFamily(type: string): Family {
  const t = type.trim().toUpperCase().replace(/^"(.*)"$/, '$1');
  if (t === 'NULL') return 'null';
  if (/\[\d*\]$/.test(t) || /^(LIST|ARRAY)\b/.test(t)) return 'list';
  if (/^(STRUCT|MAP|JSON|VARIANT|OBJECT|UNION)\b/.test(t)) return 'json';
  if (/^(U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|INT\d*|INT|BYTEINT)$/.test(t)) return 'integer';
  const decimal = /^(DECIMAL|NUMERIC|NUMBER)\s*(?:\(\s*\d+\s*(?:,\s*(\d+)\s*)?\))?$/.exec(t);
  if (decimal) return decimal[2] === undefined ? (t.startsWith('NUMBER') && !t.includes('(') ? 'integer' : 'decimal') : Number(decimal[2]) === 0 ? 'integer' : 'decimal';
  if (/^(DOUBLE|FLOAT\d*|REAL)\b/.test(t)) return 'float';
  if (/^(VARCHAR|TEXT|STRING|CHAR|BPCHAR|UUID|ENUM|CHARACTER)\b/.test(t)) return 'text';
  if (/^(BOOLEAN|BOOL)$/.test(t)) return 'boolean';
  if (/^(DATE|TIME|TIMESTAMP|DATETIME|INTERVAL)\b/.test(t)) return 'temporal';
  return 'other';
}

/** Why values of a warehouse type cannot go into a column, or null when they can (or it cannot be told). */
export function typeProblem(warehouseType: string, column: ColumnInfo): string | null {
  const from = warehouseFamily(warehouseType);
  const to = column.family;
  if (from === 'null' || from === 'other' || to === 'null' || to === 'other' || to === 'json' || to === 'text') return null;
  const fits: Record<Exclude<Family, 'null' | 'other' | 'json' | 'text'>, Family[]> = {
    integer: ['integer'],
    decimal: ['integer', 'decimal', 'float'],
    float: ['integer', 'decimal', 'float'],
    boolean: ['boolean'],
    temporal: ['temporal', 'text'],
    list: ['list', 'json'],
  };
  if (fits[to].includes(from)) return null;
  const why = to === 'integer' && (from === 'decimal' || from === 'float') ? ' (values with a fraction would be refused)' : '';
  return `the mapping gives ${warehouseType}, but column "${column.name}" is ${column.type}${why}; convert it in the mapping, e.g. { sql: "CAST(... AS ...)" }, or change the column`;
}

/** Problems with the destination, found before anything is written. */
export class DestinationError extends Error {
  constructor(readonly issues: DestinationIssue[]) {
    super(issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  }
}
