INSERT INTO "EBB"."SCHEMA_VERSION" (version, applied_at) VALUES (?, SYSDATE())
-- binds: [1]
