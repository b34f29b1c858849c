/** Runs of syncs, as `ebb run` starts them: deploy the code, choose the syncs, check, run each. */
import type { Engine } from '../engine.ts';
import { autoDeploy, heldBack } from '../catalog/deploy.ts';
import { describeChange, type DestructiveChange } from '../catalog/destructive.ts';
import { validateProject } from '../config/validate.ts';
import { effectiveSync, readCatalog } from '../catalog/catalog.ts';
import { runSync, type RunOptions, type RunResult } from '../run.ts';
import { DestructiveChangeError, ExitCode, NotFoundError, RunRefusedError, UsageError, type RefusalReason } from '../errors.ts';
import type { SyncConfig } from '../config/schema.ts';
import { dbtModelMatches } from '../config/dbt.ts';
import { inDependencyOrder, parentsOf } from '../schedule/dependencies.ts';

/** Which syncs to run: by name, or all, or by tag, or by the dbt models they read. */
export interface Selection {
  names?: string[];
  all?: boolean;
  /** `tag:NAME` selectors. */
  select?: string[];
  dbtModels?: string[];
}

export interface TriggerOptions extends Omit<RunOptions, 'onProgress'> {
  /** Called with each warning: a destructive change held back, an override that was not applied. */
  warn?: (message: string) => void;
  /** Called after the plan of each sync with the number of records to send, then as records get outcomes. */
  onProgress?: RunOptions['onProgress'];
}

export interface RunSyncsOptions extends Omit<TriggerOptions, 'runId'> {
  /** Called when a run ends. */
  onResult?: (result: RunResult) => void;
  /** Called when a sync is refused (`skipped`: its status holds it back and a selection skips it). */
  onRefused?: (refusal: Skipped, skipped: boolean) => void;
}

export interface Skipped {
  sync: string;
  reason: string;
  reason_code: RefusalReason;
}

/** The shape of `ebb run --json`. */
export interface RunSummary {
  exit_code: number;
  runs: RunResult[];
  skipped: Skipped[];
}

/** The syncs named, or chosen by `all` / `select: ['tag:NAME']` / `dbtModels`, among those deployed. */
export function chooseSyncs(deployed: SyncConfig[], selection: Selection): SyncConfig[] {
  const names = selection.names ?? [];
  if (selection.dbtModels !== undefined) {
    if (names.length > 0 || selection.all || selection.select?.length) throw new UsageError('--dbt-models chooses the syncs itself; do not combine it with sync names, --all or --select');
    // None matching is not an error: a dbt hook or an Airflow task after `dbt build` must not fail for a model without syncs.
    return deployed.filter((s) => s.source.dbt_model !== undefined && selection.dbtModels!.some((m) => dbtModelMatches(s.source.dbt_model!, m)));
  }
  if (selection.all) return deployed;
  if (selection.select?.length) {
    const tags = selection.select.map((s) => {
      if (!s.startsWith('tag:')) throw new UsageError(`--select ${s}: use --select tag:NAME`);
      return s.slice(4);
    });
    const chosen = deployed.filter((s) => s.tags.some((t) => tags.includes(t)));
    if (chosen.length === 0) throw new UsageError(`no sync has the tag${tags.length > 1 ? 's' : ''} ${tags.join(', ')}`);
    return chosen;
  }
  if (names.length === 0) throw new UsageError('name the syncs to run, or use --all or --select tag:NAME');
  return names.map((name) => {
    const sync = deployed.find((s) => s.name === name);
    if (!sync) throw new NotFoundError('sync', name, `unknown sync "${name}"; the deployed syncs are: ${deployed.map((s) => s.name).join(', ') || '(none)'}`);
    return sync;
  });
}

/** The exit code of a set of runs: the worst of them. */
export function exitCodeOf(results: RunResult[], refused: number): number {
  if (refused > 0 || results.some((r) => r.health === 'FAILED')) return ExitCode.failed;
  if (results.some((r) => r.health === 'INCOMPLETE')) return ExitCode.incomplete;
  return ExitCode.healthy;
}

