/**
 * Golden tests of the Snowflake dialect: every statement under sql/default/ (or its override under
 * sql/snowflake/) rendered for Snowflake with a fixed context must match the committed text in
 * test/snowflake/golden/, binds included; then each one runs on the wire emulator, whose strictness
 * catches what Snowflake would refuse. After an intended change to the SQL, rewrite the files with
 *   EBB_UPDATE_GOLDEN=1 npx vitest run test/snowflake/golden.test.ts
 * and review the diff.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Sql, type Statement } from '../../engine/warehouse/sql.ts';
import { snowflakeDialect, type SnowflakeWarehouse } from '../../engine/warehouse/snowflake.ts';
import type { Warehouse } from '../../engine/warehouse/warehouse.ts';
import { sourceContext } from '../../engine/plan/plan.ts';
import { syncSchema } from '../../engine/config/schema.ts';
import { SnowflakeEmulator } from './emulator.ts';
import { openEmulated } from './support.ts';

const sqlDir = fileURLToPath(new URL('../../sql/', import.meta.url));
const goldenDir = fileURLToPath(new URL('./golden/', import.meta.url));
const update = process.env.EBB_UPDATE_GOLDEN === '1';

/** Macro libraries and fragments: rendered through the statements that use them, never run alone. */
const notStatements = new Set(['dialect', 'source', 'changes']);

const sync = syncSchema.parse({
  name: 'customers_to_crm',
  source: { table: 'analytics.customers', key: 'customer_id', filter: "lifecycle_stage = 'customer'" },
  destination: { connection: 'crm', object: 'contacts' },
  strategy: 'upsert',
  on_remove: 'delete',
  mapping: { email: 'email', score: { sql: 'round(score, 2)' }, source_system: { value: 'warehouse' } },
});
const composite = syncSchema.parse({ ...sync, name: 'regional', source: { table: 'analytics.customers', key: ['region', 'customer_id'] }, on_remove: 'clear' });

/** One context that holds every variable of every statement: a new variable must be added here. */
const context = {
  ...sourceContext(sync),
  key_kinds: { customer_id: 'other' },
  hash_version: 2,
  sync: { name: sync.name, strategy: sync.strategy, on_remove: sync.on_remove },
  run_id: '20260101T000000Z-abc123',
  run_ids: ['20260101T000000Z-abc123', '20260101T000000Z-def456'],
  // A window of the change set that apply reads (stream_changes), marks in flight (mark_window) or records DELAYED (outcomes_delayed).
  seq_from: 1,
  seq_to: 50000,
  sync_name: sync.name,
  match_name: sync.name,
  former_name: 'old_customers',
  table: 'sync_changes',
  definition: JSON.stringify({ name: sync.name }),
  definition_hash: 'd41d8cd98f00b204e9800998ecf8427e',
  project_version: 3,
  schedule: 'manual',
  former_names: JSON.stringify(['old_customers']),
  deploy_id: 'deploy-1',
  project_name: 'acme',
  deployed_by: 'ci',
  summary: JSON.stringify({ created: 1 }),
  names: [sync.name, 'old_customers'],
  keys: ['1', '2'],
  resolutions: [
    { key: '1', app_id: 'c1' },
    { key: '2', app_id: null },
  ],
  notes: [
    { key: '1', note: 'found in the app' },
    { key: '2', note: 'still in doubt: GET /contacts?email=b%40x.io answered 503' },
  ],
  failed: 0,
  limit: 50,
  offset: 100,
  apply_states: ['FAILED', 'NEEDS_REVIEW'],
  key_search: 'cust',
  holder: 'host:123',
  expires_at: new Date('2026-01-01T00:01:00.000Z'),
  full_resync: false,
  kept: false,
  keyed_by: '["customer_id"]',
  idempotent_create: false,
  status: 'HEALTHY',
  health: 'HEALTHY',
  planned: JSON.stringify({ create: 1 }),
  succeeded: 1,
  delayed: 0,
  skipped: 0,
  source_failures: 0,
  error: null,
  trigger: 'manual',
  version: 1,
  apply_state: 'SKIPPED_ALWAYS',
  action: 'skip',
  by: 'ebb skip',
  overrides: JSON.stringify({ status: 'PAUSED' }),
  expr: null,
  request_id: 'request-1',
  claimed_at: new Date('2026-01-01T00:00:30.000Z'),
  stale_before: new Date('2025-12-31T23:59:30.000Z'),
  rule: 'failed_records',
  state: 'FIRING',
  message: '3 of 10 records sent failed (30%; the limit is 20%)',
  firing_only: false,
  notification_id: 'notification-1-slack',
  event: 'sync.alert.firing',
  channel: 'slack',
  channel_type: 'slack',
  success: true,
  attempts: 1,
  payload: JSON.stringify({ event: 'sync.alert.firing' }),
  source_rows: 10,
  task: { name: 'EBB_CUSTOMERS_TO_CRM', sync_name: sync.name, comment: `ebb:acme:${sync.name}`, schedule: '1 MINUTE', warehouse: 'transforming', trigger: 'live', stream: 'EBB_CUSTOMERS_TO_CRM_STREAM', replace_stream: false, source_kind: 'TABLE', after: [] },
  what: 'TABLES',
  name: 'CUSTOMERS',
  relations: [{ own: 'run_requests' }, { parts: ['analytics', 'customers'] }],
  scope: ['analytics'],
};

