SELECT status FROM "EBB"."SYNC_RUNS"
WHERE sync_name = ? AND status <> 'RUNNING'
ORDER BY started_at DESC
LIMIT ?
-- binds: ["customers_to_crm",50]
