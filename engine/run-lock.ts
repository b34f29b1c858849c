/**
 * The run lock of a sync: two runs of one sync never overlap, across processes and machines. It
 * lives in the `syncs` row, is taken with a conditional UPDATE and renewed while the run goes on,
 * so a lock left behind by a killed process expires after EBB_LOCK_TTL_SECONDS (default 60). A
 * lock whose holder was a process of this machine that is gone is taken at once (see `holderGone`).
 */
import { createHash } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Sql } from './warehouse/sql.ts';
import type { Row } from './warehouse/warehouse.ts';
import { RunRefusedError } from './errors.ts';
import { redact } from './redact.ts';

export interface RunLock {
  /**
   * Aborted when the lock is lost: another run holds it now, or it could not be renewed before it
   * expired. Its reason is an Error that says which; the run must stop sending.
   */
  signal: AbortSignal;
  release(): Promise<void>;
}

function ttlMs(): number {
  return Number(process.env.EBB_LOCK_TTL_SECONDS ?? 60) * 1000;
}

/**
 * What tells this process's pids apart from every other machine's and container's: a hash of the
 * kernel's boot id and of the pid namespace, on Linux; undefined elsewhere. Two machines (or two
 * containers) may share a hostname, and their pids mean nothing to each other.
 */
const processSpace = ((): string | undefined => {
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    return createHash('sha256').update(`${boot} ${readlinkSync('/proc/self/ns/pid')}`).digest('hex').slice(0, 8);
  } catch {
    return undefined;
  }
})();

/** This process as the holder of a lock: `host:pid`, followed by `/<process space>` where there is one (and by `#<id>` where one process may hold the lock more than once). */
export const lockHolder = `${hostname()}:${process.pid}${processSpace ? `/${processSpace}` : ''}`;

/**
 * Whether a lock's holder is a process of this machine, in this process space, that no longer
 * exists (killed, crashed): its lock need not wait to expire. A pid that is alive, or whose
 * existence cannot be checked, or a holder elsewhere, is not gone: that lock waits for its TTL.
 */
export function holderGone(held: string): boolean {
  const match = /:(\d+)\/([0-9a-f]{8})(?:#|$)/.exec(held);
  if (!match || match[2] !== processSpace) return false;
  try {
    process.kill(Number(match[1]), 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Takes the lock of a sync for a run, or refuses with who holds it. */
export async function acquireRunLock(sql: Sql, syncName: string, runId: string): Promise<RunLock> {
  const ttl = ttlMs();
  const take = (stale?: string) => sql.run('lock_acquire', { sync_name: syncName, run_id: runId, holder: lockHolder, expires_at: new Date(Date.now() + ttl), stale_run_id: stale ?? null });
  let taken = await take();
  let lock: Row | undefined;
  if (taken !== 1) {
    [lock] = await sql.runAndRead('lock_get', { sync_name: syncName });
    if (!lock) throw new RunRefusedError('not_deployed', `sync ${syncName} is not in the catalog yet; run \`ebb deploy\` or \`ebb run\` from its project`);
    // Taken over only while the gone process's run still holds it: of two runs that try, one wins.
    if (lock.lock_run_id !== null && holderGone(String(lock.lock_holder)) && (taken = await take(String(lock.lock_run_id))) !== 1) {
      [lock] = await sql.runAndRead('lock_get', { sync_name: syncName });
    }
  }
  if (taken !== 1) {
    const held: Row = lock ?? {};
    const expires = held.lock_expires_at instanceof Date ? held.lock_expires_at.toISOString() : String(held.lock_expires_at);
    throw new RunRefusedError(
      'locked',
      `sync ${syncName} is already running (run ${String(held.lock_run_id)}, held by ${String(held.lock_holder)}); ` +
        `this run is refused. If that process is gone, its lock expires at ${expires}.`,
      String(held.lock_run_id),
    );
  }
  const lost = new AbortController();
  let renewedAt = Date.now();
  const lose = (message: string) => {
    clearInterval(renew);
    lost.abort(new Error(`${message}; this run stopped sending, so that two runs of ${syncName} never send at once`));
  };
  const renew = setInterval(() => {
    sql.run('lock_renew', { sync_name: syncName, run_id: runId, expires_at: new Date(Date.now() + ttl) }).then(
      (renewed) => {
        if (renewed === 1) renewedAt = Date.now();
        else lose(`the run lock of sync ${syncName} was taken by another run`);
      },
      (e: unknown) => {
        // A renewal that fails is tried again; past the lock's lifetime, another run may hold it.
        if (Date.now() - renewedAt >= ttl) lose(`the run lock of sync ${syncName} could not be renewed for ${ttl / 1000}s (${redact((e as Error).message.split('\n')[0])})`);
      },
    );
  }, ttl / 3);
  renew.unref();
  return {
    signal: lost.signal,
    async release() {
      clearInterval(renew);
      await sql.run('lock_release', { sync_name: syncName, run_id: runId });
    },
  };
}
