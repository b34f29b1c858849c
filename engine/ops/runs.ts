/** The executions of syncs, as `ebb runs` shows them. */
import type { Engine } from '../engine.ts';
import { namesOf } from '../catalog/catalog.ts';
import { NotFoundError } from '../errors.ts';
import type { Row } from '../warehouse/warehouse.ts';

export interface ListRunsOptions {
  /** Only this sync's runs (with those under its former names); all syncs' without. */
  sync?: string;
  limit?: number;
  offset?: number;
}

/** One run: its row in sync_runs with its duration, its planned actions and its untracked records. */
export interface RunRow extends Row {
  run_id: string;
  sync_name: string;
  trigger: string;
  status: string | null;
  planned: Record<string, number> | null;
  duration_s: number | null;
  untracked: number | null;
}

/** Runs, newest first. */
export async function listRuns(engine: Engine, options: ListRunsOptions = {}): Promise<RunRow[]> {
  const names = options.sync === undefined ? null : await namesOf(engine, engine.project, options.sync);
  return (await engine.sql.runAndRead('runs_list', { names, limit: options.limit ?? 20, offset: options.offset ?? 0 })).map(runRow);
}

/** One run by its id; an unknown id is a NotFoundError. */
export async function getRun(engine: Engine, runId: string): Promise<RunRow> {
  const [row] = await engine.sql.runAndRead('runs_list', { run_id: runId, limit: 1 });
  if (!row) throw new NotFoundError('run', runId, `unknown run "${runId}"; \`ebb runs <sync>\` lists the runs of a sync`);
  return runRow(row);
}

function runRow(r: Row): RunRow {
  const planned = (typeof r.planned === 'string' ? JSON.parse(r.planned) : r.planned) as Record<string, number> | null;
  return {
    ...r,
    duration_s: r.finished_at instanceof Date && r.started_at instanceof Date ? (r.finished_at.getTime() - r.started_at.getTime()) / 1000 : null,
    planned,
    // Every planned untrack is done at once, without a request: the run row keeps them in `planned`.
    untracked: r.finished_at ? (planned?.untrack ?? 0) : null,
  } as RunRow;
}
