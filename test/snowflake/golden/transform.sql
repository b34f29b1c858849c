SELECT
  CASE WHEN "CUSTOMER_ID" IS NULL THEN NULL ELSE CAST("CUSTOMER_ID" AS VARCHAR) END AS __ebb_key,
  OBJECT_CONSTRUCT_KEEP_NULL(?, "EMAIL", ?, (round(score, 2)), ?, PARSE_JSON(?)) AS __ebb_record
FROM "ANALYTICS"."CUSTOMERS" WHERE (lifecycle_stage = 'customer')
-- binds: ["email","score","source_system","\"warehouse\""]
