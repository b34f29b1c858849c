/**
 * The deploy lock: concurrent deploys write the catalog one at a time, so that two of them never
 * both create a sync (Snowflake does not enforce unique keys). Like the run lock, it is one row
 * taken with a conditional UPDATE that exactly one deploy wins, and it expires after
 * EBB_LOCK_TTL_SECONDS (default 60) when its deploy was killed, or is taken at once when that
 * deploy was a process of this machine that is gone. A deploy that finds it held waits for it, at
 * most that long, then is refused.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Sql } from '../warehouse/sql.ts';
import { RunRefusedError } from '../errors.ts';
import { holderGone, lockHolder } from '../run-lock.ts';

const POLL_MS = 500;

/** Runs `writes` holding the deploy lock. */
export async function withDeployLock<T>(sql: Sql, writes: () => Promise<T>): Promise<T> {
  const ttl = Number(process.env.EBB_LOCK_TTL_SECONDS ?? 60) * 1000;
  // A process may deploy more than once at a time (ebb serve): each deploy is a holder of its own.
  const holder = `${lockHolder}#${randomUUID()}`;
  const giveUp = Date.now() + ttl;
  const take = (stale?: string) => sql.run('deploy_lock_take', { holder, expires_at: new Date(Date.now() + ttl), stale_holder: stale ?? null });
  while ((await take()) === 0) {
    const [held] = await sql.runAndRead('deploy_lock_get');
    if (held?.holder && holderGone(String(held.holder)) && (await take(String(held.holder))) === 1) break;
    if (Date.now() >= giveUp) {
      throw new RunRefusedError('locked', `another deploy has held the deploy lock of schema ${sql.stateSchema} for ${ttl / 1000}s; nothing was deployed. Try again when it is done.`);
    }
    await sleep(POLL_MS);
  }
  try {
    return await writes();
  } finally {
    await sql.run('deploy_lock_release', { holder });
  }
}
