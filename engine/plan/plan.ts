/** Plan: render the transform and plan statements of a sync, and summarise the change set. */
import type { SyncConfig } from '../config/schema.ts';
import type { Sql } from '../warehouse/sql.ts';
import { DestructiveChangeError, formatPath, RunRefusedError, WarehouseError } from '../errors.ts';

/** Splits `db.schema."My Table"` into its parts, so that each one is quoted on its own. */
export function relationParts(name: string): string[] {
  return [...name.matchAll(/"((?:[^"]|"")*)"|([^.]+)/g)].map((m) => (m[1] !== undefined ? m[1].replaceAll('""', '"') : m[2].trim()));
}

/** The template context that describes a sync's source and mapping. */
export function sourceContext(sync: SyncConfig) {
  return {
    source: { table: sync.source.table ? relationParts(sync.source.table) : null, query: sync.source.query ?? null },
    filter: sync.source.filter ?? null,
    key: Array.isArray(sync.source.key) ? sync.source.key : [sync.source.key],
    mapping: Object.entries(sync.mapping).map(([field, v]) =>
      typeof v === 'string' ? { field, kind: 'column', value: v } : 'sql' in v ? { field, kind: 'sql', value: v.sql } : { field, kind: 'value', value: v.value },
    ),
  };
}

/** The change set of a run in numbers. */
export interface PlanSummary {
  /** Records per action, e.g. `{ create: 10, update: 2 }`; source failures are under `source_failure`. */
  actions: Record<string, number>;
  /** Records per reason. */
  reasons: Record<string, number>;
  total: number;
}

/** The summary of a run's change set, as it stands in `sync_changes`. */
export async function summarise(sql: Sql, runId: string): Promise<PlanSummary> {
  const summary: PlanSummary = { actions: {}, reasons: {}, total: 0 };
  for (const row of await sql.runAndRead('plan_counts', { run_id: runId })) {
    const n = Number(row.n);
    const action = row.source_failure ? 'source_failure' : String(row.action);
    summary.actions[action] = (summary.actions[action] ?? 0) + n;
    if (row.apply_reason) summary.reasons[String(row.apply_reason)] = (summary.reasons[String(row.apply_reason)] ?? 0) + n;
    summary.total += n;
  }
  return summary;
}

export interface PlanOptions {
  runId: string;
  fullResync?: boolean;
  allowEmptySource?: boolean;
  /** Plan even when the keys of most records ebb holds changed (see {@link checkRekey}). */
  allowDestructive?: boolean;
  /** The sync's place in ebb.yml, for error paths such as `syncs[2].mapping.n`. */
  index?: number;
  /** The source as {@link prepareSource} prepared it, if the caller started that already (beside other statements). */
  source?: Promise<PreparedSource>;
}

/** What a change set does to the records in the app, in words: `delete 3 from the app, create 3`. */
export function effects(summary: PlanSummary): string {
  const a = summary.actions;
  const parts = [
    a.delete && `delete ${a.delete} from the app`,
    a.clear && `clear ${a.clear} in the app`,
    a.untrack && `stop tracking ${a.untrack} (left in the app as they are)`,
    a.create && `create ${a.create}`,
    a.recreate && `recreate ${a.recreate}`,
    a.send && `send ${a.send}`,
    a.update && `update ${a.update}`,
  ].filter((p): p is string => Boolean(p));
  if (parts.length === 0) return 'change nothing in the app';
  return parts.length === 1 ? parts[0] : `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}`;
}

/** The key columns of a sync, as `keyed_by` stores them (recordRun notes them after a run that planned). */
export function keyedBy(sync: SyncConfig): string {
  return JSON.stringify(sourceContext(sync).key);
}

/**
 * Refuses a change set that re-keys the records ebb holds: when more than half of them no longer
 * match a source key and as many source records have keys ebb has not seen, the key's text changed
 * (say, an upstream INTEGER 42 became VARCHAR '042'), and the run would remove and recreate them.
 * Skipped for `replace` (it rebuilds the destination anyway) and after a deploy that changed the
 * key columns, which `ebb deploy` refuses on its own: until a run planned under the new key,
 * `keyed_by` still names the old one.
 */
