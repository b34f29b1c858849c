/** The numbers a monitoring system scrapes (`/metrics`): per sync, its runs, records, health and last success. */
import type { Engine } from '../engine.ts';
import { listSyncs } from './syncs.ts';

export interface SyncMetrics {
  sync: string;
  status: string;
  health: string;
  /** Runs recorded, by status (RUNNING, HEALTHY, INCOMPLETE, FAILED, DELAYED, CANCELLED). */
  runs: Record<string, number>;
  /** Records ebb holds, by apply state. */
  records: Record<string, number>;
  failingRecords: number;
  /** The duration of the last finished run, in seconds; null before one. */
  lastRunSeconds: number | null;
  /** When the last HEALTHY run finished; null before one. */
  lastSuccessAt: Date | null;
}

/** Every sync of the project with its numbers. */
export async function syncMetrics(engine: Engine): Promise<SyncMetrics[]> {
  const syncs = await listSyncs(engine);
  const runs = await engine.sql.runAndRead('metrics_runs');
  const records = await engine.sql.runAndRead('metrics_records');
  return syncs.map((s) => {
    const mine = runs.filter((r) => r.sync_name === s.sync_name);
    const healthy = mine.find((r) => r.status === 'HEALTHY')?.last_finished_at;
    const started = s.last_run_started_at;
    const finished = s.last_run_finished_at;
    return {
      sync: s.sync_name,
      status: s.status,
      health: s.health,
      runs: Object.fromEntries(mine.map((r) => [String(r.status), Number(r.n)])),
      records: Object.fromEntries(records.filter((r) => r.sync_name === s.sync_name).map((r) => [String(r.apply_state), Number(r.n)])),
      failingRecords: Number(s.failing_records ?? 0),
      lastRunSeconds: started instanceof Date && finished instanceof Date ? (finished.getTime() - started.getTime()) / 1000 : null,
      lastSuccessAt: healthy instanceof Date ? healthy : null,
    };
  });
}
