SELECT action, apply_reason, source_error IS NOT NULL AS source_failure, count(*) AS n
FROM "EBB"."SYNC_CHANGES"
WHERE run_id = ?
GROUP BY 1, 2, 3
ORDER BY 1, 2
-- binds: ["20260101T000000Z-abc123"]