async function checkRekey(sql: Sql, sync: SyncConfig, context: Record<string, unknown>, summary: PlanSummary): Promise<void> {
  const created = summary.reasons.NEW ?? 0;
  if (sync.strategy === 'replace' || created === 0) return;
  const [first] = await sql.runAndRead('plan_rekey', { ...context, kept: false });
  const held = Number(first.held);
  // No record held (a first run): none can have been re-keyed, and the source need not be read again.
  if (held === 0 || created * 2 <= held || (first.keyed_by !== null && first.keyed_by !== keyedBy(sync))) return;
  const [{ kept }] = await sql.runAndRead('plan_rekey', { ...context, kept: true });
  const gone = held - Number(kept);
  if (Math.min(gone, created) * 2 <= held) return;
  const key = sourceContext(sync).key.join(', ');
  throw new DestructiveChangeError(
    `sync ${sync.name}: the text of its keys changed (did the type of ${key} change upstream?): ${gone} of the ${held} records ebb holds in the app ` +
      `no longer match a source key, and ${created} source records have keys ebb has not seen. This run would ${effects(summary)}. ` +
      'Refusing; if the new keys are right, pass --allow-destructive.',
  );
}

type SourceContext = ReturnType<typeof sourceContext>;

/** A sync's place in ebb.yml; undefined for a sync that is only in the catalog. */
export function configIndex(syncs: readonly SyncConfig[], name: string): number | undefined {
  const i = syncs.findIndex((s) => s.name === name);
  return i < 0 ? undefined : i;
}

/**
 * Marks the SQL expressions of the mapping that the warehouse can evaluate row by row, so that a
 * row where one fails becomes a source failure instead of failing the run (DuckDB's try(), which
 * refuses aggregates, window functions, subqueries and volatile functions such as random()), and
 * notes the type each one returns where that describe tells it.
 */
async function markTried(sql: Sql, ctx: SourceContext): Promise<SourceContext> {
  if (!sql.warehouse.dialect.catchesRowErrors) return ctx;
  const mapping = await Promise.all(
    ctx.mapping.map(async (m) => {
      if (m.kind !== 'sql') return m;
      const columns = await sql.describe('select_source', { ...ctx, filter: null, expr: m.value, tried: true }).catch(() => undefined);
      // The tried value is a STRUCT(v <type>) (dialect.sql.njk try_struct).
      const type = /^STRUCT\(v (.*)\)$/.exec(columns?.[0]?.type ?? '')?.[1];
      return { ...m, tried: columns !== undefined, ...(type && { type }) };
    }),
  );
  return { ...ctx, mapping };
}

/** A warehouse error on one line, without DuckDB's quote of the statement (`LINE 1: …`). */
function reason(e: Error): string {
  const lines = e.message.split('\n');
  const end = lines.findIndex((l) => /^LINE \d+:/.test(l));
  return (end < 0 ? lines : lines.slice(0, end)).join(' ').replace(/\s+/g, ' ').trim();
}

/**
 * After the plan statement failed: the mapping expression that fails on the source's rows, as a
 * run error that names its field; undefined when each of them runs (the failure is elsewhere).
 */
async function failingExpression(sql: Sql, sync: SyncConfig, ctx: SourceContext, index?: number): Promise<WarehouseError | undefined> {
  for (const m of ctx.mapping) {
    if (m.kind !== 'sql' || ('tried' in m && m.tried)) continue;
    const failure = await sql.runAndRead('mapping_probe', { ...ctx, expr: m.value }).then(() => undefined, (e: Error) => e);
    if (failure) {
      const path = index === undefined ? `mapping.${m.field} of sync ${sync.name}` : formatPath(['syncs', index, 'mapping', m.field]);
      return new WarehouseError(
        `${path}: the SQL expression failed on a row of the source: ${reason(failure)}. ` +
          'Fix the source, or make the expression return null for such values (TRY_CAST).',
      );
    }
  }
  return undefined;
}

/**
 * The formula of record hashes (dialect.sql.njk record_hash) that the state holds: 2 hashes the
 * mapped values as an ordered array; the first (null in the state) hashed the record's JSON object,
 * whose key order Snowflake does not guarantee. plan_rehash migrates a sync's state to it.
 */
export const HASH_VERSION = 2;

/**
 * How each key column becomes text (dialect.sql.njk key_value), by its type in the source: dates
 * and timestamps in explicit formats, so that no session setting changes a record's key; and
 * which are integers, whose text is exactly as unique as they are (plan.sql.njk groups by them). And
 * whether each mapped value's JSON text is `exact` (dialect.sql.njk values_hash): a value of a
 * type whose JSON reads back unchanged is hashed as it is; any other (a DECIMAL, written with all
 * its digits and read back as a double; an expression of unknown type) is read back first.
 */
