UPDATE "EBB"."SYNC_RECORD_STATE"
SET record_hash = CASE WHEN transformed_record IS NULL THEN NULL ELSE MD5(TO_JSON(ARRAY_CONSTRUCT(GET(transformed_record, ?), GET(transformed_record, ?), GET(transformed_record, ?)))) END,
    hash_version = ?
WHERE sync_name = ? AND hash_version IS NULL
-- binds: ["email","score","source_system",2,"customers_to_crm"]
