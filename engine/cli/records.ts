/** `ebb resync` and `ebb skip`: manual control of single records, traced in history. */
import type { Command } from 'commander';
import { action, common, withEngine, type CommonOptions } from './common.ts';
import { selectSyncs } from '../engine.ts';
import type { Engine } from '../engine.ts';
import { newRunId } from '../run.ts';
import { UsageError } from '../errors.ts';
import { userInfo } from 'node:os';

async function mark(engine: Engine, name: string, applyState: string, command: string, keys: string[] | null): Promise<number> {
  const ctx = { sync_name: name, apply_state: applyState, keys };
  if (keys && applyState === 'SKIPPED_ALWAYS') await engine.sql.run('state_insert_marked', ctx);
  const n = await engine.sql.run('state_mark', ctx);
  await engine.sql.run('state_mark_history', { ...ctx, run_id: `${command}-${newRunId()}`, action: command, by: userInfo().username });
  return n;
}

export function register(program: Command): void {
  common(
    program
      .command('resync')
      .description('send records again in the next run, changed or not (all records without --key)')
      .argument('<sync>')
      .option('--key <key...>', 'the record keys to send again'),
    false,
  ).action(
    action(async (name: string, options: CommonOptions & { key?: string[] }) =>
      withEngine(options, async (engine, project) => {
        selectSyncs(project, [name]);
        const n = await mark(engine, name, 'RESYNC_REQUESTED', 'resync', options.key ?? null);
        process.stdout.write(`${name}: ${n} record${n === 1 ? '' : 's'} will be sent again in the next run\n`);
      }),
    ),
  );
  common(
    program
      .command('skip')
      .description('stop sending records: once (until they change) or --always (until resync)')
      .argument('<sync>')
      .requiredOption('--key <key...>', 'the record keys to skip')
      .option('--always', 'skip them in every run until `ebb resync`'),
    false,
  ).action(
    action(async (name: string, options: CommonOptions & { key: string[]; always?: boolean }) =>
      withEngine(options, async (engine, project) => {
        selectSyncs(project, [name]);
        const n = await mark(engine, name, options.always ? 'SKIPPED_ALWAYS' : 'SKIPPED_ONCE', 'skip', options.key);
        if (n < options.key.length && !options.always) {
          throw new UsageError(`${name}: ${options.key.length - n} of the keys are not in the sync's state; skip --always can skip a record ebb has not seen yet`);
        }
        process.stdout.write(`${name}: ${n} record${n === 1 ? '' : 's'} skipped ${options.always ? 'until `ebb resync`' : 'until they change'}\n`);
      }),
    ),
  );
}
