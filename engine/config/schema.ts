/** The zod schema of ebb.yml (SPEC §1), and the types derived from it. */
import { z } from 'zod';
import { Cron } from 'croner';
import { projectAlertsSchema, syncAlertsSchema } from './alerts.ts';

const name = z.string().min(1, 'must not be empty');
const positiveInt = z.number().int().positive();

const duckdbWarehouse = z.strictObject({
  type: z.literal('duckdb'),
  path: z.string().default('warehouse.duckdb'),
  state_schema: name.default('ebb'),
  /** DuckDB's memory_limit (e.g. 512MB); past it, DuckDB spills to disk. Default: DuckDB's (80% of RAM). */
  memory_limit: z.string().regex(/^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i, 'must look like 512MB or 2GB').optional(),
});

const snowflakeWarehouse = z.strictObject({
  type: z.literal('snowflake'),
  account: name,
  username: name,
  password: z.string().optional(),
  private_key_path: z.string().optional(),
  private_key_passphrase: z.string().optional(),
  role: z.string().optional(),
  warehouse: z.string().optional(),
  database: name,
  schema: z.string().optional(),
  state_schema: name.default('ebb'),
  access_url: z.string().optional(),
  host: z.string().optional(),
  port: positiveInt.optional(),
  protocol: z.enum(['http', 'https']).optional(),
});

const connection = z.strictObject({
  plugin: name,
  config: z.record(z.string(), z.unknown()).default({}),
  rate_limit: z.strictObject({ requests: positiveInt, per_seconds: z.number().positive() }).optional(),
  concurrency: positiveInt.default(4),
  retry: z
    .strictObject({
      /** Seconds to wait before each technical retry; its length is the number of retries. */
      delays_seconds: z.array(z.number().nonnegative()).default([3, 5, 10]),
      /** The longest wait a `Retry-After` may ask for; past it the record is DELAYED to the next run. */
      max_wait_seconds: z.number().nonnegative().default(60),
    })
    .default({ delays_seconds: [3, 5, 10], max_wait_seconds: 60 }),
});

const mappingValue = z.union(
  [
    z.string().min(1, 'must name a source column'),
    z.strictObject({ sql: z.string().min(1, 'must be a SQL expression') }),
    z.strictObject({ value: z.union([z.string(), z.number(), z.boolean(), z.null()]) }),
  ],
  { error: 'must be a source column name, { sql: "<expression>" } or { value: <static value> }' },
);

/** Croner's reason when a cron expression is not valid (five fields, or six with seconds first), else null. */
function cronProblem(pattern: string): string | null {
  try {
    new Cron(pattern, { timezone: 'UTC', paused: true }).stop();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

const interval = z
  .string()
  .regex(/^\d+\s*(s|m|h|d)$/, 'must look like 30s, 15m, 2h or 1d')
  .refine((every) => Number.parseInt(every, 10) > 0, 'must be longer than 0');

const cronSchema = z.strictObject({
  cron: z.string().superRefine((pattern, ctx) => {
    const problem = cronProblem(pattern);
    if (problem) ctx.addIssue({ code: 'custom', message: `not a valid cron expression (${problem}); write five fields, e.g. "0 * * * *", or six with seconds first` });
  }),
});

export const scheduleSchema = z.union([
  z.enum(['manual', 'once', 'live']),
  z.strictObject({ every: interval }),
  cronSchema,
  /** Runs when every sync named has completed HEALTHY since this sync's last run. */
  z.strictObject({ after: z.array(name).min(1, 'name at least one sync') }),
]);

export const strategies = ['create', 'update', 'upsert', 'mirror', 'replace', 'send'] as const;

export const syncSchema = z.strictObject({
  name,
  description: z.string().optional(),
  tags: z.array(name).default([]),
  source: z
    .strictObject({
      table: z.string().min(1).optional(),
      query: z.string().min(1).optional(),
      /** A dbt model (`name`, `package.name`, `name.v2`), resolved into `table` through the manifest at load time. */
      dbt_model: z.string().min(1).optional(),
      key: z.union([name, z.array(name).min(1)]),
      filter: z.string().min(1).optional(),
    })
    // A resolved dbt source holds both `dbt_model` and the `table` it resolved to.
    .refine((s) => [s.table, s.query, s.dbt_model].filter((v) => v !== undefined).length === 1 || (s.query === undefined && s.table !== undefined), {
      error: (issue) => `give exactly one of ${(issue.input as { dbt_model?: unknown }).dbt_model === undefined ? '`table` or `query`' : '`table`, `query` or `dbt_model`'}`,
    }),
  destination: z.looseObject({ connection: name, object: name }),
  strategy: z.enum(strategies),
  on_remove: z.enum(['none', 'delete', 'clear']).default('none'),
  mapping: z.record(z.string(), mappingValue).refine((m) => Object.keys(m).length > 0, 'map at least one field'),
  batch_size: positiveInt.default(100),
  max_run_seconds: z.number().positive().optional(),
  /** A limit of this sync's own, within the connection's (which every sync on it shares). */
  rate_limit: z.strictObject({ requests: positiveInt, per_seconds: z.number().positive() }).optional(),
  schedule: scheduleSchema.default('manual'),
  /** Send every record again at this interval (`7d`) or on this cron, as `--full-resync` does. */
  full_resync_every: z.union([interval, cronSchema]).optional(),
  alerts: syncAlertsSchema.optional(),
  /** The sync's former name: a deploy hands the old sync's state and history to this one. */
  renamed_from: name.optional(),
});

export const projectSchema = z.strictObject({
  version: z.number().int().nonnegative().default(1),
  name,
  warehouse: z.discriminatedUnion('type', [duckdbWarehouse, snowflakeWarehouse]),
  connections: z.record(name, connection).default({}),
  syncs: z.array(syncSchema).default([]),
  catalog: z
    .strictObject({
      /** `run`, `scheduler` and `worker` deploy the code to the catalog first. */
      auto_deploy: z.boolean().default(true),
      /** A sync whose last N runs failed goes to status ERROR until it is resumed. */
      error_after_failures: positiveInt.default(3),
    })
    .default({ auto_deploy: true, error_after_failures: 3 }),
  alerts: projectAlertsSchema.default({ channels: {}, rules: {} }),
  /** `public_url`: where `ebb serve` is reached, for the links in notifications. */
  server: z.strictObject({ public_url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional() }).optional(),
  /** Where dbt's manifest.json is, relative to ebb.yml (default target/manifest.json), for `source.dbt_model`. */
  dbt: z.strictObject({ manifest: z.string().min(1).optional() }).optional(),
});

export type ProjectConfig = z.infer<typeof projectSchema>;
export type WarehouseConfig = ProjectConfig['warehouse'];
export type DuckdbConfig = z.infer<typeof duckdbWarehouse>;
export type SnowflakeConfig = z.infer<typeof snowflakeWarehouse>;
export type ConnectionConfig = z.infer<typeof connection>;
export type SyncConfig = z.infer<typeof syncSchema>;
export type MappingValue = z.infer<typeof mappingValue>;
