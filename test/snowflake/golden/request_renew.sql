UPDATE "EBB"."RUN_REQUESTS" SET claimed_at = CAST(? AS TIMESTAMP_NTZ)
WHERE request_id = ? AND claimed_by = ? AND finished_at IS NULL
-- binds: ["2026-01-01T00:00:30.000Z","request-1","host:123"]