/**
 * Deploys the code (a destructive change is held back, not deployed), chooses the syncs among
 * those deployed, with the admin's overrides, and checks them as `ebb validate` does.
 */
async function prepare(engine: Engine, selection: Selection, options: TriggerOptions): Promise<{ syncs: SyncConfig[]; held: Map<string, DestructiveChange> }> {
  const warn = options.warn ?? (() => undefined);
  const held = new Map<string, DestructiveChange>();
  const deploy = await autoDeploy(engine, warn, { allowDestructive: options.allowDestructive, onHeld: (c) => held.set(c.sync, c) });
  const catalog = deploy.catalog ?? (await readCatalog(engine.sql));
  const deployed = catalog.map(effectiveSync).filter((s): s is SyncConfig => s !== null);
  // A sync runs after the syncs it depends on (`schedule: { after }`) that run with it.
  const syncs = inDependencyOrder(chooseSyncs(deployed, selection));
  for (const change of held.values()) if (!syncs.some((s) => s.name === change.sync)) warn(heldBack(change));
  for (const entry of catalog.filter((e) => syncs.some((s) => s.name === e.name))) {
    for (const issue of entry.overrideIssues) warn(`sync ${entry.name}: ${issue.path}: ${issue.message}`);
  }
  // Nothing is sent when one of the syncs about to run fails a check.
  await validateProject(engine.sql, engine.project.config.syncs, { only: syncs.map((s) => s.name), engine, checked: deploy.fieldTypes });
  return { syncs, held };
}

async function runOne(engine: Engine, sync: SyncConfig, held: Map<string, DestructiveChange>, options: TriggerOptions): Promise<RunResult> {
  const change = held.get(sync.name);
  if (change) throw new DestructiveChangeError(`${describeChange(change)} Refusing to run it; pass --allow-destructive to accept the change.`);
  const { warn: _warn, ...run } = options;
  return runSync(engine, sync, run);
}

/**
 * Runs one deployed sync once. A refusal (paused, locked, a destructive change…) is a
 * RunRefusedError with its reason; record failures are data in the result.
 */
export async function triggerRun(engine: Engine, name: string, options: TriggerOptions = {}): Promise<RunResult> {
  const { syncs, held } = await prepare(engine, { names: [name] }, options);
  return runOne(engine, syncs[0], held, options);
}

/**
 * Runs the chosen syncs one after the other, each after the syncs it depends on. A sync that its
 * status holds back is skipped by a selection (all, select, dbtModels), and so is a sync whose
 * parent did not end HEALTHY here (the parent's run sets the exit code); any other refusal is
 * listed and fails the exit code.
 */
export async function runSyncs(engine: Engine, selection: Selection, options: RunSyncsOptions = {}): Promise<RunSummary> {
  const { syncs, held } = await prepare(engine, selection, options);
  const runs: RunResult[] = [];
  const skipped: Skipped[] = [];
  let refused = 0;
  /** The health of each sync run (or refused) here so far. */
  const ended = new Map<string, string>();
  for (const sync of syncs) {
    try {
      const unhealthy = parentsOf(sync).filter((p) => ended.has(p) && ended.get(p) !== 'HEALTHY');
      if (unhealthy.length > 0) {
        const why = unhealthy.map((p) => `${p} (${ended.get(p)})`).join(', ');
        throw new RunRefusedError('dependency_unhealthy', `sync ${sync.name} runs after ${why}, which did not end HEALTHY in this command; not run`);
      }
      const result = await runOne(engine, sync, held, options);
      runs.push(result);
      ended.set(sync.name, result.health);
      options.onResult?.(result);
    } catch (e) {
      if (!(e instanceof RunRefusedError)) throw e;
      ended.set(sync.name, 'REFUSED');
      const skip = (e.byStatus && Boolean(selection.all || selection.select || selection.dbtModels)) || e.reason === 'dependency_unhealthy';
      const refusal = { sync: sync.name, reason: e.message, reason_code: e.reason };
      skipped.push(refusal);
      if (!skip) refused += 1;
      options.onRefused?.(refusal, skip);
    }
  }
  return { exit_code: exitCodeOf(runs, refused), runs, skipped };
}
