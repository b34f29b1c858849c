SELECT count(*) AS n, CAST(HASH_AGG(*) AS VARCHAR) AS fingerprint
FROM (SELECT * FROM "ANALYTICS"."CUSTOMERS" WHERE (lifecycle_stage = 'customer')) AS __ebb_row
-- binds: []
