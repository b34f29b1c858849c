MERGE INTO "EBB"."SYNC_RECORD_STATE" s
USING (
  -- One row per key. Only the source rows of a duplicate key share it, each a SOURCE_FAILURE:
  -- the first of those is kept, and the other rows of the run need no window over them.
  SELECT * FROM "EBB"."SYNC_RECORD_HISTORY"
  WHERE run_id = ? AND record_key IS NOT NULL AND apply_state <> 'SOURCE_FAILURE'
  UNION ALL
  SELECT * FROM (
    SELECT * FROM "EBB"."SYNC_RECORD_HISTORY"
    WHERE run_id = ? AND record_key IS NOT NULL AND apply_state = 'SOURCE_FAILURE'
    QUALIFY row_number() OVER (PARTITION BY record_key ORDER BY recorded_at) = 1
  ) failures
) h
ON s.sync_name = h.sync_name AND s.record_key = h.record_key
WHEN MATCHED AND h.apply_state = 'SUCCESS' AND h.action IN ('delete', 'untrack') THEN DELETE
WHEN MATCHED AND s.last_run_id IS DISTINCT FROM h.run_id THEN UPDATE SET
  app_identifier = coalesce(h.app_identifier, s.app_identifier),
  record_hash = h.record_hash,
  hash_version = ?,
  transformed_record = h.transformed_record,
  apply_state = h.apply_state,
  apply_reason = h.apply_reason,
  last_action = h.action,
  failure_count = CASE WHEN h.apply_state = 'SUCCESS' THEN 0 WHEN h.apply_state = 'DELAYED' THEN s.failure_count ELSE s.failure_count + 1 END,
  last_result = h.result,
  last_run_id = h.run_id,
  first_synced_at = CASE WHEN h.apply_state = 'SUCCESS' THEN coalesce(s.first_synced_at, h.recorded_at) ELSE s.first_synced_at END,
  last_synced_at = CASE WHEN h.apply_state = 'SUCCESS' THEN h.recorded_at ELSE s.last_synced_at END,
  maybe_in_app = CASE WHEN h.apply_state = 'SUCCESS' THEN NULL ELSE (coalesce(s.maybe_in_app, FALSE) OR h.in_flight) END
WHEN NOT MATCHED AND NOT (h.apply_state = 'SUCCESS' AND h.action IN ('delete', 'untrack')) THEN INSERT
  (sync_name, record_key, app_identifier, record_hash, hash_version, transformed_record, apply_state, apply_reason, last_action,
   failure_count, last_result, last_run_id, first_synced_at, last_synced_at, maybe_in_app)
VALUES
  (h.sync_name, h.record_key, h.app_identifier, h.record_hash, ?, h.transformed_record, h.apply_state, h.apply_reason, h.action,
   CASE WHEN h.apply_state IN ('SUCCESS', 'DELAYED') THEN 0 ELSE 1 END, h.result, h.run_id,
   CASE WHEN h.apply_state = 'SUCCESS' THEN h.recorded_at END, CASE WHEN h.apply_state = 'SUCCESS' THEN h.recorded_at END,
   CASE WHEN h.in_flight THEN TRUE END)
-- binds: ["20260101T000000Z-abc123","20260101T000000Z-abc123",2,2]
