SELECT sync_name, rule, state, since, message, run_id, updated_at
FROM "EBB"."SYNC_ALERTS"
WHERE 1 = 1 AND state = 'FIRING'ORDER BY sync_name, rule
-- binds: []
