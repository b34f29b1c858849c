/**
 * A sync's lifecycle: ACTIVE, PAUSED, COMPLETED (a `once` sync after its first healthy run) and
 * ERROR (its last N runs failed; it stays there until `ebb resume`).
 */
import type { Sql } from '../warehouse/sql.ts';
import type { SyncConfig } from '../config/schema.ts';
import type { Health } from '../record/record.ts';
import { readCatalog, type CatalogEntry, type Status } from './catalog.ts';
import { RunRefusedError } from '../errors.ts';
import type { Trigger } from '../run.ts';

/** Triggers that start runs without a person: they respect COMPLETED and ERROR. */
const automatic: Trigger[] = ['schedule', 'live', 'task'];

/** The catalog entry of a sync, or undefined when it was never deployed. */
export async function catalogEntry(sql: Sql, name: string): Promise<CatalogEntry | undefined> {
  return (await readCatalog(sql, name))[0];
}

/** Throws when the sync's status forbids this run: PAUSED always, COMPLETED and ERROR for automatic triggers. */
export function checkRunnable(entry: CatalogEntry | undefined, name: string, trigger: Trigger): void {
  if (!entry) throw new RunRefusedError('not_deployed', `sync ${name} is not in the catalog; run \`ebb deploy\` (or turn catalog.auto_deploy on)`);
  if (entry.status === 'PAUSED') throw new RunRefusedError('paused', `sync ${name} is paused; resume it with \`ebb resume ${name}\` to run it`);
  if (automatic.includes(trigger) && (entry.status === 'ERROR' || entry.status === 'COMPLETED')) {
    throw new RunRefusedError(entry.status === 'ERROR' ? 'error_status' : 'completed', `sync ${name} is ${entry.status}; ${entry.status === 'ERROR' ? `its last runs failed; fix the cause and \`ebb resume ${name}\`` : 'its `once` schedule already ran'}`);
  }
}

/** Moves the sync to COMPLETED or ERROR after a run, as its schedule and recent runs say. */
export async function afterRun(sql: Sql, sync: SyncConfig, health: Health, errorAfter: number): Promise<Status | null> {
  const completed = health === 'HEALTHY' && sync.schedule === 'once';
  // Any other run leaves the status as it is, without reading the catalog (a round trip on Snowflake).
  if (!completed && health !== 'FAILED') return null;
  const entry = await catalogEntry(sql, sync.name);
  if (!entry || entry.status !== 'ACTIVE') return null;
  let next: Status | null = null;
  if (completed) next = 'COMPLETED';
  else {
    const recent = await sql.runAndRead('runs_recent_status', { sync_name: sync.name, limit: errorAfter });
    if (recent.length >= errorAfter && recent.every((r) => r.status === 'FAILED')) next = 'ERROR';
  }
  if (next) await sql.run('sync_set_status', { sync_name: sync.name, status: next });
  return next;
}
