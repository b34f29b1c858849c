SELECT s.sync_name, s.created_at,
       (SELECT max(r.finished_at) FROM "EBB"."SYNC_RUNS" r
        WHERE r.sync_name = s.sync_name AND r.finished_at IS NOT NULL AND r.status <> 'FAILED') AS last_success_at
FROM "EBB"."SYNCS" s
-- binds: []
