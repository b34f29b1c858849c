INSERT INTO "EBB"."SYNC_CHANGES"
  (run_id, sync_name, seq, record_key, action, apply_reason, record_hash, transformed_record, app_identifier, source_error, in_doubt)
WITH transformed AS (
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
),
-- The keys that more than one source row has: a GROUP BY, and a join with what is usually nothing.
duplicates AS (
  SELECT __ebb_key, count(*) AS __ebb_count FROM transformed GROUP BY __ebb_key HAVING count(*) > 1
),
counted AS (
  SELECT t.__ebb_key, TRUE AS __ebb_in, t.__ebb_f0, t.__ebb_f1, t.__ebb_error, MD5(TO_JSON(ARRAY_CONSTRUCT(GET(__ebb_record, ?), GET(__ebb_record, ?), GET(__ebb_record, ?)))) AS __ebb_hash, u.__ebb_count
  FROM transformed t LEFT JOIN duplicates u ON u.__ebb_key = t.__ebb_key
),
-- What the plan compares with: the state without its records (read below for the records that left
-- the source, the only ones that need them).
state AS (
  SELECT record_key, app_identifier, record_hash, apply_state, apply_reason, last_action, first_synced_at, maybe_in_app
  FROM "EBB"."SYNC_RECORD_STATE" WHERE sync_name = ?
),
joined AS (
  SELECT
    coalesce(c.__ebb_key, s.record_key) AS record_key,
    c.__ebb_in IS NOT NULL AS in_source, c.__ebb_f0, c.__ebb_f1,
    c.__ebb_error, c.__ebb_hash, c.__ebb_count,
    s.record_key AS state_key, s.app_identifier, s.record_hash,
    s.apply_state, s.apply_reason AS state_reason, s.last_action, s.first_synced_at,
    coalesce(s.maybe_in_app, FALSE) AND s.first_synced_at IS NULL AS in_doubt
  FROM counted c FULL OUTER JOIN state s ON c.__ebb_key = s.record_key
),
checked AS (
  SELECT *,
    CASE
      -- the message is bound, not inlined: a column name may hold a quote
      WHEN in_source AND record_key IS NULL THEN CAST(? AS VARCHAR)
      WHEN in_source AND __ebb_count > 1 THEN 'duplicate key: ' || CAST(__ebb_count AS VARCHAR) || ' source rows have this key; keys must be unique'
      -- a mapped value that cannot be sent (see transform.sql.njk)
      WHEN in_source THEN __ebb_error
    END AS source_error
  FROM joined
),
reasoned AS (
  SELECT *,
    CASE
      WHEN apply_state IN ('SKIPPED_ALWAYS', 'NEEDS_REVIEW') THEN NULL
      WHEN in_source AND source_error IS NOT NULL THEN CASE WHEN first_synced_at IS NULL THEN 'NEW' ELSE 'CHANGED' END
      WHEN apply_state = 'RESYNC_REQUESTED' THEN 'RESYNC_REQUESTED'
      WHEN apply_state IN ('FAILED', 'SOURCE_FAILURE') THEN 'PREVIOUSLY_FAILED'
      WHEN apply_state = 'DELAYED' THEN state_reason
      WHEN NOT in_source THEN CASE WHEN last_action = 'clear' AND apply_state = 'SUCCESS' THEN NULL ELSE 'REMOVED' END
      WHEN state_key IS NULL OR (first_synced_at IS NULL AND record_hash IS DISTINCT FROM __ebb_hash) THEN 'NEW'
      WHEN record_hash IS DISTINCT FROM __ebb_hash THEN 'CHANGED'
    END AS apply_reason
  FROM checked
),
planned AS (
  SELECT *,
    CASE
      WHEN apply_reason IS NULL OR source_error IS NOT NULL THEN NULL
      WHEN NOT in_source THEN
        CASE
          WHEN first_synced_at IS NULL AND NOT in_doubt THEN 'untrack'
          ELSE 'delete'
        END
      WHEN first_synced_at IS NULL THEN 'create'
      ELSE 'update'
    END AS action
  FROM reasoned
),
-- Apply reads in seq order: records delayed by the last run first, then one action at a time,
-- by key, so that a run sends in the same order whatever plan the warehouse picks.
numbered AS (
  SELECT *, row_number() OVER (ORDER BY CASE WHEN apply_state = 'DELAYED' THEN 0 ELSE 1 END, action, record_key) AS seq FROM planned WHERE NOT coalesce(apply_state = 'SUCCESS' AND record_hash = __ebb_hash AND __ebb_count IS NULL AND __ebb_error IS NULL, FALSE) AND (action IS NOT NULL OR source_error IS NOT NULL)
)
SELECT
  ?, ?, n.seq, n.record_key,
  coalesce(n.action, 'none'), n.apply_reason,
  CASE WHEN n.action = 'clear' THEN MD5(TO_JSON(ARRAY_CONSTRUCT(GET(OBJECT_CONSTRUCT_KEEP_NULL(?, NULL, ?, NULL, ?, NULL), ?), GET(OBJECT_CONSTRUCT_KEEP_NULL(?, NULL, ?, NULL, ?, NULL), ?), GET(OBJECT_CONSTRUCT_KEEP_NULL(?, NULL, ?, NULL, ?, NULL), ?)))) ELSE coalesce(n.__ebb_hash, n.record_hash) END,
  CASE
    WHEN n.action = 'clear' THEN OBJECT_CONSTRUCT_KEEP_NULL(?, NULL, ?, NULL, ?, NULL)
    WHEN n.in_source THEN OBJECT_CONSTRUCT_KEEP_NULL(?, n.__ebb_f0, ?, n.__ebb_f1, ?, PARSE_JSON(?))
    -- A record that left the source: plan_removed.sql.njk writes the record ebb holds of it.
  END,
  n.app_identifier, n.source_error, n.in_doubt
FROM numbered n
-- binds: ["email","score","source_system","\"warehouse\"","email is ","; JSON has no NaN or Infinity: fix the source, or map email with a SQL expression that makes such values null","email holds NaN or Infinity; JSON has no NaN or Infinity: fix the source, or map email with a SQL expression without such values","score is ","; JSON has no NaN or Infinity: fix the source, or map score with a SQL expression that makes such values null","score holds NaN or Infinity; JSON has no NaN or Infinity: fix the source, or map score with a SQL expression without such values","email","score","source_system","customers_to_crm","null key: the key column customer_id must not be null","20260101T000000Z-abc123","customers_to_crm","email","score","source_system","email","email","score","source_system","score","email","score","source_system","source_system","email","score","source_system","email","score","source_system","\"warehouse\""]
