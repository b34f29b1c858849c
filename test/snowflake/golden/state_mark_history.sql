INSERT INTO "EBB"."SYNC_RECORD_HISTORY"
  (run_id, sync_name, record_key, action, apply_reason, apply_state, success, app_identifier, result, transformed_record, record_hash, recorded_at)
SELECT ?, sync_name, record_key, ?, apply_reason, apply_state, TRUE, app_identifier,
       OBJECT_CONSTRUCT_KEEP_NULL(?, ?), transformed_record, record_hash, SYSDATE()
FROM "EBB"."SYNC_RECORD_STATE"
WHERE sync_name = ? AND apply_state = ?
AND record_key IN (?, ?)
-- binds: ["20260101T000000Z-abc123","skip","by","ebb skip","customers_to_crm","SKIPPED_ALWAYS","1","2"]
