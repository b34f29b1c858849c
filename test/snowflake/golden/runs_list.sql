SELECT run_id, sync_name, "trigger", status, started_at, finished_at, planned, succeeded, failed, delayed, skipped, source_failures, error
FROM "EBB"."SYNC_RUNS"
WHERE sync_name IN (?, ?)
ORDER BY started_at DESC
LIMIT ?
-- binds: ["customers_to_crm","old_customers",50]
