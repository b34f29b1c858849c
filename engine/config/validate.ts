/**
 * `ebb validate`, against the warehouse: every source exists, and its key columns, mapped columns,
 * filter and SQL expressions are valid, before anything is sent.
 */
import { closest } from 'fastest-levenshtein';
import type { Sql } from '../warehouse/sql.ts';
import type { SyncConfig } from './schema.ts';
import { ConfigError, formatPath, type ConfigIssue } from '../errors.ts';
import { sourceContext } from '../plan/plan.ts';
import { destinationOf, pluginContext, type Engine } from '../engine.ts';
import { redact } from '../redact.ts';

function firstLine(e: unknown): string {
  return (e as Error).message.split('\n')[0].replace(/^[A-Za-z ]+Error: /, '');
}

/** Checks one sync's source against the warehouse; returns its problems with their paths. */
export async function validateSource(sql: Sql, sync: SyncConfig, index: number): Promise<ConfigIssue[]> {
  return (await inspectSource(sql, sync, index)).issues;
}

/** The warehouse type of a static mapping value. */
function valueType(value: unknown): string {
  if (value === null) return 'NULL';
  if (typeof value === 'boolean') return 'BOOLEAN';
  if (typeof value === 'number') return Number.isInteger(value) ? 'INTEGER' : 'DOUBLE';
  return 'VARCHAR';
}

/** Checks one sync's source; also returns the warehouse type of each mapped field it could tell. */
export async function inspectSource(sql: Sql, sync: SyncConfig, index: number): Promise<{ issues: ConfigIssue[]; fieldTypes: Record<string, string> }> {
  const fieldTypes: Record<string, string> = {};
  const at = (...p: PropertyKey[]) => formatPath(['syncs', index, ...p]);
  const issues: ConfigIssue[] = [];
  const ctx = sourceContext(sync);
  let described: Array<{ name: string; type: string }>;
  try {
    described = await sql.describe('select_source', { ...ctx, filter: null, expr: null });
  } catch (e) {
    return { issues: [{ path: at('source', sync.source.dbt_model ? 'dbt_model' : sync.source.table ? 'table' : 'query'), message: firstLine(e) }], fieldTypes };
  }
  const columns = described.map((c) => c.name);
  const types = new Map(described.map((c) => [c.name.toLowerCase(), c.type]));
  const lower = new Map(columns.map((c) => [c.toLowerCase(), c]));
  const unknown = (name: string) => `unknown column "${name}"; did you mean "${closest(name, columns)}"?`;
  ctx.key.forEach((k, i) => {
    if (!lower.has(k.toLowerCase())) issues.push({ path: Array.isArray(sync.source.key) ? at('source', 'key', i) : at('source', 'key'), message: unknown(k) });
  });
  if (sync.source.filter) {
    try {
      await sql.describe('select_source', { ...ctx, expr: null });
    } catch (e) {
      issues.push({ path: at('source', 'filter'), message: firstLine(e) });
    }
  }
  for (const m of ctx.mapping) {
    if (m.kind === 'column') {
      const type = types.get(String(m.value).toLowerCase());
      if (type === undefined) issues.push({ path: at('mapping', m.field), message: unknown(String(m.value)) });
      else fieldTypes[m.field] = type;
    }
    if (m.kind === 'value') fieldTypes[m.field] = valueType(m.value);
    if (m.kind === 'sql') {
      try {
        const [column] = await sql.describe('select_source', { ...ctx, filter: null, expr: m.value });
        if (column) fieldTypes[m.field] = column.type;
      } catch (e) {
        issues.push({ path: at('mapping', m.field), message: firstLine(e) });
      }
    }
  }
  return { issues, fieldTypes };
}

/**
 * Checks a sync's destination through its plugin's `validate` hook, if it has one. An app that
 * cannot be asked is a warning, not a problem of ebb.yml: a run then fails on its own.
 */
export async function validateDestination(engine: Engine, sync: SyncConfig, index: number, fieldTypes: Record<string, string>): Promise<ConfigIssue[]> {
  const connection = sync.destination.connection;
  const plugin = engine.project.plugins.get(connection);
  if (!plugin?.validate) return [];
  try {
    const issues = await plugin.validate({
      ...pluginContext(engine, connection),
      sync: sync.name,
      strategy: sync.strategy,
      destination: destinationOf(engine, sync),
      fields: Object.keys(sync.mapping),
      fieldTypes,
    });
    return issues.map((i) => ({ path: `${formatPath(['syncs', index])}.${i.path}`, message: i.message }));
  } catch (e) {
    process.stderr.write(`warning: cannot check the destination of sync ${sync.name} in connection ${connection}: ${redact(firstLine(e))}\n`);
    return [];
  }
}

/** The warehouse type of each mapped field of a sync that passed its checks, by sync name (see inspectSource). */
export type FieldTypes = Map<string, Record<string, string>>;

/**
 * Checks the syncs of the project (all of them, or those `only` names) against the warehouse, and
 * with `engine` their destinations; throws a ConfigError (exit 3) listing the problems, with their
 * paths in ebb.yml. A sync in `checked` passed the source checks moments ago (an automatic deploy
 * did them): its source is not described again. Returns the field types of the syncs checked.
 */
export async function validateProject(sql: Sql, syncs: SyncConfig[], options: { only?: string[]; engine?: Engine; checked?: FieldTypes } = {}): Promise<FieldTypes> {
  const { only, engine, checked } = options;
  const chosen = syncs.map((s, i) => [s, i] as const).filter(([s]) => !only || only.includes(s.name));
  const check = async (sync: SyncConfig, index: number) => {
    const known = checked?.get(sync.name);
    const { issues, fieldTypes } = known ? { issues: [], fieldTypes: known } : await inspectSource(sql, sync, index);
    // With `engine`, the destinations too (through the plugins' validate hook).
    return { sync: sync.name, fieldTypes, issues: engine ? [...issues, ...(await validateDestination(engine, sync, index, fieldTypes))] : issues };
  };
  const results = await Promise.all(chosen.map(([s, i]) => check(s, i)));
  const issues = results.flatMap((r) => r.issues);
  if (issues.length > 0) throw new ConfigError(issues);
  return new Map(results.map((r) => [r.sync, r.fieldTypes]));
}
