SELECT holder, expires_at FROM "EBB"."DEPLOY_LOCK"
-- binds: []
