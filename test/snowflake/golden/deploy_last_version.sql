SELECT max(project_version) AS version FROM "EBB"."DEPLOYS" WHERE project_name = ?
-- binds: ["acme"]
