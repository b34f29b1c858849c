INSERT INTO "EBB"."SYNC_INFLIGHT" (run_id, action, seq_lo, seq_hi, sent_at)
SELECT run_id, action, min(seq), max(seq), SYSDATE()
FROM (
  SELECT run_id, action, seq, seq - row_number() OVER (PARTITION BY action ORDER BY seq) AS island
  FROM "EBB"."SYNC_CHANGES"
  WHERE run_id = ? AND seq BETWEEN ? AND ?
  AND source_error IS NULL AND action NOT IN ('none', 'untrack') AND action NOT IN ('create', 'send')
) w
GROUP BY run_id, action, island
-- binds: ["20260101T000000Z-abc123",1,50000]
