SELECT count(*) AS n FROM "EBB"."RUN_REQUESTS"
WHERE finished_at IS NULL AND (claimed_by IS NULL OR claimed_at < CAST(? AS TIMESTAMP_NTZ))
-- binds: ["2025-12-31T23:59:30.000Z"]
