/** `ebb history <sync>`: the audit trail of a sync's records. */
import type { Command } from 'commander';
import { action, common, print, withEngine, type CommonOptions } from './common.ts';
import { recordHistory } from '../ops/index.ts';

export function register(program: Command): void {
  common(
    program
      .command('history')
      .description('the audit trail: what was sent, when, and with what result')
      .argument('<sync>')
      .option('--key <key...>', 'only these record keys')
      .option('--run <run_id>', 'only this run')
      .option('--failed', 'only records that did not succeed')
      .option('--limit <n>', 'how many rows', (v) => Number.parseInt(v, 10), 50),
  ).action(
    action(async (name: string, options: CommonOptions & { key?: string[]; run?: string; failed?: boolean; limit: number }) =>
      withEngine(options, async (engine) => {
        const rows = await recordHistory(engine, { sync: name, keys: options.key, runId: options.run, failed: options.failed, limit: options.limit });
        print(rows, options, ['recorded_at', 'run_id', 'record_key', 'action', 'apply_reason', 'apply_state', 'app_identifier', 'result']);
      }, { readOnly: true }),
    ),
  );
}
