/**
 * `ebb validate`, against the warehouse: every source exists, and its key columns, mapped columns,
 * filter and SQL expressions are valid, before anything is sent.
 */
import { closest } from 'fastest-levenshtein';
import type { Sql } from '../warehouse/sql.ts';
import type { SyncConfig } from './schema.ts';
import { ConfigError, formatPath, type ConfigIssue } from '../errors.ts';
import { sourceContext } from '../plan/plan.ts';

function firstLine(e: unknown): string {
  return (e as Error).message.split('\n')[0].replace(/^[A-Za-z ]+Error: /, '');
}

/** Checks one sync's source against the warehouse; returns its problems with their paths. */
export async function validateSource(sql: Sql, sync: SyncConfig, index: number): Promise<ConfigIssue[]> {
  const at = (...p: PropertyKey[]) => formatPath(['syncs', index, ...p]);
  const issues: ConfigIssue[] = [];
  const ctx = sourceContext(sync);
  let columns: string[];
  try {
    columns = (await sql.describe('select_source', { ...ctx, filter: null, expr: null })).map((c) => c.name);
  } catch (e) {
    return [{ path: at('source', sync.source.dbt_model ? 'dbt_model' : sync.source.table ? 'table' : 'query'), message: firstLine(e) }];
  }
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
    if (m.kind === 'column' && !lower.has(String(m.value).toLowerCase())) issues.push({ path: at('mapping', m.field), message: unknown(String(m.value)) });
    if (m.kind === 'sql') {
      try {
        await sql.describe('select_source', { ...ctx, filter: null, expr: m.value });
      } catch (e) {
        issues.push({ path: at('mapping', m.field), message: firstLine(e) });
      }
    }
  }
  return issues;
}

/**
 * Checks the syncs of the project (all of them, or those named) against the warehouse; throws a
 * ConfigError (exit 3) listing the problems, with their paths in ebb.yml.
 */
export async function validateProject(sql: Sql, syncs: SyncConfig[], only?: string[]): Promise<void> {
  const chosen = syncs.map((s, i) => [s, i] as const).filter(([s]) => !only || only.includes(s.name));
  const issues = (await Promise.all(chosen.map(([s, i]) => validateSource(sql, s, i)))).flat();
  if (issues.length > 0) throw new ConfigError(issues);
}
