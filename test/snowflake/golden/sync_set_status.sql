UPDATE "EBB"."SYNCS" SET status = ?,
  overrides = PARSE_JSON(?),
  updated_at = SYSDATE()
WHERE sync_name = ?
-- binds: ["HEALTHY","{\"status\":\"PAUSED\"}","customers_to_crm"]
