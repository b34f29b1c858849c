CREATE OR REPLACE TASK "EBB"."EBB_REGIONAL"
WAREHOUSE = "TRANSFORMING"
COMMENT = 'ebb:acme:regional'
AFTER "EBB"."EBB_CUSTOMERS_TO_CRM"
AS INSERT INTO "EBB"."RUN_REQUESTS" (request_id, sync_name, "trigger", requested_at)
SELECT UUID_STRING(), 'regional', 'task', SYSDATE()
-- binds: []
