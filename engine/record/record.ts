/** Record: fold a run's outcomes into history, state, the run row and the sync's health. */
import { HASH_VERSION } from '../plan/plan.ts';
import type { Sql } from '../warehouse/sql.ts';

export type Health = 'HEALTHY' | 'INCOMPLETE' | 'FAILED' | 'DELAYED';

/** Records per final apply_state in one run. */
export interface RunCounts {
  /** Records the app received and accepted. */
  succeeded: number;
  failed: number;
  delayed: number;
  /** Records that `ebb skip` kept out of the run. */
  skipped: number;
  source_failures: number;
  /** Records of the sync in doubt after this run (NEEDS_REVIEW, from this run or earlier ones): a lookup or a person decides. */
  needs_review: number;
  /** Records that left the source and that ebb stopped tracking, without a request (on_remove: none). */
  untracked: number;
}

/** The most common error of a run's failed records. */
export interface TopError {
  error: string;
  /** Records that failed with this error. */
  records: number;
  /** Records that failed in all (refused by the app, and source failures). */
  failures: number;
}

/** Health from a run's counts (SPEC §4). A source failure is an unresolved failure; an untrack is not a success. */
export function healthOf(counts: RunCounts, error: string | null): Health {
  if (error) return 'FAILED';
  const failures = counts.failed + counts.source_failures + counts.needs_review;
  if (failures > 0) return counts.succeeded > 0 ? 'INCOMPLETE' : 'FAILED';
  if (counts.delayed > 0) return 'DELAYED';
  return 'HEALTHY';
}

/** The message of a history row's error: a plugin's error is JSON (`{kind, message}`), a source failure's is text. */
function errorMessage(text: unknown): string {
  if (text === null || text === undefined) return '(no message)';
  try {
    const error = JSON.parse(String(text)) as { message?: unknown };
    if (typeof error?.message === 'string') return error.message;
  } catch {
    // plain text
  }
  return String(text);
}

/** The most common error of each run that has failed records, by run id. */
export async function topErrors(sql: Sql, runIds: string[]): Promise<Map<string, TopError>> {
  if (runIds.length === 0) return new Map();
  const rows = await sql.runAndRead('run_top_errors', { run_ids: runIds });
  return new Map(rows.map((r) => [String(r.run_id), { error: errorMessage(r.error), records: Number(r.n), failures: Number(r.failures) }]));
}

/**
 * Writes history and state in bulk, then the run's totals and the sync's health; with `keyedBy`
 * (a run that planned), the key columns that the record state is now keyed by (see plan_rekey).
 * `empty` says that the run holds no row in ebb's work tables (its plan ended with an empty change
 * set, so nothing was sent): there is nothing to fold into history and state, nor to clear, and
 * only the totals and the health are written (three round trips less on Snowflake, for each run
 * that finds nothing to do).
 */
export async function recordRun(sql: Sql, run: { runId: string; syncName: string; planned: Record<string, number>; error: string | null; idempotentCreate: boolean; keyedBy?: string | null; empty?: boolean }) {
  const ctx = { run_id: run.runId };
  if (!run.empty) {
    await sql.run('record_history', { ...ctx, idempotent_create: run.idempotentCreate });
    await sql.run('record_state', { ...ctx, hash_version: HASH_VERSION });
  }
  // With history and state written, the change set goes, beside the count of what they hold: once
  // it is gone, nothing of this run is left to recover if the process dies now.
  const [counted] = await Promise.all([sql.runAndRead('run_counts', { ...ctx, sync_name: run.syncName }), !run.empty && sql.run('clear_run', { table: 'sync_changes', ...ctx })]);
  const byState = Object.fromEntries(counted.map((r) => [String(r.apply_state), Number(r.n)]));
  const counts: RunCounts = {
    succeeded: byState.SUCCESS ?? 0,
    failed: byState.FAILED ?? 0,
    delayed: byState.DELAYED ?? 0,
    skipped: byState.SKIPPED ?? 0,
    source_failures: byState.SOURCE_FAILURE ?? 0,
    needs_review: byState.NEEDS_REVIEW ?? 0,
    untracked: byState.UNTRACKED ?? 0,
  };
  let health = healthOf(counts, run.error);
  // Records left in doubt by any run keep the sync from being HEALTHY until they are resolved.
  const fresh = counts.needs_review;
  counts.needs_review = byState.IN_DOUBT ?? 0;
  if (counts.needs_review > 0 && (health === 'HEALTHY' || health === 'DELAYED')) health = 'INCOMPLETE';
  // The run's other work tables then go together (one round trip on Snowflake).
  if (!run.empty) await Promise.all(['sync_outcomes', 'sync_batch_outcomes', 'sync_inflight'].map((table) => sql.run('clear_run', { table, ...ctx })));
  // The run row keeps the untracked records in `planned` (each untrack is planned and done at once).
  const { needs_review: _review, untracked: _untracked, ...columns } = counts;
  // The run row, the sync's health and the top error are independent: one round trip on Snowflake.
  const [, , topError] = await Promise.all([
    sql.run('run_finish', { run_id: run.runId, status: health, health, planned: JSON.stringify(run.planned), ...columns, failed: counts.failed + fresh, error: run.error }),
    sql.run('sync_set_health', { sync_name: run.syncName, health, run_id: run.runId, keyed_by: run.keyedBy ?? null }),
    counts.failed + counts.source_failures > 0 ? topErrors(sql, [run.runId]).then((errors) => errors.get(run.runId) ?? null) : null,
  ]);
  return { counts, health, topError };
}
