/** `ebb status`: every sync with its status, health, last run and counts. */
import type { Command } from 'commander';
import { action, common, print, withEngine, type CommonOptions } from './common.ts';
import { listSyncs } from '../ops/syncs.ts';
import { topErrorText } from './progress.ts';

export function register(program: Command): void {
  common(program.command('status').description('every sync with its status, health, last run and counts')).action(
    action(async (options: CommonOptions) =>
      withEngine(options, async (engine) => {
        const rows = await listSyncs(engine);
        print(rows, options, ['sync_name', 'status', 'health', 'schedule', 'last_run_started_at', 'succeeded', 'failed', 'delayed', 'source_failures', 'records', 'failing_records', 'last_error']);
        if (options.json) return;
        // What the table cannot hold: the most common error of each failing sync, overrides that were not applied, alerts firing.
        for (const row of rows) {
          if (row.top_error) process.stdout.write(`${row.sync_name}: most common error of its last run: ${topErrorText(row.sync_name, String(row.last_run_id), row.top_error)}\n`);
          for (const issue of row.override_issues ?? []) process.stdout.write(`${row.sync_name}: warning: ${issue}\n`);
          for (const alert of row.alerts_firing) process.stdout.write(`${row.sync_name}: alert FIRING: ${alert.rule}: ${alert.message}\n`);
        }
      }, { readOnly: true }),
    ),
  );
}
