UPDATE "EBB"."RUN_REQUESTS" SET claimed_by = NULL, claimed_at = NULL
WHERE request_id = ? AND claimed_by = ? AND finished_at IS NULL
-- binds: ["request-1","host:123"]
