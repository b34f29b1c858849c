UPDATE "EBB"."SYNC_RUNS" SET
  status = ?, health = ?, finished_at = SYSDATE(),
  planned = PARSE_JSON(?),
  succeeded = ?, failed = ?, delayed = ?,
  skipped = ?, source_failures = ?, error = ?
WHERE run_id = ?
-- binds: ["HEALTHY","HEALTHY","{\"create\":1}",1,0,0,0,0,null,"20260101T000000Z-abc123"]
