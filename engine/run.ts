/** One run of one sync: plan in the warehouse, apply through the plugin, record the outcomes. */
import { randomBytes } from 'node:crypto';
import type { Sql } from './warehouse/sql.ts';
import type { Row } from './warehouse/warehouse.ts';
import type { SyncConfig } from './config/schema.ts';
import { defaultCapabilities, type Action, type Session } from '../plugins/plugin.ts';
import { parseJson } from '../plugins/shared/json.ts';
import { destinationOf, pluginContext, type Engine } from './engine.ts';
import { configIndex, keyedBy, plan, prepareSource, summarise, type PlanSummary, type PreparedSource } from './plan/plan.ts';
import { applyChanges } from './apply/apply.ts';
import { recordRun, type RunCounts, type Health, type TopError } from './record/record.ts';
import { redact } from './redact.ts';
import { RunRefusedError } from './errors.ts';
import { acquireRunLock, type RunLock } from './run-lock.ts';
import { afterRun, catalogEntry, checkRunnable } from './catalog/lifecycle.ts';
import { runFinished, runStarted } from './alerts/alerts.ts';
import { fullResyncDue } from './schedule/resync.ts';

export type Trigger = 'manual' | 'schedule' | 'live' | 'task' | 'api' | 'dbt' | 'airflow';

export interface RunOptions {
  trigger?: Trigger;
  fullResync?: boolean;
  allowEmptySource?: boolean;
  /** Run even when the keys of most records ebb holds changed (a destructive change). */
  allowDestructive?: boolean;
  /** Called as the run, once it holds the sync's run lock, plans, sends (apply) and records the outcomes. */
  onPhase?: (phase: 'plan' | 'apply' | 'record') => void;
  /** Called after the plan with the number of records to send, then as records get outcomes. */
  onProgress?: (event: { sync: string; planned: number; applied: number }) => void;
  /** Once aborted, no new batch is sent; the batches in flight finish, and the records not sent are recorded DELAYED. */
  signal?: AbortSignal;
  /** The run's id, when the caller needs it before the run ends (an API answers with it at once); a new one without. */
  runId?: string;
}

/** The result of a run: the stable shape of `ebb run --json` (see README). */
export interface RunResult {
  run_id: string;
  sync: string;
  status: Health;
  health: Health;
  planned: Record<string, number>;
  counts: RunCounts;
  duration_ms: number;
  error: string | null;
  /** The most common error of the records that failed, or null when none failed. */
  top_error: TopError | null;
  /** Why records were delayed to the next run, when some were and the run did not fail. */
  note: string | null;
}

const noCounts: RunCounts = { succeeded: 0, failed: 0, delayed: 0, skipped: 0, source_failures: 0, needs_review: 0, untracked: 0 };

function messageOf(e: unknown): string {
  return redact(e instanceof Error ? e.message : String(e));
}

/**
 * What an atomic plugin was given before it committed never landed: all of it goes again. A run
 * that committed has no in-flight marks left, so its outcomes stay.
 */
async function discardUncommitted(engine: Engine, runId: string): Promise<void> {
  for (const table of ['sync_outcomes', 'sync_batch_outcomes']) await engine.sql.run('discard_uncommitted', { table, run_id: runId });
  await engine.sql.run('clear_run', { table: 'sync_inflight', run_id: runId });
}

/**
 * Asks the app about the sync's records in doubt (NEEDS_REVIEW) when the plugin can find records:
 * one found is in the app under that id (an update follows where the strategy updates); one not
 * found is created by this run. A record the app cannot tell about stays in doubt. Each answer is
 * traced in history under `lookup-<run id>`, a failed lookup with its error.
 */
async function findInDoubt(sql: Sql, sync: SyncConfig, runId: string, session: Session, rows: Row[], batchSize: number): Promise<void> {
  if (!session.find) return;
  for (let at = 0; at < rows.length; at += batchSize) {
    const changes = rows.slice(at, at + batchSize).map((r) => ({
      key: String(r.record_key),
      action: (r.last_action ?? 'create') as Action,
      record: (typeof r.record === 'string' ? parseJson(r.record) : (r.record ?? {})) as Record<string, unknown>,
      appId: null,
    }));
    const matches = await session.find(changes);
    const resolutions = matches.flatMap((m) => ('appId' in m ? [{ key: m.key, app_id: m.appId }] : []));
    if (resolutions.length > 0) await sql.run('state_resolve', { sync_name: sync.name, resolutions });
    const notes = matches.map((m) => ({ key: m.key, note: 'error' in m ? `still in doubt: ${m.error}` : m.appId ? 'found in the app' : 'not in the app: this run creates it' }));
    await sql.run('state_resolve_history', { sync_name: sync.name, notes, run_id: `lookup-${runId}`, action: 'lookup', by: 'ebb' });
  }
}

