UPDATE "EBB"."RUN_REQUESTS"
SET claimed_by = ?, claimed_at = CAST(? AS TIMESTAMP_NTZ)
WHERE request_id = ? AND finished_at IS NULL
  AND (claimed_by IS NULL OR claimed_at < CAST(? AS TIMESTAMP_NTZ))
-- binds: ["host:123","2026-01-01T00:00:30.000Z","request-1","2025-12-31T23:59:30.000Z"]
