UPDATE "EBB"."SYNCS" SET health = ?, last_run_id = ?, updated_at = SYSDATE(), keyed_by = ?
WHERE sync_name = ?
-- binds: ["HEALTHY","20260101T000000Z-abc123","[\"customer_id\"]","customers_to_crm"]
