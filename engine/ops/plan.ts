/** What a run of a sync would do, as `ebb plan` shows it: nothing changes, no app is called. */
import type { Engine } from '../engine.ts';
import { selectSyncs } from '../engine.ts';
import { configIndex, plan, prepareSource, type PlanSummary } from '../plan/plan.ts';
import { newRunId } from '../run.ts';
import { catalogEntry } from '../catalog/lifecycle.ts';
import { assessChange, describeChange, type DestructiveChange } from '../catalog/destructive.ts';
import { DestructiveChangeError } from '../errors.ts';
import { validateProject } from '../config/validate.ts';
import type { Row } from '../warehouse/warehouse.ts';

export interface PlanOptions {
  /** How many sample records to return (10 without). */
  limit?: number;
  fullResync?: boolean;
  /** Plan even a destructive change (a new key, strategy or destination); `destructive` then says what it does. */
  allowDestructive?: boolean;
}

/** The shape of `ebb plan --json`, with the destructive change that was allowed, if any. */
export interface SyncPlan extends PlanSummary {
  sync: string;
  strategy: string;
  samples: Row[];
  /** What the change since the last deploy deletes, orphans or recreates; absent when it is not destructive. */
  destructive?: string;
}

/** Plans one sync of the code against the warehouse; a destructive change is refused without `allowDestructive`. */
export async function planSync(engine: Engine, name: string, options: PlanOptions = {}): Promise<SyncPlan> {
  const { project } = engine;
  const [sync] = selectSyncs(project, [name]);
  // The deployed definition and what the plan needs first (prepareSource) are asked for beside
  // the checks of `ebb validate` (one round trip on Snowflake); a problem the checks find is
  // reported as validate reports it (exit 3).
  const deployed = catalogEntry(engine.sql, sync.name);
  const source = prepareSource(engine.sql, sync);
  for (const read of [deployed, source]) read.catch(() => undefined);
  let change: DestructiveChange | undefined;
  try {
    await validateProject(engine.sql, project.config.syncs, { only: [name], engine });
    // The code against the deployed definition, as `ebb deploy` compares them.
    const entry = (await deployed) ?? (sync.renamed_from ? await catalogEntry(engine.sql, sync.renamed_from) : undefined);
    change = entry?.definition && entry.origin === 'code' ? await assessChange(engine, entry.definition, sync, entry.name) : undefined;
    if (change && !options.allowDestructive) {
      throw new DestructiveChangeError(`${describeChange(change)} Refusing; pass --allow-destructive to see the plan (and to \`ebb deploy\` or \`ebb run\` to accept the change).`);
    }
  } catch (e) {
    // The command ends here: the statements started beside the checks (prepareSource's rehash
    // among them) end first, so that none is cut off when the connection closes.
    await Promise.allSettled([deployed, source]);
    throw e;
  }
  const runId = `plan-${newRunId()}`;
  let summary: PlanSummary | undefined;
  try {
    summary = await plan(engine.sql, sync, { runId, source, fullResync: options.fullResync, allowEmptySource: true, allowDestructive: options.allowDestructive, index: configIndex(project.config.syncs, sync.name) });
    const samples = summary.total === 0 ? [] : await engine.sql.runAndRead('plan_sample', { run_id: runId, limit: options.limit ?? 10 });
    return { sync: sync.name, strategy: sync.strategy, ...summary, samples, ...(change && { destructive: describeChange(change) }) };
  } finally {
    // An empty change set left no row to clear.
    if (summary?.total !== 0) await engine.sql.run('clear_run', { table: 'sync_changes', run_id: runId });
  }
}
