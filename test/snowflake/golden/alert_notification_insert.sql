INSERT INTO "EBB"."ALERT_NOTIFICATIONS"
  (notification_id, event, sync_name, rule, run_id, channel, channel_type, success, attempts, error, payload, sent_at)
SELECT ?, ?, ?, ?, ?,
       ?, ?, ?, ?, ?,
       PARSE_JSON(?), SYSDATE()
-- binds: ["notification-1-slack","sync.alert.firing","customers_to_crm","failed_records","20260101T000000Z-abc123","slack","slack",true,1,null,"{\"event\":\"sync.alert.firing\"}"]
