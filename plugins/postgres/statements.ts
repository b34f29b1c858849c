/**
 * The statements of the postgres plugin: one per action, each writing a whole batch.
 *
 * The batch is bound as one JSON array ($1) and turned into rows of the table's own row type by
 * `json_populate_record`, so PostgreSQL converts each JSON value to its column's type (a number to
 * integer or numeric, a string to timestamptz or uuid, an object to jsonb, an array to text[]).
 * Every statement returns one row per change with its position (`ord`, from 1) and the matched
 * row's key as text (`id`): the key's value, or a JSON array of the values of a composite key.
 * Identifiers are quoted; values are only ever bound.
 */
import type { Target } from './table.ts';

/** The statement of an action and, per change, what it binds. */
export interface Statement {
  sql: string;
  /**
   * What goes into $1 for each change: `r` is the record (the row to write), `m` the values of the
   * match columns of the row to change.
   */
  parts: Array<'r' | 'm'>;
}

type Quote = (identifier: string) => string;

/** The rows of the batch: `ord`, then `r` and/or `m` as values of the table's row type. */
function input(t: Target, parts: Array<'r' | 'm'>): string {
  const table = t.info.ref;
  const values = parts.map((p) => `json_populate_record(NULL::${table}, x.e -> '${p}') AS ${p}`).join(', ');
  // MATERIALIZED: each record is converted once, not once per column that reads it.
  return `input AS MATERIALIZED (SELECT x.ord, ${values} FROM json_array_elements($1::json) WITH ORDINALITY AS x(e, ord))`;
}

/** The key of a row as text; `of` is a table alias (`t`) or a record (`(i.r)`). */
function keyText(t: Target, of: string, q: Quote): string {
  if (t.keys.length === 0) return 'NULL::text';
  if (t.keys.length === 1) return `${of}.${q(t.keys[0])}::text`;
  return `json_build_array(${t.keys.map((k) => `${of}.${q(k)}`).join(', ')})::text`;
}

function matches(t: Target, q: Quote): string {
  return t.keys.map((k) => `t.${q(k)} = (i.m).${q(k)}`).join(' AND ');
}

function insertRows(t: Target, q: Quote): string {
  return `INSERT INTO ${t.info.ref} AS t (${t.fields.map(q).join(', ')}) SELECT ${t.fields.map((f) => `(i.r).${q(f)}`).join(', ')} FROM input i ORDER BY i.ord`;
}

/**
 * create: inserts the rows whose key is free. A row whose key the table holds already, or that an
 * earlier record of the same batch took, is not written (`written` false): a conflict.
 */
export function createStatement(t: Target, q: Quote): Statement {
  const key = keyText(t, '(i.r)', q);
  return {
    parts: ['r'],
    sql: `WITH ${input(t, ['r'])},
written AS (${insertRows(t, q)} ON CONFLICT (${t.keys.map(q).join(', ')}) DO NOTHING RETURNING ${keyText(t, 't', q)} AS id)
SELECT i.ord, ${key} AS id, (row_number() OVER (PARTITION BY ${key} ORDER BY i.ord) = 1 AND ${key} IN (SELECT id FROM written)) AS written
FROM input i ORDER BY i.ord`,
  };
}

/** recreate (replace): inserts, or overwrites the row with the same key. */
export function recreateStatement(t: Target, q: Quote): Statement {
  const onConflict = t.nonKeys.length
    ? `DO UPDATE SET ${t.nonKeys.map((f) => `${q(f)} = EXCLUDED.${q(f)}`).join(', ')}`
    : 'DO NOTHING';
  return {
    parts: ['r'],
    sql: `WITH ${input(t, ['r'])},
written AS (${insertRows(t, q)} ON CONFLICT (${t.keys.map(q).join(', ')}) ${onConflict})
SELECT i.ord, ${keyText(t, '(i.r)', q)} AS id, true AS written FROM input i ORDER BY i.ord`,
  };
}

/** send: appends every row (a table of events needs no key). */
export function sendStatement(t: Target, q: Quote): Statement {
  return {
    parts: ['r'],
    sql: `WITH ${input(t, ['r'])},
written AS (${insertRows(t, q)})
SELECT i.ord, ${keyText(t, '(i.r)', q)} AS id, true AS written FROM input i ORDER BY i.ord`,
  };
}

/** update: sets every mapped column (the key too) of the row that `m` matches; no row: not found. */
export function updateStatement(t: Target, q: Quote): Statement {
  return {
    parts: ['r', 'm'],
    sql: `WITH ${input(t, ['r', 'm'])}
UPDATE ${t.info.ref} AS t SET ${t.fields.map((f) => `${q(f)} = (i.r).${q(f)}`).join(', ')}
FROM input i WHERE ${matches(t, q)}
RETURNING i.ord, ${keyText(t, 't', q)} AS id, true AS written`,
  };
}

/** clear: sets the mapped columns other than the key to null. */
export function clearStatement(t: Target, q: Quote): Statement {
  const sql = t.nonKeys.length
    ? `WITH ${input(t, ['m'])}
UPDATE ${t.info.ref} AS t SET ${t.nonKeys.map((f) => `${q(f)} = NULL`).join(', ')}
FROM input i WHERE ${matches(t, q)}
RETURNING i.ord, ${keyText(t, 't', q)} AS id, true AS written`
    : // Nothing to clear but the key: the row only has to exist.
      `WITH ${input(t, ['m'])}
SELECT i.ord, ${keyText(t, 't', q)} AS id, true AS written FROM ${t.info.ref} AS t JOIN input i ON ${matches(t, q)}`;
  return { parts: ['m'], sql };
}

/** delete: removes the row that `m` matches. */
export function deleteStatement(t: Target, q: Quote): Statement {
  return {
    parts: ['m'],
    sql: `WITH ${input(t, ['m'])}
DELETE FROM ${t.info.ref} AS t USING input i WHERE ${matches(t, q)}
RETURNING i.ord, ${keyText(t, 't', q)} AS id, true AS written`,
  };
}

/** replace, owner mode: the table is emptied, then loaded (in the run's transaction). */
export function truncateStatement(t: Target): string {
  return `TRUNCATE TABLE ${t.info.ref}`;
}

/** replace, shared mode: the mapped columns other than the key are set to null in every row. */
export function nullMappedStatement(t: Target, q: Quote): string | null {
  if (t.nonKeys.length === 0) return null;
  return `UPDATE ${t.info.ref} SET ${t.nonKeys.map((f) => `${q(f)} = NULL`).join(', ')} WHERE ${t.nonKeys.map((f) => `${q(f)} IS NOT NULL`).join(' OR ')}`;
}
