SELECT count(*) AS n FROM "ANALYTICS"."CUSTOMERS" WHERE (lifecycle_stage = 'customer')
-- binds: []
