/** Manual control of single records, traced in history: resync, skip, and settling records in doubt. */
import { userInfo } from 'node:os';
import type { Engine } from '../engine.ts';
import { selectSyncs } from '../engine.ts';
import { newRunId } from '../run.ts';
import { RecordsInDoubtError, UsageError } from '../errors.ts';
import type { Row } from '../warehouse/warehouse.ts';

/** Who acted, for the history rows of a manual change; a server passes its caller. */
export interface ActorOptions {
  by?: string;
}

/** Keys of records in doubt (NEEDS_REVIEW) among `keys`, or among all the sync's records. */
async function inDoubt(engine: Engine, name: string, keys: string[] | null): Promise<string[]> {
  return (await engine.sql.runAndRead('state_in_doubt', { sync_name: name, keys })).map((r) => String(r.record_key));
}

/** Sending a record in doubt again could create it twice: only resolving settles it. */
async function refuseInDoubt(engine: Engine, name: string, keys: string[], command: string): Promise<void> {
  const doubtful = await inDoubt(engine, name, keys);
  if (doubtful.length === 0) return;
  throw new RecordsInDoubtError(
    doubtful,
    `${name}: ${doubtful.join(', ')} ${doubtful.length === 1 ? 'is' : 'are'} in doubt (NEEDS_REVIEW): the app may hold ${doubtful.length === 1 ? 'it' : 'them'} already, ` +
      `so \`ebb ${command}\` could create ${doubtful.length === 1 ? 'it' : 'them'} twice. Check the app, then run ` +
      `\`ebb resolve ${name} --key K --app-id ID\` (it is there) or \`ebb resolve ${name} --key K --not-in-app\` (it is not)`,
  );
}

async function mark(engine: Engine, name: string, applyState: string, command: string, keys: string[] | null, by: string | undefined): Promise<number> {
  selectSyncs(engine.project, [name]);
  const ctx = { sync_name: name, apply_state: applyState, keys };
  if (keys) await refuseInDoubt(engine, name, keys, command);
  if (keys && applyState === 'SKIPPED_ALWAYS') await engine.sql.run('state_insert_marked', ctx);
  const n = await engine.sql.run('state_mark', ctx);
  await engine.sql.run('state_mark_history', { ...ctx, run_id: `${command}-${newRunId()}`, action: command, by: by ?? userInfo().username });
  return n;
}

/**
 * Sends records again in the next run, changed or not: these keys, or every record. Records in
 * doubt are refused when named, and left alone (listed in `in_doubt`) otherwise.
 */
export async function resyncRecords(engine: Engine, name: string, options: ActorOptions & { keys?: string[] } = {}): Promise<{ sync: string; marked: number; in_doubt: string[] }> {
  const marked = await mark(engine, name, 'RESYNC_REQUESTED', 'resync', options.keys ?? null, options.by);
  return { sync: name, marked, in_doubt: options.keys ? [] : await inDoubt(engine, name, null) };
}

/**
 * Stops sending records: until they change, or with `always` until they are resynced. Skipping
 * once a key ebb holds no state of is a UsageError (after the others were skipped); `always` can
 * skip a record ebb has not seen yet.
 */
export async function skipRecords(engine: Engine, name: string, options: ActorOptions & { keys: string[]; always?: boolean }): Promise<{ sync: string; skipped: number }> {
  const skipped = await mark(engine, name, options.always ? 'SKIPPED_ALWAYS' : 'SKIPPED_ONCE', 'skip', options.keys, options.by);
  if (skipped < options.keys.length && !options.always) {
    throw new UsageError(`${name}: ${options.keys.length - skipped} of the keys are not in the sync's state; skip --always can skip a record ebb has not seen yet`);
  }
  return { sync: name, skipped };
}

/** The records in doubt (NEEDS_REVIEW) of a sync, or those among `keys`: key, last action, record. */
export async function listInDoubt(engine: Engine, name: string, keys?: string[]): Promise<Row[]> {
  selectSyncs(engine.project, [name]);
  const rows = await engine.sql.runAndRead('state_in_doubt', { sync_name: name, keys: keys ?? null });
  return rows.map((r) => ({ record_key: r.record_key, action: r.last_action, record: r.record }));
}

/**
 * Settles records in doubt: the app holds them under `appIds` (one per key, in order), or with
 * `notInApp` it does not and the next run creates them.
 */
export async function resolveRecords(engine: Engine, name: string, options: ActorOptions & { keys?: string[]; appIds?: string[]; notInApp?: boolean }): Promise<{ sync: string; resolved: number }> {
  selectSyncs(engine.project, [name]);
  const { keys, appIds, notInApp } = options;
  if (appIds && notInApp) throw new UsageError('give either --app-id or --not-in-app');
  if (!appIds && !notInApp) throw new UsageError('say where the records are: --app-id or --not-in-app');
  if (!keys) throw new UsageError('name the records with --key');
  if (appIds && appIds.length !== keys.length) throw new UsageError(`give one --app-id per --key: ${keys.length} keys, ${appIds.length} ids`);
  const doubtful = new Set(await inDoubt(engine, name, keys));
  const notInDoubt = keys.filter((k) => !doubtful.has(k));
  if (notInDoubt.length > 0) throw new UsageError(`${name}: ${notInDoubt.join(', ')} ${notInDoubt.length === 1 ? 'is' : 'are'} not in doubt; \`ebb resolve ${name}\` lists the records that are`);
  const resolutions = keys.map((key, i) => ({ key, app_id: appIds?.[i] ?? null }));
  await engine.sql.run('state_resolve', { sync_name: name, resolutions });
  const note = notInApp ? 'not in the app: the next run creates it' : 'in the app under this identifier';
  await engine.sql.run('state_resolve_history', { sync_name: name, notes: keys.map((key) => ({ key, note })), run_id: `resolve-${newRunId()}`, action: 'resolve', by: options.by ?? userInfo().username });
  return { sync: name, resolved: resolutions.length };
}
