/**
 * The run lock of a sync: two runs of one sync never overlap, across processes and machines. It
 * lives in the `syncs` row, is taken with a conditional UPDATE and renewed while the run goes on,
 * so a lock left behind by a killed process expires after EBB_LOCK_TTL_SECONDS (default 60).
 */
import { hostname } from 'node:os';
import type { Sql } from './warehouse/sql.ts';
import { RunRefusedError } from './errors.ts';

export interface RunLock {
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
    if (!lock) throw new RunRefusedError(`sync ${syncName} is not in the catalog yet; run \`ebb deploy\` or \`ebb run\` from its project`);
    const expires = lock.lock_expires_at instanceof Date ? lock.lock_expires_at.toISOString() : String(lock.lock_expires_at);
    throw new RunRefusedError(
      `sync ${syncName} is already running (run ${String(lock.lock_run_id)}, held by ${String(lock.lock_holder)}); ` +
        `this run is refused. If that process is gone, its lock expires at ${expires}.`,
    );
  }
  const renew = setInterval(() => {
    sql.run('lock_renew', { sync_name: syncName, run_id: runId, expires_at: new Date(Date.now() + ttl) }).catch(() => undefined);
  }, ttl / 3);
  renew.unref();
  return {
    async release() {
      clearInterval(renew);
      await sql.run('lock_release', { sync_name: syncName, run_id: runId });
    },
  };
}
