/**
 * The API's request and response schemas, in zod: the routes validate with them, and the OpenAPI
 * document is generated from them. Responses carry what engine/ops returns, field for field.
 */
import { z } from '@hono/zod-openapi';
import { overridesSchema } from '../catalog/catalog.ts';

const time = z.string().openapi({ format: 'date-time', description: 'UTC' });
const count = z.number().int();
const json = z.unknown().openapi({ description: 'JSON' });

export const SyncName = z.string().min(1).openapi({ param: { name: 'name', in: 'path' }, example: 'customers_to_crm' });
export const RunId = z.string().min(1).openapi({ param: { name: 'run_id', in: 'path' }, example: '20261122T210501Z-3fa9c1' });
export const RecordKey = z.string().openapi({ param: { name: 'key', in: 'path' }, description: 'The record key as text; a composite key is its values as a JSON array', example: '42' });

/** `?limit=&offset=`, with `next_offset` in the answer (null on the last page). */
export const Page = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(50).openapi({ description: 'Items per page (1 to 1000, default 50)' }),
  offset: z.coerce.number().int().min(0).default(0).openapi({ description: 'Items to skip' }),
});

/** A page of items. */
export function paged<T extends z.ZodType>(item: T, name: string) {
  return z
    .object({
      items: z.array(item),
      limit: count,
      offset: count,
      next_offset: count.nullable().openapi({ description: 'The offset of the next page; null when this is the last one' }),
    })
    .openapi(name);
}

export const TopError = z
  .object({ error: z.string(), records: count.openapi({ description: 'Records that failed with this error' }), failures: count.openapi({ description: 'Records that failed in all' }) })
  .openapi('TopError');

const status = z.enum(['ACTIVE', 'PAUSED', 'COMPLETED', 'ERROR', 'NOT DEPLOYED']).openapi({ description: 'NOT DEPLOYED: in ebb.yml, not yet in the catalog (the next run deploys it)' });
const health = z.enum(['PENDING', 'HEALTHY', 'INCOMPLETE', 'FAILED', 'DELAYED']);
const nullableCount = count.nullable().optional();

export const SyncSummary = z
  .object({
    sync_name: z.string(),
    status,
    health,
    tags: z.array(z.string()),
    schedule: z.string().nullable().optional().openapi({ description: 'The schedule in force, as JSON text: "manual", {"every":"15m"}, {"cron":"0 * * * *"}, "live"' }),
    origin: z.enum(['code', 'admin']).nullable().optional(),
    overrides: z.record(z.string(), json).nullable().optional().openapi({ description: "The admin's overrides, which win over the code" }),
    override_issues: z.array(z.string()).nullable().optional().openapi({ description: 'Overrides that were not applied, as `path: message`' }),
    last_run_id: z.string().nullable().optional(),
    last_run_status: z.string().nullable().optional(),
    last_run_started_at: time.nullable().optional(),
    last_run_finished_at: time.nullable().optional(),
    succeeded: nullableCount,
    failed: nullableCount,
    delayed: nullableCount,
    source_failures: nullableCount,
    last_error: z.string().nullable().optional(),
    records: nullableCount.openapi({ description: 'Records ebb holds for the sync' }),
    failing_records: nullableCount.openapi({ description: 'Records FAILED, SOURCE_FAILURE or NEEDS_REVIEW now' }),
    top_error: TopError.nullable().optional(),
    alerts_firing: z
      .array(z.object({ rule: z.string(), since: time.nullable(), message: z.string() }))
      .optional()
      .openapi({ description: 'The alert rules firing on the sync now (see the README: Alerts and notifications)' }),
  })
  .openapi('SyncSummary');

const definition = z.record(z.string(), json).openapi({ description: 'A sync as ebb.yml defines it (secrets masked)' });

export const SyncDetail = z
  .object({
    sync_name: z.string(),
    code: definition.nullable().openapi({ description: 'As ebb.yml defines it now; null when only the catalog holds it' }),
    deployed: definition.nullable().openapi({ description: 'As last deployed; null when not deployed' }),
    status,
    health,
    origin: z.enum(['code', 'admin']).nullable(),
    overrides: z.record(z.string(), json),
    override_issues: z.array(z.object({ path: z.string(), message: z.string() })),
    former_names: z.array(z.string()),
    records: count,
    summary: SyncSummary,
  })
  .openapi('SyncDetail');

const runStatus = z.enum(['RUNNING', 'HEALTHY', 'INCOMPLETE', 'FAILED', 'DELAYED', 'CANCELLED']);
const trigger = z.enum(['manual', 'schedule', 'live', 'task', 'api', 'dbt', 'airflow']);

export const Run = z
  .object({
    run_id: z.string(),
    sync_name: z.string(),
    trigger,
    status: runStatus.nullable(),
    started_at: time.nullable(),
    finished_at: time.nullable(),
    duration_s: z.number().nullable().openapi({ description: 'Seconds from start to finish; null while running' }),
    planned: z.record(z.string(), count).nullable().openapi({ description: 'Records per action, as planned' }),
    succeeded: nullableCount,
    failed: nullableCount,
    delayed: nullableCount,
    skipped: nullableCount,
    source_failures: nullableCount,
    untracked: nullableCount,
    error: z.string().nullable(),
    phase: z.enum(['plan', 'apply', 'record']).nullable().openapi({ description: 'While this server runs it: what the run is doing; null otherwise' }),
    progress: z
      .object({ planned: count.nullable().openapi({ description: 'Records to send; null until the plan is made' }), applied: count })
      .nullable()
      .openapi({ description: 'While this server runs it: records with an outcome so far' }),
  })
  .openapi('Run');

