SELECT count(*) AS n FROM "EBB"."RUN_REQUESTS" p
WHERE p.finished_at IS NULL
  AND p.sync_name IN (?, ?)
  AND p.requested_at <= (SELECT r.requested_at FROM "EBB"."RUN_REQUESTS" r WHERE r.request_id = ?)
-- binds: ["customers_to_crm","old_customers","request-1"]
