SELECT sync_name, definition, definition_hash, origin, project_version, status, health, overrides, schedule,
       last_run_id, former_names, project_name, created_at, updated_at
FROM "EBB"."SYNCS"
WHERE sync_name = ?
ORDER BY sync_name
-- binds: ["CUSTOMERS"]
