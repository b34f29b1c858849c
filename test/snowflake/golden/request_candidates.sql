SELECT r.request_id, r.sync_name, r."trigger"
FROM "EBB"."RUN_REQUESTS" r
WHERE r.finished_at IS NULL
  AND (r.claimed_by IS NULL OR r.claimed_at < CAST(? AS TIMESTAMP_NTZ))
  AND NOT EXISTS (
    SELECT 1 FROM "EBB"."RUN_REQUESTS" c
    WHERE c.sync_name = r.sync_name AND c.finished_at IS NULL AND c.claimed_by IS NOT NULL
      AND c.claimed_at >= CAST(? AS TIMESTAMP_NTZ)
  )
  AND NOT EXISTS (
    SELECT 1 FROM "EBB"."SYNCS" s
    WHERE s.sync_name = r.sync_name AND s.lock_run_id IS NOT NULL AND s.lock_expires_at >= SYSDATE()
  )
ORDER BY r.requested_at, r.request_id
LIMIT ?
-- binds: ["2025-12-31T23:59:30.000Z","2025-12-31T23:59:30.000Z",50]
