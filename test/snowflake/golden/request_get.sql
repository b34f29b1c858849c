SELECT request_id, sync_name, "trigger", requested_at, claimed_by, claimed_at, finished_at, run_id
FROM "EBB"."RUN_REQUESTS"
WHERE request_id = ?
-- binds: ["request-1"]
