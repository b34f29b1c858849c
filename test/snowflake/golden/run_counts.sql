SELECT CASE WHEN action = 'untrack' AND apply_state = 'SUCCESS' THEN 'UNTRACKED' ELSE apply_state END AS apply_state, count(*) AS n
FROM "EBB"."SYNC_RECORD_HISTORY"
WHERE run_id = ?
GROUP BY 1
UNION ALL
SELECT CASE WHEN apply_state = 'NEEDS_REVIEW' THEN 'IN_DOUBT' ELSE 'SKIPPED' END AS apply_state, count(*) AS n
FROM "EBB"."SYNC_RECORD_STATE"
WHERE sync_name = ? AND apply_state IN ('SKIPPED_ONCE', 'SKIPPED_ALWAYS', 'NEEDS_REVIEW')
GROUP BY 1
-- binds: ["20260101T000000Z-abc123","customers_to_crm"]
