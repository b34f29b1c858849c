SELECT MIN(seq) AS seq,
  TO_JSON(ARRAY_AGG(OBJECT_CONSTRUCT_KEEP_NULL(?, seq, ?, record_key, ?, action, ?, app_identifier, ?, in_doubt)) WITHIN GROUP (ORDER BY seq)) AS changes,
  LISTAGG(COALESCE(CAST("TRANSFORMED_RECORD" AS VARCHAR), '{}'), CHR(31)) WITHIN GROUP (ORDER BY seq) AS records
FROM "EBB"."SYNC_CHANGES"
WHERE run_id = ? AND seq BETWEEN ? AND ?
  AND source_error IS NULL AND action NOT IN ('none', 'untrack')
GROUP BY FLOOR(seq / 100)
ORDER BY 1
-- binds: ["seq","key","action","appId","inDoubt","20260101T000000Z-abc123",1,50000]
