SELECT count(*) AS n FROM "EBB"."SYNC_RECORD_STATE" WHERE sync_name = ?
-- binds: ["customers_to_crm"]
