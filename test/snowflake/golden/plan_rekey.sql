SELECT (SELECT keyed_by FROM "EBB"."SYNCS" WHERE sync_name = ?) AS keyed_by, h.held, h.kept
FROM (
  SELECT count(*) AS held, NULL AS kept
  FROM "EBB"."SYNC_RECORD_STATE" s
  WHERE s.sync_name = ? AND s.first_synced_at IS NOT NULL
) h
-- binds: ["customers_to_crm","customers_to_crm"]
