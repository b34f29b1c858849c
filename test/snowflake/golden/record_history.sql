INSERT INTO "EBB"."SYNC_RECORD_HISTORY"
  (run_id, sync_name, record_key, action, apply_reason, apply_state, success, app_identifier, result, transformed_record, record_hash, recorded_at, in_flight)
-- The run's outcomes: those written one by one, and those of consecutive records that all
-- succeeded, written as one row for the lot (`keyed`: the identifier is the one the change set
-- holds, or else the record's key).
WITH single AS (
  SELECT seq, action, success, app_identifier, result, error_kind, recorded_at
  FROM "EBB"."SYNC_OUTCOMES" WHERE run_id = ?
),
lots AS (
  SELECT seq_lo AS lo, seq_hi AS hi, action, recorded_at, app_identifiers IS NULL AS keyed, app_identifiers, results
  FROM "EBB"."SYNC_BATCH_OUTCOMES" WHERE run_id = ?
),
-- Each planned record with its outcome, if it has one (a record has one outcome at most).
outcomes AS (
  SELECT c.*, s.seq IS NOT NULL OR l.lo IS NOT NULL AS answered,
    coalesce(s.action, l.action) AS outcome_action,
    coalesce(s.success, l.lo IS NOT NULL) AS outcome_success,
    CASE WHEN s.seq IS NOT NULL THEN s.app_identifier ELSE SPLIT_PART(l.app_identifiers, CHR(31), c.seq - l.lo + 1) END AS outcome_identifier,
    CASE WHEN s.seq IS NOT NULL THEN s.result ELSE SPLIT_PART(l.results, CHR(31), c.seq - l.lo + 1) END AS outcome_result,
    s.error_kind AS outcome_error_kind,
    coalesce(s.recorded_at, l.recorded_at) AS outcome_recorded_at,
    coalesce(l.keyed, FALSE) AS outcome_keyed
  FROM "EBB"."SYNC_CHANGES" c
  -- Joined on seq alone: a key of one integer, not of the run id's text as well.
  LEFT JOIN single s ON s.seq = c.seq
  LEFT JOIN lots l ON c.seq BETWEEN l.lo AND l.hi
  WHERE c.run_id = ?
)
SELECT
  c.run_id, c.sync_name, c.record_key,
  coalesce(c.outcome_action, c.action),
  c.apply_reason,
  CASE
    WHEN c.source_error IS NOT NULL THEN 'SOURCE_FAILURE'
    WHEN c.action = 'untrack' THEN 'SUCCESS'
    WHEN NOT c.answered AND f.creates AND NOT ? THEN 'NEEDS_REVIEW'
    WHEN NOT c.answered THEN 'DELAYED'
    WHEN c.outcome_success THEN 'SUCCESS'
    WHEN c.outcome_error_kind = 'delayed' THEN 'DELAYED'
    WHEN c.outcome_error_kind = 'in_doubt' THEN 'NEEDS_REVIEW'
    ELSE 'FAILED'
  END,
  CASE WHEN c.answered THEN c.outcome_success ELSE c.action = 'untrack' END,
  coalesce(c.outcome_identifier, c.app_identifier, CASE WHEN c.outcome_keyed THEN c.record_key END),
  CASE
    WHEN c.source_error IS NOT NULL THEN OBJECT_CONSTRUCT_KEEP_NULL(?, c.source_error)
    WHEN NOT c.answered AND f.in_flight THEN OBJECT_CONSTRUCT_KEEP_NULL(?, 'in flight when the run stopped; it may or may not have reached the app')
    ELSE PARSE_JSON(c.outcome_result)
  END,
  c.transformed_record, c.record_hash,
  coalesce(c.outcome_recorded_at, SYSDATE()),
  coalesce(f.in_flight, FALSE) OR coalesce(c.outcome_error_kind = 'in_doubt', FALSE)
FROM outcomes c
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
      SELECT seq, 1, 0, 0 FROM outcomes WHERE NOT answered
    ) events
  ) swept
  -- A mark opens before a record of its seq_lo, and closes (at seq_hi + 1) before a record there.
  WHERE is_record = 1
) f ON f.seq = c.seq
-- Recorded once: a run killed while it was being recorded is recorded again by the next run.
WHERE NOT EXISTS (SELECT 1 FROM "EBB"."SYNC_RECORD_HISTORY" x WHERE x.run_id = ?)
-- binds: ["20260101T000000Z-abc123","20260101T000000Z-abc123","20260101T000000Z-abc123",false,"error","note","20260101T000000Z-abc123","20260101T000000Z-abc123","20260101T000000Z-abc123"]
