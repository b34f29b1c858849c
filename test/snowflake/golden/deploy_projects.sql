SELECT DISTINCT project_name FROM "EBB"."DEPLOYS"
-- binds: []
