WITH errors AS (
  SELECT run_id, JSON_EXTRACT_PATH_TEXT(TO_JSON(result), 'error') AS error, count(*) AS n
  FROM "EBB"."SYNC_RECORD_HISTORY"
  WHERE run_id IN (?, ?)
    AND apply_state IN ('FAILED', 'SOURCE_FAILURE')
  GROUP BY 1, 2
)
SELECT run_id, error, n, sum(n) OVER (PARTITION BY run_id) AS failures
FROM errors
QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY n DESC, error) = 1
-- binds: ["20260101T000000Z-abc123","20260101T000000Z-def456"]
