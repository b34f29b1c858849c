UPDATE "EBB"."SYNCS" SET lock_expires_at = CAST(? AS TIMESTAMP_NTZ)
WHERE sync_name = ? AND lock_run_id = ?
-- binds: ["2026-01-01T00:01:00.000Z","customers_to_crm","20260101T000000Z-abc123"]
