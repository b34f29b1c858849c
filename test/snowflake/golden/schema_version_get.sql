SELECT max(version) AS version FROM "EBB"."SCHEMA_VERSION" HAVING count(*) > 0
-- binds: []
