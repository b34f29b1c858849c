SELECT * FROM "ANALYTICS"."CUSTOMERS" WHERE (lifecycle_stage = 'customer')
-- binds: []
