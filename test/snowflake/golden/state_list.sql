SELECT record_key, app_identifier, apply_state, apply_reason, last_action, failure_count, last_result, transformed_record,
       last_run_id, first_synced_at, last_synced_at, maybe_in_app
FROM "EBB"."SYNC_RECORD_STATE"
WHERE sync_name = ?
AND apply_state IN (?, ?)
AND contains(record_key, ?)
ORDER BY record_key
LIMIT ? OFFSET ?
-- binds: ["customers_to_crm","FAILED","NEEDS_REVIEW","cust",50,100]
