SELECT (round(score, 2)) AS __ebb_value FROM "ANALYTICS"."CUSTOMERS"
-- binds: []
