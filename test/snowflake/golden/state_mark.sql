UPDATE "EBB"."SYNC_RECORD_STATE" SET apply_state = ?
WHERE sync_name = ? AND apply_state IS DISTINCT FROM 'NEEDS_REVIEW'
AND record_key IN (?, ?)
-- binds: ["SKIPPED_ALWAYS","customers_to_crm","1","2"]
