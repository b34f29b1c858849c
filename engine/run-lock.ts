/**
 * The run lock of a sync: two runs of one sync never overlap, across processes and machines. It
 * lives in the `syncs` row, is taken with a conditional UPDATE and renewed while the run goes on,
 * so a lock left behind by a killed process expires after EBB_LOCK_TTL_SECONDS (default 60).
 */
import { hostname } from 'node:os';
import type { Sql } from './warehouse/sql.ts';
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

/** Takes the lock of a sync for a run, or refuses with who holds it. */
export async function acquireRunLock(sql: Sql, syncName: string, runId: string): Promise<RunLock> {
  const ttl = ttlMs();
  const holder = `${hostname()}:${process.pid}`;
  const taken = await sql.run('lock_acquire', { sync_name: syncName, run_id: runId, holder, expires_at: new Date(Date.now() + ttl) });
  if (taken !== 1) {
    const [lock] = await sql.runAndRead('lock_get', { sync_name: syncName });
    if (!lock) throw new RunRefusedError('not_deployed', `sync ${syncName} is not in the catalog yet; run \`ebb deploy\` or \`ebb run\` from its project`);
    const expires = lock.lock_expires_at instanceof Date ? lock.lock_expires_at.toISOString() : String(lock.lock_expires_at);
    throw new RunRefusedError(
      'locked',
      `sync ${syncName} is already running (run ${String(lock.lock_run_id)}, held by ${String(lock.lock_holder)}); ` +
        `this run is refused. If that process is gone, its lock expires at ${expires}.`,
      String(lock.lock_run_id),
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
