/** `ebb run`: run syncs once, with honest exit codes and a stable `--json` contract. */
import type { Command } from 'commander';
import { action, common, withEngine, type CommonOptions } from './common.ts';
import type { Trigger } from '../run.ts';
import { UsageError } from '../errors.ts';
import { progress } from './progress.ts';
import { runSyncs } from '../ops/index.ts';
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
        const bar = options.json ? undefined : progress();
        try {
          const summary = await runSyncs(
            engine,
            { names, all: options.all, select: options.select, dbtModels: options.dbtModels },
            {
              trigger: options.trigger,
              fullResync: options.fullResync,
              allowEmptySource: options.allowEmptySource,
              allowDestructive: options.allowDestructive,
              warn: (message) => process.stderr.write(`warning: ${message}\n`),
              onProgress: (e) => bar?.update(e),
              onResult: (result) => bar?.done(result),
              onRefused: (refusal, skipped) => bar?.say(`${skipped ? 'skipped' : 'refused'}: ${refusal.reason}`),
            },
          );
          if (options.dbtModels !== undefined && summary.runs.length + summary.skipped.length === 0) {
            process.stderr.write(`note: no deployed sync reads the dbt models ${options.dbtModels.join(', ') || '(none given)'}; nothing to run\n`);
          }
          if (options.json) process.stdout.write(toJson(summary, 2) + '\n');
          return summary.exit_code;
        } finally {
          bar?.stop();
        }
      });
    }),
  );
}
