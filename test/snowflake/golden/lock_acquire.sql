UPDATE "EBB"."SYNCS"
SET lock_run_id = ?, lock_holder = ?, lock_expires_at = CAST(? AS TIMESTAMP_NTZ)
WHERE sync_name = ? AND (lock_run_id IS NULL OR lock_expires_at < SYSDATE())
-- binds: ["20260101T000000Z-abc123","host:123","2026-01-01T00:01:00.000Z","customers_to_crm"]
