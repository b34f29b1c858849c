SELECT count(*) AS n FROM (SELECT * FROM "ANALYTICS"."CUSTOMERS" WHERE (lifecycle_stage = 'customer')) AS __ebb_probe
-- binds: []
