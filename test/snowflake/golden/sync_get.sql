SELECT sync_name, definition, status, health, overrides, schedule, last_run_id, origin, project_version, former_names, updated_at
FROM "EBB"."SYNCS"
WHERE sync_name = ?ORDER BY sync_name
-- binds: ["customers_to_crm"]