export const RunAccepted = z
  .object({
    run_id: z.string(),
    sync_name: z.string(),
    status: z.literal('RUNNING'),
    url: z.string().openapi({ description: 'Where to follow the run: GET it until `status` is no longer RUNNING' }),
  })
  .openapi('RunAccepted');

export const RunQueued = z
  .object({
    request_id: z.string(),
    sync_name: z.string(),
    status: z.literal('QUEUED'),
    url: z.string().openapi({ description: 'Where to follow the request: GET it until it has a run_id, then follow the run' }),
  })
  .openapi('RunQueued');

export const RunRequest = z
  .object({
    request_id: z.string(),
    sync_name: z.string(),
    trigger,
    requested_at: time,
    claimed_by: z.string().nullable().openapi({ description: 'The worker that took it' }),
    claimed_at: time.nullable(),
    finished_at: time.nullable(),
    run_id: z.string().nullable().openapi({ description: 'The run that served it; null until then, or when its sync could not run' }),
  })
  .openapi('RunRequest');

export const RecordState = z
  .object({
    record_key: z.string(),
    app_identifier: z.string().nullable(),
    apply_state: z.string().openapi({ description: 'SUCCESS, FAILED, SOURCE_FAILURE, DELAYED, NEEDS_REVIEW, SKIPPED_ONCE, SKIPPED_ALWAYS, RESYNC_REQUESTED' }),
    apply_reason: z.string().nullable(),
    last_action: z.string().nullable(),
    failure_count: nullableCount,
    last_result: json.optional(),
    transformed_record: json.optional(),
    last_run_id: z.string().nullable(),
    first_synced_at: time.nullable(),
    last_synced_at: time.nullable(),
    maybe_in_app: z.boolean().nullable().optional(),
  })
  .openapi('RecordState');

export const HistoryEntry = z
  .object({
    run_id: z.string(),
    record_key: z.string(),
    action: z.string(),
    apply_reason: z.string().nullable(),
    apply_state: z.string().nullable().optional(),
    success: z.boolean().nullable(),
    app_identifier: z.string().nullable(),
    result: json.optional().openapi({ description: 'What the app answered' }),
    transformed_record: json.optional().openapi({ description: 'What was sent' }),
    recorded_at: time,
  })
  .openapi('HistoryEntry');

export const HistoryPage = paged(HistoryEntry, 'HistoryPage');

export const Plan = z
  .object({
    sync: z.string(),
    strategy: z.string(),
    actions: z.record(z.string(), count),
    reasons: z.record(z.string(), count),
    total: count,
    samples: z.array(z.record(z.string(), json)),
    destructive: z.string().optional(),
  })
  .openapi('Plan');

/** A page of a list that the server holds whole (the syncs of a project). */
export function pageOf<T>(all: T[], limit: number, offset: number) {
  const items = all.slice(offset, offset + limit);
  return { items, limit, offset, next_offset: offset + limit < all.length ? offset + limit : null };
}

/** A page read with one item more than asked, which tells whether another page follows. */
export function pageFromOneMore<T>(rows: T[], limit: number, offset: number) {
  return { items: rows.slice(0, limit), limit, offset, next_offset: rows.length > limit ? offset + limit : null };
}

/** A JSON response of a route, for its OpenAPI description. */
export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { 'application/json': { schema } } };
}

/** A yes/no query parameter: `?full_resync=true`. */
export function flag(description: string) {
  return z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true')
    .openapi({ description });
}

const override = overridesSchema.shape;

/** The overrides an admin may set; a field given as null is removed, one left out is kept. */
export const OverridesPatch = z
  .strictObject({
    status: override.status.unwrap().nullable().optional().openapi({ description: 'PAUSED pauses the sync; ACTIVE, or null, lifts the pause' }),
    schedule: override.schedule.unwrap().nullable().optional().openapi({ description: '"manual", "once", "live", {"every": "15m"} or {"cron": "0 * * * *"}' }),
    batch_size: override.batch_size.unwrap().nullable().optional(),
    max_run_seconds: override.max_run_seconds.unwrap().nullable().optional(),
    rate_limit: override.rate_limit.unwrap().nullable().optional(),
  })
  .openapi('OverridesPatch');

export const SyncDeleted = z.object({ sync: z.string(), records: count.openapi({ description: 'Records whose state was dropped' }) }).openapi('SyncDeleted');

export const DeployResult = z
  .object({
    project: z.string(),
    version: count,
    catalogVersion: count.nullable().openapi({ description: 'The highest project version that ever committed to this catalog' }),
    steps: z.array(
      z.object({
        sync: z.string(),
        kind: z.enum(['new', 'updated', 'identical', 'renamed', 'orphaned']),
        action: z.enum(['create', 'update', 'rename', 'none', 'pause', 'delete', 'keep']),
        changed: z.array(z.string()).optional(),
        from: z.string().optional(),
        records: count.optional(),
        destructive: z.record(z.string(), json).optional().openapi({ description: 'A change that would delete, orphan or recreate the records the sync holds' }),
      }),
    ),
    committed: z.boolean(),
    tasks: z
      .object({ schema: z.string(), steps: z.array(z.object({ object: z.enum(['task', 'stream']), name: z.string(), sync: z.string(), kind: z.string(), detail: z.string(), ddl: z.array(z.string()) })) })
      .nullable()
      .openapi({ description: 'On Snowflake: the tasks and streams that queue the scheduled runs' }),
  })
  .openapi('DeployResult');
