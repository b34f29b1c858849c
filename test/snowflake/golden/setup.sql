CREATE SCHEMA IF NOT EXISTS "EBB";
-- then
CREATE TABLE IF NOT EXISTS "EBB"."SCHEMA_VERSION" (version INTEGER, applied_at TIMESTAMP_NTZ);
CREATE TABLE IF NOT EXISTS "EBB"."SYNCS" (
  sync_name VARCHAR, definition VARIANT, definition_hash VARCHAR, origin VARCHAR,
  project_version INTEGER, status VARCHAR, health VARCHAR, overrides VARIANT, schedule VARCHAR,
  last_run_id VARCHAR, created_at TIMESTAMP_NTZ, updated_at TIMESTAMP_NTZ,
  lock_run_id VARCHAR, lock_holder VARCHAR, lock_expires_at TIMESTAMP_NTZ,
  former_names VARIANT
);
CREATE TABLE IF NOT EXISTS "EBB"."DEPLOYS" (
  deploy_id VARCHAR, project_name VARCHAR, project_version INTEGER, deployed_at TIMESTAMP_NTZ,
  deployed_by VARCHAR, summary VARIANT
);
CREATE TABLE IF NOT EXISTS "EBB"."SYNC_RUNS" (
  run_id VARCHAR, sync_name VARCHAR, "trigger" VARCHAR, status VARCHAR, health VARCHAR,
  started_at TIMESTAMP_NTZ, finished_at TIMESTAMP_NTZ, planned VARIANT,
  succeeded INTEGER, failed INTEGER, delayed INTEGER, skipped INTEGER, source_failures INTEGER, error VARCHAR
);
CREATE TABLE IF NOT EXISTS "EBB"."SYNC_RECORD_STATE" (
  sync_name VARCHAR, record_key VARCHAR, app_identifier VARCHAR, record_hash VARCHAR,
  transformed_record VARIANT, apply_state VARCHAR, apply_reason VARCHAR, last_action VARCHAR,
  failure_count INTEGER, last_result VARIANT, last_run_id VARCHAR,
  first_synced_at TIMESTAMP_NTZ, last_synced_at TIMESTAMP_NTZ,
  maybe_in_app BOOLEAN
);
CREATE TABLE IF NOT EXISTS "EBB"."SYNC_RECORD_HISTORY" (
  run_id VARCHAR, sync_name VARCHAR, record_key VARCHAR, action VARCHAR, apply_reason VARCHAR,
  apply_state VARCHAR, success BOOLEAN, app_identifier VARCHAR, result VARIANT,
  transformed_record VARIANT, record_hash VARCHAR, recorded_at TIMESTAMP_NTZ,
  in_flight BOOLEAN
);
CREATE TABLE IF NOT EXISTS "EBB"."RUN_REQUESTS" (
  request_id VARCHAR, sync_name VARCHAR, "trigger" VARCHAR, requested_at TIMESTAMP_NTZ,
  claimed_by VARCHAR, claimed_at TIMESTAMP_NTZ, finished_at TIMESTAMP_NTZ, run_id VARCHAR
);
CREATE TABLE IF NOT EXISTS "EBB"."SYNC_CHANGES" (
  run_id VARCHAR, sync_name VARCHAR, seq BIGINT, record_key VARCHAR, action VARCHAR,
  apply_reason VARCHAR, record_hash VARCHAR, transformed_record VARIANT,
  app_identifier VARCHAR, source_error VARCHAR, in_doubt BOOLEAN
);
CREATE TABLE IF NOT EXISTS "EBB"."SYNC_OUTCOMES" (
  run_id VARCHAR, seq BIGINT, action VARCHAR, success BOOLEAN, app_identifier VARCHAR,
  result VARCHAR, error_kind VARCHAR, recorded_at TIMESTAMP_NTZ
);
-- The outcomes of consecutive records that all succeeded, one row for the lot: seq_lo to seq_hi,
-- each record's identifier and result separated by CHR(31) (NULL: the identifier the change set
-- holds, or the record's key; no result). record_history reads them as one row per record.
CREATE TABLE IF NOT EXISTS "EBB"."SYNC_BATCH_OUTCOMES" (
  run_id VARCHAR, seq_lo BIGINT, seq_hi BIGINT, action VARCHAR, app_identifiers VARCHAR, results VARCHAR,
  recorded_at TIMESTAMP_NTZ
);
CREATE TABLE IF NOT EXISTS "EBB"."SYNC_INFLIGHT" (
  run_id VARCHAR, action VARCHAR, seq_lo BIGINT, seq_hi BIGINT, sent_at TIMESTAMP_NTZ
);
-- Alerting: the state of each (sync, rule), and every notification that was sent or tried.
CREATE TABLE IF NOT EXISTS "EBB"."SYNC_ALERTS" (
  sync_name VARCHAR, rule VARCHAR, state VARCHAR, since TIMESTAMP_NTZ, message VARCHAR, run_id VARCHAR,
  updated_at TIMESTAMP_NTZ
);
CREATE TABLE IF NOT EXISTS "EBB"."ALERT_NOTIFICATIONS" (
  notification_id VARCHAR, event VARCHAR, sync_name VARCHAR, rule VARCHAR, run_id VARCHAR, channel VARCHAR,
  channel_type VARCHAR, success BOOLEAN, attempts INTEGER, error VARCHAR, payload VARIANT,
  sent_at TIMESTAMP_NTZ
);
-- The deploy lock: one row that a deploy takes around its catalog writes (deploy_lock_take.sql.njk).
CREATE TABLE IF NOT EXISTS "EBB"."DEPLOY_LOCK" (holder VARCHAR, expires_at TIMESTAMP_NTZ);
-- then
-- Columns added later: ALTERs, so that a warehouse set up by an older ebb gets them too.
ALTER TABLE "EBB"."SYNCS" ADD COLUMN IF NOT EXISTS keyed_by VARCHAR;
-- 2: the version of record_hash's formula (see plan_rehash.sql.njk); null for the first one.
ALTER TABLE "EBB"."SYNC_RECORD_STATE" ADD COLUMN IF NOT EXISTS hash_version INTEGER;
-- The rows the source had at a run, counted when a volume alert watches them.
ALTER TABLE "EBB"."SYNC_RUNS" ADD COLUMN IF NOT EXISTS source_rows BIGINT;
INSERT INTO "EBB"."DEPLOY_LOCK" (holder) SELECT NULL WHERE NOT EXISTS (SELECT 1 FROM "EBB"."DEPLOY_LOCK");
-- then
-- 3: the project whose deploy wrote a sync (projects may share a state schema); null before. (A
-- table's ALTERs go one after the other.)
ALTER TABLE "EBB"."SYNCS" ADD COLUMN IF NOT EXISTS project_name VARCHAR;
-- then
CREATE OR REPLACE VIEW "EBB"."SYNC_HEALTH" COPY GRANTS AS
SELECT s.sync_name, s.status, s.health, s.schedule, s.last_run_id, r.status AS last_run_status,
       r.started_at AS last_run_started_at, r.finished_at AS last_run_finished_at,
       r.succeeded, r.failed, r.delayed, r.source_failures, r.error AS last_error,
       (SELECT count(*) FROM "EBB"."SYNC_RECORD_STATE" st WHERE st.sync_name = s.sync_name) AS records,
       (SELECT count(*) FROM "EBB"."SYNC_RECORD_STATE" st WHERE st.sync_name = s.sync_name
          AND st.apply_state IN ('FAILED', 'SOURCE_FAILURE', 'NEEDS_REVIEW')) AS failing_records
FROM "EBB"."SYNCS" s LEFT JOIN "EBB"."SYNC_RUNS" r ON r.run_id = s.last_run_id;
CREATE OR REPLACE VIEW "EBB"."FAILED_RECORDS" COPY GRANTS AS
SELECT sync_name, record_key, apply_state, apply_reason, last_action, failure_count, last_result,
       transformed_record, last_run_id, last_synced_at
FROM "EBB"."SYNC_RECORD_STATE" WHERE apply_state IN ('FAILED', 'SOURCE_FAILURE', 'NEEDS_REVIEW');
-- binds: []
