INSERT INTO "EBB"."SYNC_RECORD_HISTORY"
  (run_id, sync_name, record_key, action, apply_reason, apply_state, success, app_identifier, result, transformed_record, record_hash, recorded_at)
SELECT ?, sync_name, record_key, ?, apply_reason, apply_state, TRUE, app_identifier,
       OBJECT_CONSTRUCT_KEEP_NULL(?, ?, ?, CASE WHEN app_identifier IS NULL THEN ? ELSE ? END),
       transformed_record, record_hash, SYSDATE()
FROM "EBB"."SYNC_RECORD_STATE"
WHERE sync_name = ?
  AND record_key IN (?, ?)
-- binds: ["20260101T000000Z-abc123","skip","by","ebb skip","note","not in the app: it is created in the next run","in the app under this identifier","customers_to_crm","1","2"]