/** A run id that sorts by time: `20261122T210501Z-3fa9c1`. */
export function newRunId(): string {
  return `${new Date().toISOString().replace(/[-:]|\.\d+/g, '')}-${randomBytes(3).toString('hex')}`;
}

/** Runs one sync once. Record failures are data in the result; only a broken warehouse throws. */
export async function runSync(engine: Engine, sync: SyncConfig, options: RunOptions = {}): Promise<RunResult> {
  const { sql } = engine;
  const started = Date.now();
  const runId = options.runId ?? newRunId();
  sql.warehouse.tagRun(sync.name, runId);
  // The sync's status is read beside the statement that takes its lock (one round trip on
  // Snowflake); a run that does not go ahead lets go of the lock at once.
  const entry = catalogEntry(sql, sync.name);
  const locking = acquireRunLock(sql, sync.name, runId);
  locking.catch(() => undefined);
  let lock: RunLock;
  try {
    checkRunnable(await entry, sync.name, options.trigger ?? 'manual');
    const connection = sync.destination.connection;
    if (!engine.project.config.connections[connection] || !engine.project.plugins.has(connection)) {
      throw new RunRefusedError(
        'no_connection',
        `sync ${sync.name}: its connection "${connection}" is not in ebb.yml (the catalog holds this sync, the code does not define its connection); ` +
          `add the connection to ebb.yml, or remove the sync with \`ebb delete ${sync.name} --yes\``,
      );
    }
    lock = await locking;
  } catch (e) {
    await locking.then((held) => held.release(), () => undefined).catch(() => undefined);
    sql.warehouse.tagRun(null);
    throw e;
  }
  // What the plan needs first, asked for at once (see runLocked); its rehash ends before the lock goes.
  const source = prepareSource(sql, sync);
  source.catch(() => undefined);
  try {
    // The lifecycle events go out from here, whoever started the run (CLI, scheduler, worker, server).
    const trigger = options.trigger ?? 'manual';
    const startEvent = runStarted(engine, sync, runId, trigger);
    // A lost lock stops the sending as a SIGTERM does; the run then ends FAILED with the lock's reason.
    const signal = options.signal ? AbortSignal.any([options.signal, lock.signal]) : lock.signal;
    const result = await runLocked(engine, sync, runId, started, { ...options, signal }, lock.signal, source);
    await runFinished(engine, sync, result, trigger, startEvent);
    return result;
  } finally {
    await source.catch(() => undefined);
    // A lock that cannot be released (the warehouse is gone) expires on its own.
    await lock.release().catch(() => undefined);
    sql.warehouse.tagRun(null);
  }
}

