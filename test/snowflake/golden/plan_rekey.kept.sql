WITH transformed AS (
SELECT
  CASE WHEN "CUSTOMER_ID" IS NULL THEN NULL ELSE CAST("CUSTOMER_ID" AS VARCHAR) END AS __ebb_key,
  OBJECT_CONSTRUCT_KEEP_NULL(?, "EMAIL", ?, (round(score, 2)), ?, PARSE_JSON(?)) AS __ebb_record
FROM "ANALYTICS"."CUSTOMERS" WHERE (lifecycle_stage = 'customer'))
SELECT (SELECT keyed_by FROM "EBB"."SYNCS" WHERE sync_name = ?) AS keyed_by, h.held, h.kept
FROM (
  SELECT count(*) AS held, count(k.__ebb_key) AS kept
  FROM "EBB"."SYNC_RECORD_STATE" s
  LEFT JOIN (SELECT DISTINCT __ebb_key FROM transformed) k ON k.__ebb_key = s.record_key
  WHERE s.sync_name = ? AND s.first_synced_at IS NOT NULL
) h
-- binds: ["email","score","source_system","\"warehouse\"","customers_to_crm","customers_to_crm"]
