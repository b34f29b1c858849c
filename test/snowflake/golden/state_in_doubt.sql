SELECT record_key, transformed_record AS record, last_action
FROM "EBB"."SYNC_RECORD_STATE"
WHERE sync_name = ? AND apply_state = 'NEEDS_REVIEW'
AND record_key IN (?, ?)ORDER BY record_key
-- binds: ["customers_to_crm","1","2"]
