SELECT record_key, action, apply_reason, source_error, app_identifier, transformed_record
FROM "EBB"."SYNC_CHANGES"
WHERE run_id = ?
ORDER BY seq
LIMIT ?
-- binds: ["20260101T000000Z-abc123",50]
