UPDATE "EBB"."SYNC_RECORD_STATE" SET
  app_identifier = r.app_id,
  apply_state = CASE WHEN r.app_id IS NULL THEN 'RESYNC_REQUESTED' ELSE 'SUCCESS' END,
  record_hash = CASE WHEN r.app_id IS NULL THEN "EBB"."SYNC_RECORD_STATE".record_hash END,
  first_synced_at = CASE WHEN r.app_id IS NOT NULL THEN SYSDATE() END,
  last_synced_at = CASE WHEN r.app_id IS NOT NULL THEN SYSDATE() ELSE "EBB"."SYNC_RECORD_STATE".last_synced_at END,
  failure_count = 0,
  maybe_in_app = NULL
FROM (
SELECT CAST(? AS VARCHAR) AS record_key, CAST(? AS VARCHAR) AS app_id UNION ALL SELECT CAST(? AS VARCHAR) AS record_key, CAST(? AS VARCHAR) AS app_id) r
WHERE "EBB"."SYNC_RECORD_STATE".sync_name = ? AND "EBB"."SYNC_RECORD_STATE".record_key = r.record_key
  AND "EBB"."SYNC_RECORD_STATE".apply_state = 'NEEDS_REVIEW'
-- binds: ["1","c1","2",null,"customers_to_crm"]
