/** `ebb status`: every sync with its status, health, last run and counts. */
import type { Command } from 'commander';
import { action, common, print, withEngine, type CommonOptions } from './common.ts';
import { registerSyncs } from '../engine.ts';

export function register(program: Command): void {
  common(program.command('status').description('every sync with its status, health, last run and counts')).action(
    action(async (options: CommonOptions) =>
      withEngine(options, async (engine) => {
        await registerSyncs(engine);
        const rows = await engine.sql.runAndRead('status_list');
        print(rows, options, ['sync_name', 'status', 'health', 'schedule', 'last_run_started_at', 'succeeded', 'failed', 'delayed', 'source_failures', 'records', 'failing_records', 'last_error']);
      }),
    ),
  );
}
