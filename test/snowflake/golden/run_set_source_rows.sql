UPDATE "EBB"."SYNC_RUNS" SET source_rows = ? WHERE run_id = ?
-- binds: [10,"20260101T000000Z-abc123"]
