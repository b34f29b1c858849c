DELETE FROM "EBB"."SYNC_CHANGES" WHERE sync_name = ?
-- binds: ["customers_to_crm"]
