INSERT INTO "EBB"."SYNC_RECORD_HISTORY"
  (run_id, sync_name, record_key, action, apply_reason, apply_state, success, app_identifier, result, transformed_record, record_hash, recorded_at)
SELECT ?, s.sync_name, s.record_key, ?, s.apply_reason, s.apply_state, s.apply_state <> 'NEEDS_REVIEW', s.app_identifier,
       OBJECT_CONSTRUCT_KEEP_NULL(?, ?, ?, r.note),
       s.transformed_record, s.record_hash, SYSDATE()
FROM "EBB"."SYNC_RECORD_STATE" s
JOIN (
SELECT CAST(? AS VARCHAR) AS record_key, CAST(? AS VARCHAR) AS note UNION ALL SELECT CAST(? AS VARCHAR) AS record_key, CAST(? AS VARCHAR) AS note) r ON r.record_key = s.record_key
WHERE s.sync_name = ?
-- binds: ["20260101T000000Z-abc123","skip","by","ebb skip","note","1","found in the app","2","still in doubt: GET /contacts?email=b%40x.io answered 503","customers_to_crm"]
