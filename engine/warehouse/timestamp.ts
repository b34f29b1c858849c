/** Timestamps as the warehouses return them: a Date (DuckDB), or UTC text (Snowflake's TIMESTAMP_NTZ). */

/** A warehouse timestamp in ms since the epoch; null for null. Text without a zone is UTC, as every timestamp of ebb. */
export function timestampMs(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v.getTime();
  const text = String(v);
  return Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(text) ? text : `${text.replace(' ', 'T')}Z`);
}
