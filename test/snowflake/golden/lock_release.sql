UPDATE "EBB"."SYNCS" SET lock_run_id = NULL, lock_holder = NULL, lock_expires_at = NULL
WHERE sync_name = ? AND lock_run_id = ?
-- binds: ["customers_to_crm","20260101T000000Z-abc123"]
