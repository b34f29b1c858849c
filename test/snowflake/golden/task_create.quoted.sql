CREATE OR REPLACE TASK "EBB"."EBB_CUSTOMERS_TO_CRM"
WAREHOUSE = "TRANSFORMING"
SCHEDULE = '1 MINUTE'
COMMENT = 'ebb:acme:it''s a \\ name'
AS INSERT INTO "EBB"."RUN_REQUESTS" (request_id, sync_name, "trigger", requested_at)
SELECT UUID_STRING(), 'it''s a \\ name', 'live', SYSDATE()
-- binds: []
