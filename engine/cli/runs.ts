/** `ebb runs <sync>`: the sync's executions, newest first. */
import type { Command } from 'commander';
import { action, common, print, withEngine, type CommonOptions } from './common.ts';
import { listRuns } from '../ops/index.ts';

export function register(program: Command): void {
  common(
    program
      .command('runs')
      .description('the executions of a sync: start, duration, counts and error')
      .argument('<sync>')
      .option('--limit <n>', 'how many runs', (v) => Number.parseInt(v, 10), 20),
  ).action(
    action(async (name: string, options: CommonOptions & { limit: number }) =>
      withEngine(options, async (engine) => {
        const rows = await listRuns(engine, { sync: name, limit: options.limit });
        print(rows, options, ['run_id', 'trigger', 'status', 'started_at', 'duration_s', 'planned', 'succeeded', 'failed', 'delayed', 'skipped', 'source_failures', 'untracked', 'error']);
      }, { readOnly: true }),
    ),
  );
}
