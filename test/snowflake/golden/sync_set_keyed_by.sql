UPDATE "EBB"."SYNCS" SET keyed_by = ? WHERE sync_name = ?
-- binds: ["[\"customer_id\"]","customers_to_crm"]
