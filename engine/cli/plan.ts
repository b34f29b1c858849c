/** `ebb plan`: a dry run that shows what a run would do, without changing state or calling the app. */
import type { Command } from 'commander';
import { action, common, print, withEngine, type CommonOptions } from './common.ts';
import { planSync } from '../ops/index.ts';
import { toJson } from '../redact.ts';

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
      withEngine(options, async (engine) => {
        const { destructive, ...result } = await planSync(engine, name, options);
        if (destructive) process.stderr.write(`destructive change: ${destructive}\n`);
        if (options.json) {
          process.stdout.write(toJson(result, 2) + '\n');
          return;
        }
        process.stdout.write(`${result.sync} (${result.strategy}): ${result.total} records need action\n`);
        print(Object.entries(result.actions).map(([a, n]) => ({ action: a, records: n })), {});
        process.stdout.write('\nby reason:\n');
        print(Object.entries(result.reasons).map(([r, n]) => ({ reason: r, records: n })), {});
        if (result.samples.length > 0) {
          process.stdout.write(`\nsample (first ${result.samples.length}):\n`);
          print(result.samples, {}, ['record_key', 'action', 'apply_reason', 'source_error', 'transformed_record']);
        }
      }),
    ),
  );
}
