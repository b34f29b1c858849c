SELECT MIN(seq) AS seq,
  TO_JSON(ARRAY_AGG(ARRAY_CONSTRUCT(COALESCE(TO_VARIANT(seq), PARSE_JSON('null')), COALESCE(TO_VARIANT(record_key), PARSE_JSON('null')), COALESCE(TO_VARIANT(action), PARSE_JSON('null')), COALESCE(TO_VARIANT(app_identifier), PARSE_JSON('null')), COALESCE(TO_VARIANT(in_doubt), PARSE_JSON('null')))) WITHIN GROUP (ORDER BY seq)) AS changes,
  LISTAGG(record, CHR(31)) WITHIN GROUP (ORDER BY seq) AS records
FROM (
  SELECT *, FLOOR(seq / 100) AS change_group, FLOOR(SUM(LENGTH(record) + 1) OVER (ORDER BY seq) / 2000000) AS change_group_text
  FROM (
    SELECT seq, record_key, action, app_identifier, in_doubt, COALESCE(CAST("TRANSFORMED_RECORD" AS VARCHAR), '{}') AS record
    FROM "EBB"."SYNC_CHANGES"
    WHERE run_id = ? AND seq BETWEEN ? AND ?
  AND source_error IS NULL AND action NOT IN ('none', 'untrack')
  ) AS c
) AS g
GROUP BY change_group, change_group_text
ORDER BY 1
-- binds: ["20260101T000000Z-abc123",1,50000]
