SELECT lock_run_id, lock_holder, lock_expires_at FROM "EBB"."SYNCS" WHERE sync_name = ?
-- binds: ["customers_to_crm"]
