SELECT sync_name, status, count(*) AS n, max(finished_at) AS last_finished_at
FROM "EBB"."SYNC_RUNS"
GROUP BY sync_name, status
-- binds: []
