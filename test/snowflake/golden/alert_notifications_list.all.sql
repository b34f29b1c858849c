SELECT notification_id, event, sync_name, rule, run_id, channel, channel_type, success, attempts, error, sent_at
FROM "EBB"."ALERT_NOTIFICATIONS"
ORDER BY sent_at DESC, notification_id
LIMIT ?
-- binds: [50]
