SELECT
  __ebb_key, __ebb_k0, __ebb_f0, __ebb_f1, __ebb_error,
  OBJECT_CONSTRUCT_KEEP_NULL(?, __ebb_f0, ?, __ebb_f1, ?, PARSE_JSON(?)) AS __ebb_record
FROM (
SELECT
  __ebb_key, __ebb_k0,
CASE WHEN (IS_REAL(TO_VARIANT(__ebb_v0)) AND TO_VARCHAR(TO_VARIANT(__ebb_v0)) IN ('NaN', 'inf', '-inf', 'Infinity', '-Infinity')) OR FALSE THEN NULL ELSE __ebb_v0 END AS __ebb_f0,
CASE WHEN (IS_REAL(TO_VARIANT(__ebb_v1)) AND TO_VARCHAR(TO_VARIANT(__ebb_v1)) IN ('NaN', 'inf', '-inf', 'Infinity', '-Infinity')) OR FALSE THEN NULL ELSE __ebb_v1 END AS __ebb_f1,
CASE WHEN (IS_REAL(TO_VARIANT(__ebb_v0)) AND TO_VARCHAR(TO_VARIANT(__ebb_v0)) IN ('NaN', 'inf', '-inf', 'Infinity', '-Infinity')) THEN ? || TO_VARCHAR(TO_VARIANT(__ebb_v0)) || ? WHEN FALSE THEN ? WHEN (IS_REAL(TO_VARIANT(__ebb_v1)) AND TO_VARCHAR(TO_VARIANT(__ebb_v1)) IN ('NaN', 'inf', '-inf', 'Infinity', '-Infinity')) THEN ? || TO_VARCHAR(TO_VARIANT(__ebb_v1)) || ? WHEN FALSE THEN ? END AS __ebb_error
FROM (
  SELECT
    CASE WHEN "CUSTOMER_ID" IS NULL THEN NULL ELSE CAST("CUSTOMER_ID" AS VARCHAR) END AS __ebb_key, "CUSTOMER_ID" AS __ebb_k0,
"EMAIL" AS __ebb_v0,
(round(score, 2)) AS __ebb_v1
  FROM "ANALYTICS"."CUSTOMERS" WHERE (lifecycle_stage = 'customer')
) AS __ebb_mapped
) AS __ebb_values
-- binds: ["email","score","source_system","\"warehouse\"","email is ","; JSON has no NaN or Infinity: fix the source, or map email with a SQL expression that makes such values null","email holds NaN or Infinity; JSON has no NaN or Infinity: fix the source, or map email with a SQL expression without such values","score is ","; JSON has no NaN or Infinity: fix the source, or map score with a SQL expression that makes such values null","score holds NaN or Infinity; JSON has no NaN or Infinity: fix the source, or map score with a SQL expression without such values"]
