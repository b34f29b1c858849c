SELECT (SELECT min(started_at) FROM "EBB"."SYNC_RUNS" WHERE sync_name = ?) AS first_run_at,
       (SELECT max(recorded_at) FROM "EBB"."SYNC_RECORD_HISTORY"
        WHERE sync_name = ? AND apply_reason = 'FULL_RESYNC') AS last_full_resync_at
-- binds: ["customers_to_crm","customers_to_crm"]
