SELECT notification_id, event, sync_name, rule, run_id, channel, channel_type, success, attempts, error, sent_at
FROM "EBB"."ALERT_NOTIFICATIONS"
WHERE sync_name = ?
ORDER BY sent_at DESC, notification_id
LIMIT ?
-- binds: ["customers_to_crm",50]
