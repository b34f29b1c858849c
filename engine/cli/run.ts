/** `ebb run`: run syncs once, with honest exit codes and a stable `--json` contract. */
import type { Command } from 'commander';
import { action, common, withEngine, type CommonOptions } from './common.ts';
import { autoDeploy, heldBack } from '../catalog/deploy.ts';
import { describeChange, type DestructiveChange } from '../catalog/destructive.ts';
import { validateProject } from '../config/validate.ts';
import { effectiveSync, readCatalog } from '../catalog/catalog.ts';
import { runSync, type RunResult, type Trigger } from '../run.ts';
import { DestructiveChangeError, ExitCode, RunRefusedError, UsageError, type RefusalReason } from '../errors.ts';
import { progress } from './progress.ts';
import type { SyncConfig } from '../config/schema.ts';
import { dbtModelMatches } from '../config/dbt.ts';
import { toJson } from '../redact.ts';

const triggers: Trigger[] = ['manual', 'schedule', 'live', 'task', 'api', 'dbt', 'airflow'];

interface RunCliOptions extends CommonOptions {
  all?: boolean;
  select?: string[];
  dbtModels?: string[];
  fullResync?: boolean;
  allowEmptySource?: boolean;
  allowDestructive?: boolean;
  trigger: Trigger;
}

/** The syncs named on the command line, or chosen by `--all` / `--select tag:NAME` / `--dbt-models`, among those deployed. */
export function chooseSyncs(deployed: SyncConfig[], names: string[], options: Pick<RunCliOptions, 'all' | 'select' | 'dbtModels'>): SyncConfig[] {
  if (options.dbtModels !== undefined) {
    if (names.length > 0 || options.all || options.select?.length) throw new UsageError('--dbt-models chooses the syncs itself; do not combine it with sync names, --all or --select');
    // None matching is not an error: a dbt hook or an Airflow task after `dbt build` must not fail for a model without syncs.
    return deployed.filter((s) => s.source.dbt_model !== undefined && options.dbtModels!.some((m) => dbtModelMatches(s.source.dbt_model!, m)));
  }
  if (options.all) return deployed;
  if (options.select?.length) {
    const tags = options.select.map((s) => {
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
    if (!sync) throw new UsageError(`unknown sync "${name}"; the deployed syncs are: ${deployed.map((s) => s.name).join(', ') || '(none)'}`);
    return sync;
  });
}

/** The exit code of a set of runs: the worst of them. */
export function exitCodeOf(results: RunResult[], refused: number): number {
  if (refused > 0 || results.some((r) => r.health === 'FAILED')) return ExitCode.failed;
  if (results.some((r) => r.health === 'INCOMPLETE')) return ExitCode.incomplete;
  return ExitCode.healthy;
}

export function register(program: Command): void {
  common(
    program
      .command('run')
      .description('run syncs once: plan in the warehouse, send the changes, record every outcome')
      .argument('[syncs...]', 'the syncs to run')
      .option('--all', 'run every sync (paused syncs are skipped and listed)')
      .option('--select <selector...>', 'run the syncs with a tag: tag:NAME')
      .option('--dbt-models <models>', 'run every sync whose source is one of these dbt models (comma separated, repeatable); none matching exits 0', (v: string, prev: string[] = []) => [...prev, ...v.split(',').map((m) => m.trim()).filter(Boolean)])
      .option('--full-resync', 'send every record again, changed or not')
      .option('--allow-empty-source', 'allow a run whose source is empty to remove every record from the app')
      .option('--allow-destructive', 'accept a change of key, strategy or destination, or keys whose text changed upstream: records may be deleted, orphaned or recreated')
      .option('--trigger <trigger>', `what started the run: ${triggers.join(', ')}`, 'manual'),
  ).action(
    action(async (names: string[], options: RunCliOptions) => {
      if (!triggers.includes(options.trigger)) throw new UsageError(`--trigger ${options.trigger}: use one of ${triggers.join(', ')}`);
      return withEngine(options, async (engine) => {
        const warn = (message: string) => process.stderr.write(`warning: ${message}\n`);
        // A destructive change is not deployed: the sync is refused below, or named in a warning.
        const held = new Map<string, DestructiveChange>();
        await autoDeploy(engine, warn, { allowDestructive: options.allowDestructive, onHeld: (c) => held.set(c.sync, c) });
        // What runs is what the catalog holds: the deployed definitions with the admin's overrides.
        const catalog = await readCatalog(engine.sql);
        const deployed = catalog.map(effectiveSync).filter((s): s is SyncConfig => s !== null);
        const syncs = chooseSyncs(deployed, names, options);
        for (const change of held.values()) if (!syncs.some((s) => s.name === change.sync)) warn(heldBack(change));
        for (const entry of catalog.filter((e) => syncs.some((s) => s.name === e.name))) {
          for (const issue of entry.overrideIssues) process.stderr.write(`warning: sync ${entry.name}: ${issue.path}: ${issue.message}\n`);
        }
        // The same checks as `ebb validate`, for the syncs about to run: nothing is sent when one fails.
        await validateProject(engine.sql, engine.project.config.syncs, syncs.map((s) => s.name), engine);
        if (options.dbtModels !== undefined && syncs.length === 0) process.stderr.write(`note: no deployed sync reads the dbt models ${options.dbtModels.join(', ') || '(none given)'}; nothing to run\n`);
        const results: RunResult[] = [];
        const skipped: Array<{ sync: string; reason: string; reason_code: RefusalReason }> = [];
        const bar = options.json ? undefined : progress();
        let refused = 0;
        try {
          for (const sync of syncs) {
            try {
              const change = held.get(sync.name);
              if (change) throw new DestructiveChangeError(`${describeChange(change)} Refusing to run it; pass --allow-destructive to accept the change.`);
              const result = await runSync(engine, sync, {
                trigger: options.trigger,
                fullResync: options.fullResync,
                allowEmptySource: options.allowEmptySource,
                allowDestructive: options.allowDestructive,
                onProgress: (e) => bar?.update(e),
              });
              results.push(result);
              bar?.done(result);
            } catch (e) {
              if (!(e instanceof RunRefusedError)) throw e;
              // A sync that its status holds back is skipped by a selection; any other refusal fails the command.
              const skip = e.byStatus && Boolean(options.all || options.select || options.dbtModels);
              skipped.push({ sync: sync.name, reason: e.message, reason_code: e.reason });
              if (!skip) refused += 1;
              bar?.say(`${skip ? 'skipped' : 'refused'}: ${e.message}`);
            }
          }
        } finally {
          bar?.stop();
        }
        const code = exitCodeOf(results, refused);
        if (options.json) process.stdout.write(toJson({ exit_code: code, runs: results, skipped }, 2) + '\n');
        return code;
      });
    }),
  );
}
