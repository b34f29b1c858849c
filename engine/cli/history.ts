/** `ebb history <sync>`: the audit trail of a sync's records. */
import type { Command } from 'commander';
import { action, common, print, withEngine, type CommonOptions } from './common.ts';
import { namesOf } from '../catalog/catalog.ts';
import { parseJson } from '../../plugins/shared/json.ts';

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
      withEngine(options, async (engine, project) => {
        const names = await namesOf(engine, project, name);
        const rows = (
          await engine.sql.runAndRead('history_list', { names, keys: options.key ?? null, run_id: options.run ?? null, failed: options.failed ?? false, limit: options.limit })
        ).map((r) => ({ ...r, result: parse(r.result), transformed_record: parse(r.transformed_record) }));
        print(rows, options, ['recorded_at', 'run_id', 'record_key', 'action', 'apply_reason', 'apply_state', 'app_identifier', 'result']);
      }, { readOnly: true }),
    ),
  );
}

/**
 * Parsed losslessly: history shows the digits that were sent (plugins/shared/json.ts). Text that is
 * not JSON (a NaN that an older ebb stored) is shown as it is.
 */
function parse(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  try {
    return parseJson(v);
  } catch {
    return v;
  }
}
