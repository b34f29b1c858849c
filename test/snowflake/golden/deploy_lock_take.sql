UPDATE "EBB"."DEPLOY_LOCK"
SET holder = ?, expires_at = CAST(? AS TIMESTAMP_NTZ)
WHERE holder IS NULL OR expires_at < SYSDATE()
-- binds: ["host:123","2026-01-01T00:01:00.000Z"]
