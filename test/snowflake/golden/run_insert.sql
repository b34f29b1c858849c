INSERT INTO "EBB"."SYNC_RUNS" (run_id, sync_name, "trigger", status, started_at, succeeded, failed, delayed, skipped, source_failures)
VALUES (?, ?, ?, 'RUNNING', SYSDATE(), 0, 0, 0, 0, 0)
-- binds: ["20260101T000000Z-abc123","customers_to_crm","manual"]
