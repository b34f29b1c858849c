SELECT sync_name, count(*) AS runs, max(started_at) AS last_started_at,
       max(CASE WHEN status = 'HEALTHY' THEN finished_at END) AS last_healthy_at
FROM "EBB"."SYNC_RUNS"
GROUP BY sync_name
-- binds: []
