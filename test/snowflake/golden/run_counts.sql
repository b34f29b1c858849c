SELECT apply_state, count(*) AS n
FROM "EBB"."SYNC_RECORD_HISTORY"
WHERE run_id = ?
GROUP BY 1
-- binds: ["20260101T000000Z-abc123"]
