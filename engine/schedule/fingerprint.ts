/** The fingerprint of a live sync's source: what `ebb scheduler` polls to notice a change. */
import type { SyncConfig } from '../config/schema.ts';
import type { Sql } from '../warehouse/sql.ts';
import { sourceContext } from '../plan/plan.ts';

/** A source's row count and a hash of its rows (see sql/default/fingerprint.sql.njk for the cost). */
export interface Fingerprint {
  rows: number;
  /** Equal for equal contents within one process; not comparable across DuckDB versions. */
  value: string;
}

/** Reads the fingerprint of a sync's source, with its filter, in the warehouse. */
export async function sourceFingerprint(sql: Sql, sync: SyncConfig): Promise<Fingerprint> {
  const [row] = await sql.runAndRead('fingerprint', sourceContext(sync));
  return { rows: Number(row.n), value: `${String(row.n)}:${String(row.fingerprint)}` };
}
