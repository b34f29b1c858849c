INSERT INTO "EBB"."RUN_REQUESTS" (request_id, sync_name, "trigger", requested_at)
VALUES (?, ?, ?, SYSDATE())
-- binds: ["request-1","customers_to_crm","manual"]
