/** Plan: render the transform and plan statements of a sync, and summarise the change set. */
import type { SyncConfig } from '../config/schema.ts';
import type { Sql } from '../warehouse/sql.ts';
import { RunRefusedError } from '../errors.ts';

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
}

/** Writes the change set of a run into `sync_changes` and returns its summary. */
export async function plan(sql: Sql, sync: SyncConfig, options: PlanOptions): Promise<PlanSummary> {
  const context = { ...sourceContext(sync), run_id: options.runId, sync: { name: sync.name, strategy: sync.strategy, on_remove: sync.on_remove }, full_resync: options.fullResync ?? false };
  await sql.run('plan', context);
  const summary = await summarise(sql, options.runId);
  const removing = (summary.actions.delete ?? 0) + (summary.actions.clear ?? 0);
  if (removing > 0 && !options.allowEmptySource) {
    const [{ n }] = await sql.runAndRead('source_count', context);
    if (Number(n) === 0) {
      await sql.run('clear_run', { table: 'sync_changes', run_id: options.runId });
      throw new RunRefusedError(
        `sync ${sync.name}: the source returned no rows, so this run would remove all ${removing} records it holds in the app. ` +
          'Refusing; if the source is really empty, run again with --allow-empty-source.',
      );
    }
  }
  return summary;
}
