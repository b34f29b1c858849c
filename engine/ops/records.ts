/** The records of a sync: their state now (`listRecords`) and their audit trail (`recordHistory`). */
import type { Engine } from '../engine.ts';
import { namesOf } from '../catalog/catalog.ts';
import { parseJson } from '../../plugins/shared/json.ts';
import type { Row } from '../warehouse/warehouse.ts';

export interface RecordHistoryOptions {
  sync: string;
  /** Only these record keys. */
  keys?: string[];
  /** Only this run. */
  runId?: string;
  /** Only records that did not succeed. */
  failed?: boolean;
  limit?: number;
  offset?: number;
}

/** What was sent, when, and with what result: newest first, under the sync's former names too. */
export async function recordHistory(engine: Engine, options: RecordHistoryOptions): Promise<Row[]> {
  const names = await namesOf(engine, engine.project, options.sync);
  const rows = await engine.sql.runAndRead('history_list', {
    names,
    keys: options.keys ?? null,
    run_id: options.runId ?? null,
    failed: options.failed ?? false,
    limit: options.limit ?? 50,
    offset: options.offset ?? 0,
  });
  return rows.map((r) => ({ ...r, result: parse(r.result), transformed_record: parse(r.transformed_record) }));
}

export interface ListRecordsOptions {
  sync: string;
  /** Only records in these states (SUCCESS, FAILED, DELAYED, NEEDS_REVIEW, SKIPPED_ONCE, …). */
  applyState?: string | string[];
  /** Only records whose key contains this text. */
  keySearch?: string;
  limit?: number;
  offset?: number;
}

/** The state ebb holds of each of a sync's records, by key. */
export async function listRecords(engine: Engine, options: ListRecordsOptions): Promise<Row[]> {
  await namesOf(engine, engine.project, options.sync);
  const states = options.applyState === undefined ? null : [options.applyState].flat();
  const rows = await engine.sql.runAndRead('state_list', {
    sync_name: options.sync,
    apply_states: states,
    key_search: options.keySearch || null,
    limit: options.limit ?? 50,
    offset: options.offset ?? 0,
  });
  return rows.map((r) => ({ ...r, last_result: parse(r.last_result), transformed_record: parse(r.transformed_record) }));
}

/**
 * Parsed losslessly: history shows the digits that were sent (plugins/shared/json.ts). Text that is
 * not JSON (a NaN that an older ebb stored) is shown as it is.
 */
function parse(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  try {
    return parseJson(v);
  } catch {
    return v;
  }
}
