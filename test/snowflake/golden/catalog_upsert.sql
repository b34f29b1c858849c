MERGE INTO "EBB"."SYNCS" s
USING (SELECT ? AS match_name, ? AS sync_name,
              PARSE_JSON(?) AS definition, ? AS definition_hash,
              ? AS project_version, ? AS schedule,
              PARSE_JSON(?) AS former_names, ? AS project_name) c
ON s.sync_name = c.match_name
WHEN MATCHED THEN UPDATE SET
  sync_name = c.sync_name, definition = c.definition, definition_hash = c.definition_hash,
  project_version = c.project_version, schedule = c.schedule, former_names = c.former_names,
  project_name = c.project_name, updated_at = SYSDATE()
WHEN NOT MATCHED THEN INSERT
  (sync_name, definition, definition_hash, origin, project_version, status, health, overrides, schedule, former_names, project_name, created_at, updated_at)
VALUES
  (c.sync_name, c.definition, c.definition_hash, 'code', c.project_version, 'ACTIVE', 'PENDING', NULL, c.schedule, c.former_names, c.project_name, SYSDATE(), SYSDATE())
-- binds: ["customers_to_crm","customers_to_crm","{\"name\":\"customers_to_crm\"}","d41d8cd98f00b204e9800998ecf8427e",3,"manual","[\"old_customers\"]","acme"]