/** Extra renderings of the statements whose SQL depends most on the context. */
const variants: Record<string, Record<string, unknown>> = {
  'plan.composite-clear': { ...context, ...sourceContext(composite), key_kinds: { region: 'other', customer_id: 'integer' }, sync: { name: composite.name, strategy: 'upsert', on_remove: 'clear' } },
  // A key of integers only: the duplicate check groups by the columns, not by the key's text.
  'plan.integer-keys': { ...context, ...sourceContext(composite), key_kinds: { region: 'integer', customer_id: 'integer' } },
  // Date and timestamp keys in explicit formats, never the session's.
  'transform.dated-keys': { ...context, ...sourceContext(composite), key: ['signup_date', 'seen_at', 'seen_at_tz'], key_kinds: { signup_date: 'date', seen_at: 'timestamp', seen_at_tz: 'timestamp_tz' } },
  'transform.date-key': { ...context, key: ['signup_date'], key_kinds: { signup_date: 'date' } },
  'plan.replace': { ...context, sync: { ...context.sync, strategy: 'replace' } },
  'plan_rekey.kept': { ...context, kept: true },
  'mark_window.idempotent': { ...context, idempotent_create: true },
  'select_source.expr': { ...context, expr: 'round(score, 2)', filter: null },
  'history_list.failed': { ...context, failed: true, keys: null, run_id: null },
  'task_create.serverless': { ...context, task: { ...context.task, schedule: 'USING CRON 0 * * * * UTC', warehouse: null, trigger: 'task', stream: null } },
  // After the serverless task above, which is its root.
  'task_create.after': { ...context, task: { ...context.task, name: 'EBB_REGIONAL', sync_name: 'regional', comment: 'ebb:acme:regional', schedule: '', trigger: 'task', stream: null, after: ['EBB_CUSTOMERS_TO_CRM'] } },
  'task_create.quoted': { ...context, task: { ...context.task, sync_name: "it's a \\ name", comment: "ebb:acme:it's a \\ name", stream: null } },
  'alert_states.firing': { ...context, sync_name: null, firing_only: true },
  'alert_notifications_list.all': { ...context, sync_name: null },
  'task_stream_create.replace': { ...context, task: { ...context.task, replace_stream: true } },
  'task_stream_create.view': { ...context, task: { ...context.task, source_kind: 'VIEW' }, source: { table: ['analytics', 'customer_view'], query: null } },
  'source_object_list.dynamic': { ...context, what: 'DYNAMIC TABLES', scope: [] },
};

