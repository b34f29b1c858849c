SELECT run_id, status, error, started_at, finished_at, planned, succeeded, failed, source_rows
FROM "EBB"."SYNC_RUNS"
WHERE sync_name = ? AND finished_at IS NOT NULL
ORDER BY started_at DESC
LIMIT ?
-- binds: ["customers_to_crm",50]
