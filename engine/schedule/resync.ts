/** Periodic full resyncs (`full_resync_every`): whether this run of a sync sends every record again. */
import type { SyncConfig } from '../config/schema.ts';
import type { Sql } from '../warehouse/sql.ts';
import { nextTime } from './due.ts';
import { timestampMs } from '../warehouse/timestamp.ts';

/**
 * True when the sync's interval (or cron) has come since its last full resync, counted from its
 * first run when it never had one. A first run sends every record anyway: never due before it.
 */
export async function fullResyncDue(sql: Sql, sync: SyncConfig, now = Date.now()): Promise<boolean> {
  const every = sync.full_resync_every;
  if (!every) return false;
  const [row] = await sql.runAndRead('full_resync_last', { sync_name: sync.name });
  const base = timestampMs(row?.last_full_resync_at) ?? timestampMs(row?.first_run_at);
  if (base === null) return false;
  const next = nextTime(typeof every === 'string' ? { every } : every, base);
  return next !== null && now >= next;
}
