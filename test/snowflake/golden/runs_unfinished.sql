SELECT run_id FROM "EBB"."SYNC_RUNS"
WHERE sync_name = ? AND status = 'RUNNING' AND run_id <> ?
-- binds: ["customers_to_crm","20260101T000000Z-abc123"]
