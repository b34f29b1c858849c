/** `ebb plan`: a dry run that shows what a run would do, without changing state or calling the app. */
import type { Command } from 'commander';
import { action, common, print, withEngine, type CommonOptions } from './common.ts';
import { selectSyncs } from '../engine.ts';
import { configIndex, plan } from '../plan/plan.ts';
import { newRunId } from '../run.ts';
import { toJson } from '../redact.ts';
import { readCatalog } from '../catalog/catalog.ts';
import { assessChange, describeChange } from '../catalog/destructive.ts';
import { DestructiveChangeError } from '../errors.ts';
import { validateProject } from '../config/validate.ts';

export function register(program: Command): void {
  common(
    program
      .command('plan')
      .description('dry run: counts per action and reason, with sample records; changes no state and calls no app')
      .argument('<sync>', 'the sync to plan')
      .option('--limit <n>', 'how many sample records to show', (v) => Number.parseInt(v, 10), 10)
      .option('--full-resync', 'plan as if every record had to be sent again')
      .option('--allow-destructive', 'show the plan even when it deletes, orphans or recreates the records the sync holds (a new key, strategy or destination)'),
  ).action(
    action(async (name: string, options: CommonOptions & { limit: number; fullResync?: boolean; allowDestructive?: boolean }) =>
      withEngine(options, async (engine, project) => {
        const [sync] = selectSyncs(project, [name]);
        // The checks of `ebb validate` for this sync: a problem is reported as validate reports it (exit 3).
        await validateProject(engine.sql, project.config.syncs, [name], engine);
        // The code against the deployed definition, as `ebb deploy` compares them.
        const catalog = await readCatalog(engine.sql);
        const entry = catalog.find((e) => e.name === sync.name) ?? catalog.find((e) => e.name === sync.renamed_from);
        const change = entry?.definition && entry.origin === 'code' ? await assessChange(engine, entry.definition, sync, entry.records, entry.name) : undefined;
        if (change && !options.allowDestructive) {
          throw new DestructiveChangeError(`${describeChange(change)} Refusing; pass --allow-destructive to see the plan (and to \`ebb deploy\` or \`ebb run\` to accept the change).`);
        }
        if (change) process.stderr.write(`destructive change: ${describeChange(change)}\n`);
        const runId = `plan-${newRunId()}`;
        try {
          const summary = await plan(engine.sql, sync, { runId, fullResync: options.fullResync, allowEmptySource: true, allowDestructive: options.allowDestructive, index: configIndex(project.config.syncs, sync.name) });
          const samples = await engine.sql.runAndRead('plan_sample', { run_id: runId, limit: options.limit });
          if (options.json) {
            process.stdout.write(toJson({ sync: sync.name, strategy: sync.strategy, ...summary, samples }, 2) + '\n');
            return;
          }
          process.stdout.write(`${sync.name} (${sync.strategy}): ${summary.total} records need action\n`);
          print(Object.entries(summary.actions).map(([a, n]) => ({ action: a, records: n })), {});
          process.stdout.write('\nby reason:\n');
          print(Object.entries(summary.reasons).map(([r, n]) => ({ reason: r, records: n })), {});
          if (samples.length > 0) {
            process.stdout.write(`\nsample (first ${samples.length}):\n`);
            print(samples, {}, ['record_key', 'action', 'apply_reason', 'source_error', 'transformed_record']);
          }
        } finally {
          await engine.sql.run('clear_run', { table: 'sync_changes', run_id: runId });
        }
      }),
    ),
  );
}
