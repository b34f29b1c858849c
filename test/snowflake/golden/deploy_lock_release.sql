UPDATE "EBB"."DEPLOY_LOCK" SET holder = NULL, expires_at = NULL WHERE holder = ?
-- binds: ["host:123"]
