INSERT INTO "EBB"."SYNC_OUTCOMES" (run_id, seq, action, success, app_identifier, result, error_kind, recorded_at)
SELECT run_id, seq, action, FALSE, app_identifier, NULL, 'delayed', SYSDATE()
FROM "EBB"."SYNC_CHANGES"
WHERE run_id = ? AND seq BETWEEN ? AND ?
  AND source_error IS NULL AND action NOT IN ('none', 'untrack')
-- binds: ["20260101T000000Z-abc123",1,50000]
