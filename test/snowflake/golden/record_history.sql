INSERT INTO "EBB"."SYNC_RECORD_HISTORY"
  (run_id, sync_name, record_key, action, apply_reason, apply_state, success, app_identifier, result, transformed_record, record_hash, recorded_at, in_flight)
-- The run's outcomes, one row per record: those written one by one, and those of consecutive
-- records that all succeeded, written as one row for the lot (`keyed`: the identifier is the one
-- the change set holds, or else the record's key).
WITH outcomes AS (
  SELECT seq, action, success, app_identifier, result, error_kind, recorded_at, FALSE AS keyed
  FROM "EBB"."SYNC_OUTCOMES" WHERE run_id = ?
  UNION ALL
  SELECT c.seq, b.action, TRUE AS success,
    SPLIT_PART(b.app_identifiers, CHR(31), c.seq - b.seq_lo + 1) AS app_identifier,
    SPLIT_PART(b.results, CHR(31), c.seq - b.seq_lo + 1) AS result,
    CAST(NULL AS VARCHAR) AS error_kind, b.recorded_at, b.app_identifiers IS NULL AS keyed
  FROM "EBB"."SYNC_BATCH_OUTCOMES" b JOIN "EBB"."SYNC_CHANGES" c ON c.run_id = b.run_id AND c.seq BETWEEN b.seq_lo AND b.seq_hi
  WHERE b.run_id = ?
)
SELECT
  c.run_id, c.sync_name, c.record_key,
  coalesce(o.action, c.action),
  c.apply_reason,
  CASE
    WHEN c.source_error IS NOT NULL THEN 'SOURCE_FAILURE'
    WHEN c.action = 'untrack' THEN 'SUCCESS'
    WHEN o.seq IS NULL AND f.creates AND NOT ? THEN 'NEEDS_REVIEW'
    WHEN o.seq IS NULL THEN 'DELAYED'
    WHEN o.success THEN 'SUCCESS'
    WHEN o.error_kind = 'delayed' THEN 'DELAYED'
    WHEN o.error_kind = 'in_doubt' THEN 'NEEDS_REVIEW'
    ELSE 'FAILED'
  END,
  coalesce(o.success, c.action = 'untrack'),
  coalesce(o.app_identifier, c.app_identifier, CASE WHEN o.keyed THEN c.record_key END),
  CASE
    WHEN c.source_error IS NOT NULL THEN OBJECT_CONSTRUCT_KEEP_NULL(?, c.source_error)
    WHEN o.seq IS NULL AND f.in_flight THEN OBJECT_CONSTRUCT_KEEP_NULL(?, 'in flight when the run stopped; it may or may not have reached the app')
    ELSE PARSE_JSON(o.result)
  END,
  c.transformed_record, c.record_hash,
  coalesce(o.recorded_at, SYSDATE()),
  coalesce(f.in_flight, FALSE) OR coalesce(o.error_kind = 'in_doubt', FALSE)
FROM "EBB"."SYNC_CHANGES" c
-- Joined on seq alone: a key of one integer, not of the run id's text as well.
LEFT JOIN outcomes o ON o.seq = c.seq
-- In flight: under a mark of its batch; `creates` when a create or send of it was marked (a
-- batch of creates, or an update answered "not found" and sent again as a create). Only the
-- records without an outcome need it (none, in a run that finished): one sweep, in seq order, over
-- them and the run's marks, each mark counted from its seq_lo to its seq_hi. Marks may overlap.
LEFT JOIN (
  SELECT seq, open_marks > 0 AS in_flight, open_creates > 0 AS creates
  FROM (
    SELECT seq, is_record,
      sum(marks) OVER (ORDER BY seq, is_record ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS open_marks,
      sum(creates) OVER (ORDER BY seq, is_record ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS open_creates
    FROM (
      SELECT seq_lo AS seq, 0 AS is_record, 1 AS marks, CASE WHEN action IN ('create', 'send') THEN 1 ELSE 0 END AS creates
      FROM "EBB"."SYNC_INFLIGHT" WHERE run_id = ?
      UNION ALL
      SELECT seq_hi + 1, 0, -1, CASE WHEN action IN ('create', 'send') THEN -1 ELSE 0 END
      FROM "EBB"."SYNC_INFLIGHT" WHERE run_id = ?
      UNION ALL
      SELECT seq, 1, 0, 0 FROM (
        SELECT seq FROM "EBB"."SYNC_CHANGES" WHERE run_id = ?
        EXCEPT
        SELECT seq FROM outcomes
      ) unanswered
    ) events
  ) swept
  -- A mark opens before a record of its seq_lo, and closes (at seq_hi + 1) before a record there.
  WHERE is_record = 1
) f ON f.seq = c.seq
WHERE c.run_id = ?
  -- Recorded once: a run killed while it was being recorded is recorded again by the next run.
  AND NOT EXISTS (SELECT 1 FROM "EBB"."SYNC_RECORD_HISTORY" x WHERE x.run_id = ?)
-- binds: ["20260101T000000Z-abc123","20260101T000000Z-abc123",false,"error","note","20260101T000000Z-abc123","20260101T000000Z-abc123","20260101T000000Z-abc123","20260101T000000Z-abc123","20260101T000000Z-abc123"]
