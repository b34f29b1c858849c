SELECT * FROM "EBB"."SYNC_HEALTH" ORDER BY sync_name
-- binds: []
