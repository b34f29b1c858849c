UPDATE "EBB"."RUN_REQUESTS" SET finished_at = SYSDATE(), run_id = ?
WHERE request_id = ? AND claimed_by = ? AND finished_at IS NULL
-- binds: ["20260101T000000Z-abc123","request-1","host:123"]
