/** `ebb resync`, `ebb skip` and `ebb resolve`: manual control of single records, traced in history. */
import type { Command } from 'commander';
import { action, common, print, withEngine, type CommonOptions } from './common.ts';
import { listInDoubt, resolveRecords, resyncRecords, skipRecords } from '../ops/index.ts';

export function register(program: Command): void {
  common(
    program
      .command('resync')
      .description('send records again in the next run, changed or not (all records without --key; never records in doubt)')
      .argument('<sync>')
      .option('--key <key...>', 'the record keys to send again'),
    false,
  ).action(
    action(async (name: string, options: CommonOptions & { key?: string[] }) =>
      withEngine(options, async (engine) => {
        const { marked: n, in_doubt: left } = await resyncRecords(engine, name, { keys: options.key });
        process.stdout.write(`${name}: ${n} record${n === 1 ? '' : 's'} will be sent again in the next run\n`);
        if (left.length > 0) process.stdout.write(`${name}: ${left.length} record${left.length === 1 ? ' is' : 's are'} in doubt and left alone: see \`ebb resolve ${name}\`\n`);
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
      withEngine(options, async (engine) => {
        const { skipped: n } = await skipRecords(engine, name, { keys: options.key, always: options.always });
        process.stdout.write(`${name}: ${n} record${n === 1 ? '' : 's'} skipped ${options.always ? 'until `ebb resync`' : 'until they change'}\n`);
      }),
    ),
  );
  common(
    program
      .command('resolve')
      .description('settle records in doubt (NEEDS_REVIEW): list them, or say whether the app holds them')
      .argument('<sync>')
      .option('--key <key...>', 'the record keys to settle')
      .option('--app-id <id...>', 'the app holds them: their identifiers in the app, one per --key, in order')
      .option('--not-in-app', 'the app does not hold them: the next run creates them'),
  ).action(
    action(async (name: string, options: CommonOptions & { key?: string[]; appId?: string[]; notInApp?: boolean }) =>
      withEngine(options, async (engine) => {
        if (!options.appId && !options.notInApp) {
          const rows = await listInDoubt(engine, name, options.key);
          print(rows, options, ['record_key', 'action', 'record']);
          if (!options.json && rows.length > 0) {
            process.stdout.write(`\nFor each: find it in the app, then \`ebb resolve ${name} --key K --app-id ID\` if it is there, or \`--not-in-app\` if it is not.\n`);
          }
          return;
        }
        const { resolved: n } = await resolveRecords(engine, name, { keys: options.key, appIds: options.appId, notInApp: options.notInApp });
        process.stdout.write(
          `${name}: ${n} record${n === 1 ? '' : 's'} resolved: ${options.notInApp ? 'the next run creates them' : 'they are in the app under these ids (the next run updates them where the strategy does)'}\n`,
        );
      }),
    ),
  );
}
