SELECT sync_name, apply_state, count(*) AS n
FROM "EBB"."SYNC_RECORD_STATE"
GROUP BY sync_name, apply_state
-- binds: []
