SELECT seq, record_key, action, "TRANSFORMED_RECORD" AS record, app_identifier, in_doubt
FROM "EBB"."SYNC_CHANGES"
WHERE run_id = ? AND seq BETWEEN ? AND ?
  AND source_error IS NULL AND action NOT IN ('none', 'untrack')
ORDER BY seq
-- binds: ["20260101T000000Z-abc123",1,50000]