const templates = readdirSync(`${sqlDir}default`)
  .filter((f) => f.endsWith('.sql.njk'))
  .map((f) => f.replace(/\.sql\.njk$/, ''))
  .sort();
const cases: Array<[string, string, Record<string, unknown>]> = [
  ...templates.filter((n) => !notStatements.has(n)).map((n): [string, string, Record<string, unknown>] => [n, n, context]),
  ...Object.entries(variants).map(([name, ctx]): [string, string, Record<string, unknown>] => [name, name.split('.')[0], ctx]),
];

function goldenText(statement: Statement): string {
  return `${statement.sql.trim()}\n-- binds: ${JSON.stringify(statement.params)}\n`;
}

describe('Snowflake SQL (golden)', () => {
  const renderer = new Sql({ dialect: snowflakeDialect } as Warehouse, 'ebb');

  it('every override under sql/snowflake/ overrides a statement of sql/default/', () => {
    for (const f of readdirSync(`${sqlDir}snowflake`)) expect(templates, `sql/snowflake/${f}`).toContain(f.replace(/\.sql\.njk$/, ''));
  });

  it('the macro library renders to nothing on its own', () => {
    expect(renderer.render('dialect', context).sql.trim()).toBe('');
  });

  it('has a golden file for every statement, and none for a statement that is gone', () => {
    if (update) mkdirSync(goldenDir, { recursive: true });
    const files = existsSync(goldenDir) ? readdirSync(goldenDir).map((f) => f.replace(/\.sql$/, '')) : [];
    if (!update) expect(files.sort()).toEqual(cases.map(([name]) => name).sort());
  });

  it.each(cases)('%s', (name, template, ctx) => {
    const statement = renderer.render(template, ctx);
    const file = `${goldenDir}${name}.sql`;
    if (update) writeFileSync(file, goldenText(statement));
    expect(existsSync(file), `no golden file for ${name}: run with EBB_UPDATE_GOLDEN=1 and review it`).toBe(true);
    expect(goldenText(statement)).toBe(readFileSync(file, 'utf8'));
  });
});

describe('Snowflake SQL runs on the emulator (emulated)', () => {
  let emulator: SnowflakeEmulator;
  let w: SnowflakeWarehouse;
  let sql: Sql;

  beforeAll(async () => {
    emulator = await SnowflakeEmulator.start();
    w = await openEmulated(emulator);
    sql = new Sql(w, 'ebb');
    await w.run('CREATE SCHEMA analytics');
    await w.run('CREATE TABLE analytics.customers (customer_id INTEGER, region VARCHAR, email VARCHAR, score DECIMAL(10,2), lifecycle_stage VARCHAR, signup_date DATE, seen_at TIMESTAMP, seen_at_tz TIMESTAMPTZ)');
    await w.run(
      `INSERT INTO analytics.customers VALUES (1, 'eu', 'a@x.io', 1.5, 'customer', '2026-01-01', '2026-01-01 10:00:00.5', '2026-01-01 10:00:00+00'), (2, 'us', 'b@x.io', 2.25, 'customer', NULL, NULL, NULL)`,
    );
    await w.run('CREATE VIEW analytics.customer_view AS SELECT * FROM analytics.customers');
  });
  afterAll(async () => {
    await w?.close();
    await emulator?.stop();
  });

  it.each(['setup', ...cases.map(([name]) => name).filter((n) => n !== 'setup')])('%s', async (name) => {
    const [, template, ctx] = cases.find(([n]) => n === name)!;
    if (template === 'setup') {
      await sql.runScript('setup');
      await sql.runScript('setup');
      return;
    }
    const { sql: text, params } = sql.render(template, ctx);
    await expect(w.runAndRead(text, params)).resolves.toBeInstanceOf(Array);
  });
});