async function typed(sql: Sql, ctx: SourceContext): Promise<SourceContext & { key_kinds: Record<string, string> }> {
  const types = new Map((await sql.describe('select_source', { ...ctx, filter: null, expr: null, tried: false })).map((c) => [c.name, c.type.toUpperCase()]));
  const kind = (type = '') =>
    type === 'DATE'
      ? 'date'
      : /TIME ZONE|_LTZ|_TZ/.test(type)
        ? 'timestamp_tz'
        : type.startsWith('TIMESTAMP') || type === 'DATETIME'
          ? 'timestamp'
          : /^U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)$|^(NUMBER|DECIMAL|NUMERIC)\(\d+, ?0\)$/.test(type)
            ? 'integer'
            : 'other';
  const exact = (type: unknown) => typeof type === 'string' && !/DECIMAL|NUMERIC/i.test(type);
  const mapping = ctx.mapping.map((m) => ({ ...m, exact: exact(m.kind === 'column' ? types.get(String(m.value)) : 'type' in m ? m.type : undefined) }));
  return { ...ctx, mapping, key_kinds: Object.fromEntries(ctx.key.map((c) => [c, kind(types.get(c))])) };
}

/** The template context of a sync's source, with what the warehouse says of its columns and expressions. */
export type PreparedSource = Awaited<ReturnType<typeof typed>>;

/**
 * What a plan needs before its statement, side by side (one round trip on Snowflake): the source
 * described (the types of its columns, which of its expressions can be tried row by row), and the
 * sync's state hashed with the current formula (plan_rehash, which needs only the field names).
 */
export async function prepareSource(sql: Sql, sync: SyncConfig): Promise<PreparedSource> {
  const ctx = sourceContext(sync);
  const [source] = await Promise.all([markTried(sql, ctx).then((tried) => typed(sql, tried)), sql.run('plan_rehash', { ...ctx, sync: { name: sync.name }, hash_version: HASH_VERSION })]);
  return source;
}

/** Writes the change set of a run into `sync_changes` and returns its summary. */
export async function plan(sql: Sql, sync: SyncConfig, options: PlanOptions): Promise<PlanSummary> {
  const source = await (options.source ?? prepareSource(sql, sync));
  const context = { ...source, run_id: options.runId, sync: { name: sync.name, strategy: sync.strategy, on_remove: sync.on_remove }, full_resync: options.fullResync ?? false };
  let planned: number;
  try {
    planned = await sql.run('plan', context);
  } catch (e) {
    throw (e instanceof WarehouseError && (await failingExpression(sql, sync, source, options.index))) || e;
  }
  // A change set of no rows (the INSERT's count, as the lock's UPDATE counts) needs no summary
  // read: a round trip less on Snowflake for each run that finds nothing to do.
  const summary = planned === 0 ? { actions: {}, reasons: {}, total: 0 } : await summarise(sql, options.runId);
  // A delete or an untrack is of a record that left the source: the change set takes its record
  // from the state, beside the checks (a change set they refuse is cleared, records and all).
  const removed = summary.actions.delete || summary.actions.untrack ? sql.run('plan_removed', { run_id: options.runId, sync_name: sync.name }) : undefined;
  removed?.catch(() => undefined);
  try {
    await checkEmptySource(sql, sync, context, summary, options);
    if (!options.allowDestructive) await checkRekey(sql, sync, context, summary);
  } catch (e) {
    await removed?.catch(() => undefined);
    await sql.run('clear_run', { table: 'sync_changes', run_id: options.runId });
    throw e;
  }
  await removed;
  return summary;
}

/** The actions of records that left the source; every other action, and a source failure, is of a source row. */
const REMOVALS = new Set(['delete', 'clear', 'untrack']);

/**
 * The empty-source guard: a run that would remove records while the source returns no rows is
 * refused. Under `replace` the records left out of the full set leave the destination (they are
 * only untracked in the state), so an empty full set would empty it. The source is counted only
 * when the change set holds none of its rows: counting runs the source's query once more, which
 * on Snowflake may be a model's whole SQL.
 */
async function checkEmptySource(sql: Sql, sync: SyncConfig, context: Record<string, unknown>, summary: PlanSummary, options: PlanOptions): Promise<void> {
  const removing = sync.strategy === 'replace' ? (summary.actions.untrack ?? 0) : (summary.actions.delete ?? 0) + (summary.actions.clear ?? 0);
  if (removing === 0 || options.allowEmptySource) return;
  if (Object.keys(summary.actions).some((action) => !REMOVALS.has(action))) return;
  const [{ n }] = await sql.runAndRead('source_count', context);
  if (Number(n) > 0) return;
  throw new RunRefusedError(
    'empty_source',
    `sync ${sync.name}: the source returned no rows, so this run would remove all ${removing} records it holds in the app` +
      `${sync.strategy === 'replace' ? ' (replace would empty the destination)' : ''}. Refusing; if the source is really empty, run again with --allow-empty-source.`,
  );
}
