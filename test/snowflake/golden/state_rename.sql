UPDATE "EBB"."SYNC_RECORD_STATE" SET sync_name = ? WHERE sync_name = ?
-- binds: ["customers_to_crm","old_customers"]
