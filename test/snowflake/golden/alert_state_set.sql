MERGE INTO "EBB"."SYNC_ALERTS" a
USING (SELECT ? AS sync_name, ? AS rule, ? AS state,
              ? AS message, ? AS run_id) c
ON a.sync_name = c.sync_name AND a.rule = c.rule
WHEN MATCHED THEN UPDATE SET
  since = CASE WHEN a.state = c.state THEN a.since ELSE SYSDATE() END,
  state = c.state, message = c.message, run_id = c.run_id, updated_at = SYSDATE()
WHEN NOT MATCHED THEN INSERT (sync_name, rule, state, since, message, run_id, updated_at)
VALUES (c.sync_name, c.rule, c.state, SYSDATE(), c.message, c.run_id, SYSDATE())
-- binds: ["customers_to_crm","failed_records","FIRING","3 of 10 records sent failed (30%; the limit is 20%)","20260101T000000Z-abc123"]
