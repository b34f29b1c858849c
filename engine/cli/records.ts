/** `ebb resync`, `ebb skip` and `ebb resolve`: manual control of single records, traced in history. */
import type { Command } from 'commander';
import { action, common, print, withEngine, type CommonOptions } from './common.ts';
import { selectSyncs } from '../engine.ts';
import type { Engine } from '../engine.ts';
import { newRunId } from '../run.ts';
import { EbbError, UsageError } from '../errors.ts';
import { userInfo } from 'node:os';

/** Keys of records in doubt (NEEDS_REVIEW) among `keys`, or among all the sync's records. */
async function inDoubt(engine: Engine, name: string, keys: string[] | null): Promise<string[]> {
  return (await engine.sql.runAndRead('state_in_doubt', { sync_name: name, keys })).map((r) => String(r.record_key));
}

/** Sending a record in doubt again could create it twice: only `ebb resolve` settles it. */
async function refuseInDoubt(engine: Engine, name: string, keys: string[], command: string): Promise<void> {
  const doubtful = await inDoubt(engine, name, keys);
  if (doubtful.length === 0) return;
  throw new EbbError(
    `${name}: ${doubtful.join(', ')} ${doubtful.length === 1 ? 'is' : 'are'} in doubt (NEEDS_REVIEW): the app may hold ${doubtful.length === 1 ? 'it' : 'them'} already, ` +
      `so \`ebb ${command}\` could create ${doubtful.length === 1 ? 'it' : 'them'} twice. Check the app, then run ` +
      `\`ebb resolve ${name} --key K --app-id ID\` (it is there) or \`ebb resolve ${name} --key K --not-in-app\` (it is not)`,
  );
}

async function mark(engine: Engine, name: string, applyState: string, command: string, keys: string[] | null): Promise<number> {
  const ctx = { sync_name: name, apply_state: applyState, keys };
  if (keys) await refuseInDoubt(engine, name, keys, command);
  if (keys && applyState === 'SKIPPED_ALWAYS') await engine.sql.run('state_insert_marked', ctx);
  const n = await engine.sql.run('state_mark', ctx);
  await engine.sql.run('state_mark_history', { ...ctx, run_id: `${command}-${newRunId()}`, action: command, by: userInfo().username });
  return n;
}

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
      withEngine(options, async (engine, project) => {
        selectSyncs(project, [name]);
        const n = await mark(engine, name, 'RESYNC_REQUESTED', 'resync', options.key ?? null);
        process.stdout.write(`${name}: ${n} record${n === 1 ? '' : 's'} will be sent again in the next run\n`);
        const left = options.key ? [] : await inDoubt(engine, name, null);
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
      withEngine(options, async (engine, project) => {
        selectSyncs(project, [name]);
        if (!options.appId && !options.notInApp) {
          const rows = await engine.sql.runAndRead('state_in_doubt', { sync_name: name, keys: options.key ?? null });
          print(rows.map((r) => ({ record_key: r.record_key, action: r.last_action, record: r.record })), options, ['record_key', 'action', 'record']);
          if (!options.json && rows.length > 0) {
            process.stdout.write(`\nFor each: find it in the app, then \`ebb resolve ${name} --key K --app-id ID\` if it is there, or \`--not-in-app\` if it is not.\n`);
          }
          return;
        }
        if (options.appId && options.notInApp) throw new UsageError('give either --app-id or --not-in-app');
        if (!options.key) throw new UsageError('name the records with --key');
        if (options.appId && options.appId.length !== options.key.length) throw new UsageError(`give one --app-id per --key: ${options.key.length} keys, ${options.appId.length} ids`);
        const doubtful = new Set(await inDoubt(engine, name, options.key));
        const notInDoubt = options.key.filter((k) => !doubtful.has(k));
        if (notInDoubt.length > 0) throw new UsageError(`${name}: ${notInDoubt.join(', ')} ${notInDoubt.length === 1 ? 'is' : 'are'} not in doubt; \`ebb resolve ${name}\` lists the records that are`);
        const resolutions = options.key.map((key, i) => ({ key, app_id: options.appId?.[i] ?? null }));
        await engine.sql.run('state_resolve', { sync_name: name, resolutions });
        const note = options.notInApp ? 'not in the app: the next run creates it' : 'in the app under this identifier';
        const notes = options.key.map((key) => ({ key, note }));
        await engine.sql.run('state_resolve_history', { sync_name: name, notes, run_id: `resolve-${newRunId()}`, action: 'resolve', by: userInfo().username });
        const n = resolutions.length;
        process.stdout.write(
          `${name}: ${n} record${n === 1 ? '' : 's'} resolved: ${options.notInApp ? 'the next run creates them' : 'they are in the app under these ids (the next run updates them where the strategy does)'}\n`,
        );
      }),
    ),
  );
}
