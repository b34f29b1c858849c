SELECT run_id, record_key, action, apply_reason, apply_state, success, app_identifier, result, transformed_record, recorded_at
FROM "EBB"."SYNC_RECORD_HISTORY"
WHERE sync_name IN (?, ?)
AND NOT success
ORDER BY recorded_at DESC, record_key
LIMIT ? OFFSET ?
-- binds: ["customers_to_crm","old_customers",50,100]
