SELECT run_id, sync_name, "trigger", status, started_at, finished_at, planned, succeeded, failed, delayed, skipped, source_failures, error
FROM "EBB"."SYNC_RUNS"
WHERE 1 = 1
AND sync_name IN (?, ?)
AND run_id = ?
ORDER BY started_at DESC, run_id DESC
LIMIT ? OFFSET ?
-- binds: ["customers_to_crm","old_customers","20260101T000000Z-abc123",50,100]
