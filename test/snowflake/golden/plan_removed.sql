UPDATE "EBB"."SYNC_CHANGES" AS c
SET transformed_record = s.transformed_record
FROM "EBB"."SYNC_RECORD_STATE" s
WHERE c.run_id = ? AND c.action IN ('delete', 'untrack')
  AND s.sync_name = ? AND s.record_key = c.record_key
-- binds: ["20260101T000000Z-abc123","customers_to_crm"]
