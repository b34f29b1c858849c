SELECT count(*) AS n FROM "EBB"."SYNC_RECORD_STATE"
WHERE sync_name = ? AND apply_state = 'NEEDS_REVIEW'
-- binds: ["customers_to_crm"]