async function runLocked(engine: Engine, sync: SyncConfig, runId: string, started: number, options: RunOptions, lockLost: AbortSignal, source: Promise<PreparedSource>): Promise<RunResult> {
  const { sql, project } = engine;
  const connection = sync.destination.connection;
  const plugin = project.plugins.get(connection)!;
  const capabilities = { ...defaultCapabilities, ...plugin.capabilities };
  const destination = destinationOf(engine, sync);
  const idempotentCreate = typeof capabilities.idempotentCreate === 'function' ? capabilities.idempotentCreate(destination) : capabilities.idempotentCreate;
  const record = (id: string, planned: Record<string, number>, error: string | null, keyed = false, empty = false) =>
    recordRun(sql, { runId: id, syncName: sync.name, planned, error, idempotentCreate, keyedBy: keyed ? keyedBy(sync) : null, empty });
  // The run's row and the runs that never finished, beside what the plan needs first (`source`)
  // and the records left in doubt: one round trip on Snowflake.
  const inDoubtNow = () => sql.runAndRead('state_in_doubt', { sync_name: sync.name, keys: null });
  const inDoubtBefore = inDoubtNow();
  inDoubtBefore.catch(() => undefined);
  const [unfinished] = await Promise.all([
    sql.runAndRead('runs_unfinished', { sync_name: sync.name, run_id: runId }),
    sql.run('run_insert', { run_id: runId, sync_name: sync.name, trigger: options.trigger ?? 'manual' }),
  ]);
  // Runs that never finished belong to a process that stopped: record what they did. Their
  // records without an outcome become DELAYED (or NEEDS_REVIEW), and this run sends them again.
  for (const { run_id } of unfinished) {
    if (capabilities.atomicRun) await discardUncommitted(engine, String(run_id));
    const { actions } = await summarise(sql, String(run_id));
    await record(String(run_id), actions, 'interrupted: the process stopped before the run finished');
  }
  const retry = project.config.connections[connection].retry;
  let summary: PlanSummary = { actions: {}, reasons: {}, total: 0 };
  let error: string | null = null;
  let session: Session | undefined;
  // The connection's shared limiter gone (Redis lost): nothing more can be sent, and the run fails.
  let unavailable: Error | undefined;
  const openSession = async () => (session ??= await plugin.open({ ...pluginContext(engine, connection, sync, (e) => (unavailable ??= e)), sync: sync.name, strategy: sync.strategy, destination, fields: Object.keys(sync.mapping) }));
  const batchSize = Math.min(sync.batch_size, capabilities.maxBatchSize ?? Infinity);
  let committed = false;
  let keyed = false;
  let stopped: string | undefined;
  let deferred: string | undefined;
  try {
    options.onPhase?.('plan');
    // Records left in doubt by earlier runs are looked up first, so that this run can finish them
    // (read again if recording an unfinished run changed them).
    const inDoubt = await (unfinished.length > 0 ? inDoubtNow() : inDoubtBefore);
    if (inDoubt.length > 0) await findInDoubt(sql, sync, runId, await openSession(), inDoubt, batchSize);
    const fullResync = options.fullResync || (await fullResyncDue(sql, sync));
    summary = await plan(sql, sync, { runId, source, fullResync, allowEmptySource: options.allowEmptySource, allowDestructive: options.allowDestructive, index: configIndex(project.config.syncs, sync.name) });
    keyed = true;
    const toSend = summary.total - (summary.actions.untrack ?? 0) - (summary.actions.source_failure ?? 0);
    options.onProgress?.({ sync: sync.name, planned: toSend, applied: 0 });
    // replace writes the full set even when it is empty: the destination then becomes empty too.
    if (toSend > 0 || sync.strategy === 'replace') {
      options.onPhase?.('apply');
      ({ stopped, deferred } = await applyChanges({
        sql,
        runId,
        lastSeq: summary.total,
        session: await openSession(),
        strategy: sync.strategy,
        batchSize,
        concurrency: project.config.connections[connection].concurrency,
        retryDelaysMs: retry.delays_seconds.map((s) => s * 1000),
        maxWaitMs: retry.max_wait_seconds * 1000,
        idempotentCreate,
        atomicRun: capabilities.atomicRun,
        deadline: sync.max_run_seconds ? started + sync.max_run_seconds * 1000 : undefined,
        signal: options.signal,
        unavailable: () => unavailable,
        onProgress: (applied) => options.onProgress?.({ sync: sync.name, planned: toSend, applied }),
      }));
      if (stopped) throw new Error(stopped);
    }
    if (session) {
      await session.close(true);
      committed = true;
      // The in-flight marks of an atomic plugin say "not committed yet"; now everything landed.
      if (capabilities.atomicRun) await sql.run('clear_run', { table: 'sync_inflight', run_id: runId });
    }
  } catch (e) {
    error = messageOf(e);
    if (session && !committed) await session.close(false).catch(() => undefined);
    if (capabilities.atomicRun && !committed) await discardUncommitted(engine, runId).catch(() => undefined);
  }
  if (lockLost.aborted) error = messageOf(lockLost.reason) + (error ? `; then: ${error}` : '');
  const result = { run_id: runId, sync: sync.name, planned: summary.actions };
  options.onPhase?.('record');
  try {
    // A plan that ended with an empty change set left no row of this run in ebb's work tables, whatever came after it.
    const { counts, health, topError } = await record(runId, summary.actions, error, keyed, keyed && summary.total === 0);
    await afterRun(sql, sync, health, engine.project.config.catalog.error_after_failures);
    await sql.warehouse.checkpoint();
    const note = !error && deferred && counts.delayed > 0 ? `${counts.delayed} record${counts.delayed === 1 ? '' : 's'} delayed to the next run: ${deferred}` : null;
    return { ...result, status: health, health, counts, duration_ms: Date.now() - started, error, top_error: topError, note };
  } catch (e) {
    // The warehouse refused the outcomes (a full disk, a lost connection): the run failed, and
    // what it did stays in ebb's tables for the next run to record as interrupted.
    const why = `${error ? `${error}; then ` : ''}its outcomes could not be recorded: ${messageOf(e)}. The next run of ${sync.name} records what this one did`;
    return { ...result, status: 'FAILED', health: 'FAILED', counts: noCounts, duration_ms: Date.now() - started, error: why, top_error: null, note: null };
  }
}
