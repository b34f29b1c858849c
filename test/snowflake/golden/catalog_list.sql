SELECT sync_name, definition, definition_hash, origin, project_version, status, health, overrides, schedule,
       last_run_id, former_names, project_name, created_at, updated_at,
       (SELECT count(*) FROM "EBB"."SYNC_RECORD_STATE" st WHERE st.sync_name = s.sync_name) AS records
FROM "EBB"."SYNCS" s
ORDER BY sync_name
-- binds: []
