CREATE OR REPLACE TASK "EBB"."EBB_CUSTOMERS_TO_CRM"
USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL'
SCHEDULE = 'USING CRON 0 * * * * UTC'
COMMENT = 'ebb:acme:customers_to_crm'
AS INSERT INTO "EBB"."RUN_REQUESTS" (request_id, sync_name, "trigger", requested_at)
SELECT UUID_STRING(), 'customers_to_crm', 'task', SYSDATE()
-- binds: []
