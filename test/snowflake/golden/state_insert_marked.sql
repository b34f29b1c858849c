INSERT INTO "EBB"."SYNC_RECORD_STATE" (sync_name, record_key, apply_state, failure_count)
SELECT ?, k.record_key, ?, 0
FROM (
SELECT ? AS record_key UNION ALL SELECT ? AS record_key) k
WHERE k.record_key NOT IN (SELECT record_key FROM "EBB"."SYNC_RECORD_STATE" WHERE sync_name = ?)
-- binds: ["customers_to_crm","SKIPPED_ALWAYS","1","2","customers_to_crm"]
