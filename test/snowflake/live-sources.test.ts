/**
 * Live syncs on what dbt builds (emulated): `ebb deploy` creates a sync's stream ON VIEW for a view
 * and ON DYNAMIC TABLE for a dynamic table, refuses a dynamic table that refreshes fully (exit 3,
 * nothing changed), and recreates a stale stream, saying so, instead of keeping it as unchanged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { SnowflakeEmulator } from './emulator.ts';
import './support.ts';
import { ebb, makeProject } from '../support/project.ts';

const live = (name: string, table: string) => ({
  name,
  source: { table, key: 'customer_id' },
  destination: { connection: 'files', object: `${name}.jsonl` },
  strategy: 'upsert',
  mapping: { email: 'email' },
  schedule: 'live',
});

describe('live syncs on views and dynamic tables (emulated)', () => {
  let emulator: SnowflakeEmulator;
  let dir: string;
  const config = (syncs: object[]) => ({
    version: 1,
    name: 'acme',
    warehouse: { type: 'snowflake', account: 'emulated', username: 'u', password: 'p', database: 'DB', warehouse: 'transforming', access_url: emulator.url },
    connections: { files: { plugin: 'file', config: { directory: './out' } } },
    syncs,
  });

  beforeAll(async () => {
    emulator = await SnowflakeEmulator.start();
    await emulator.sql('CREATE SCHEMA analytics');
    await emulator.sql('CREATE TABLE analytics.customers (customer_id INTEGER, email VARCHAR)');
    await emulator.sql(`INSERT INTO analytics.customers VALUES (1, 'ada@x.io')`);
    await emulator.sql('CREATE VIEW analytics.active_customers AS SELECT * FROM analytics.customers');
    await emulator.sql('CREATE TABLE analytics.customers_dt AS SELECT * FROM analytics.customers');
    emulator.declareDynamicTable('DB.ANALYTICS.CUSTOMERS_DT', 'INCREMENTAL');
    await emulator.sql('CREATE TABLE analytics.customers_full AS SELECT * FROM analytics.customers');
    emulator.declareDynamicTable('DB.ANALYTICS.CUSTOMERS_FULL', 'FULL');
    dir = await makeProject(config([live('on_view', 'analytics.active_customers'), live('on_dt', 'analytics.customers_dt')]));
  });
  afterAll(() => emulator?.stop());

  it('creates the stream ON VIEW for a view and ON DYNAMIC TABLE for a dynamic table, and says that change tracking was off', async () => {
    emulator.resetCounts();
    const deploy = await ebb(dir, ['deploy']);
    expect(deploy.stderr).toBe('');
    expect(deploy.code).toBe(0);
    expect(deploy.stdout).toMatch(/\+ EBB_ON_VIEW_STREAM\s+stream, new: on view analytics.active_customers; change tracking is off on analytics.active_customers/);
    expect(deploy.stdout).toMatch(/\+ EBB_ON_DT_STREAM\s+stream, new: on dynamic table analytics.customers_dt/);
    const creates = emulator.statements.map((s) => s.sql.replace(/\s+/g, ' ')).filter((s) => s.startsWith('CREATE STREAM'));
    expect(creates).toEqual([
      expect.stringContaining('"EBB"."EBB_ON_VIEW_STREAM" ON VIEW "ANALYTICS"."ACTIVE_CUSTOMERS"'),
      expect.stringContaining('"EBB"."EBB_ON_DT_STREAM" ON DYNAMIC TABLE "ANALYTICS"."CUSTOMERS_DT"'),
    ]);
    expect(emulator.streams().map((s) => [s.name, s.sourceType])).toEqual([
      ['EBB_ON_DT_STREAM', 'Dynamic Table'],
      ['EBB_ON_VIEW_STREAM', 'View'],
    ]);

    // A change under the view fires its task, and only its.
    await emulator.sql(`INSERT INTO analytics.customers VALUES (2, 'bob@x.io')`);
    expect(await emulator.fireTasks()).toEqual(['EBB_ON_VIEW']);
    const again = await ebb(dir, ['deploy']);
    expect(again.stdout).toMatch(/= EBB_ON_VIEW_STREAM\s+stream, unchanged: on view analytics.active_customers\n/);
  });

  it('recreates a stale stream at deploy and says so, never keeping it as unchanged', async () => {
    emulator.makeStale('EBB.EBB_ON_VIEW_STREAM');
    emulator.resetCounts();
    const deploy = await ebb(dir, ['deploy', '--json']);
    expect(deploy.code).toBe(0);
    const steps = (JSON.parse(deploy.stdout).tasks.steps as Array<{ name: string; kind: string; detail: string }>).filter((s) => s.name.endsWith('_STREAM'));
    expect(steps).toEqual([
      expect.objectContaining({ name: 'EBB_ON_VIEW_STREAM', kind: 'replace', detail: expect.stringContaining('it was stale') }),
      expect.objectContaining({ name: 'EBB_ON_DT_STREAM', kind: 'unchanged' }),
    ]);
    expect(emulator.statements.filter((s) => /^CREATE OR REPLACE STREAM "EBB"."EBB_ON_VIEW_STREAM"\s+ON VIEW/.test(s.sql))).toHaveLength(1);
    expect(emulator.streams().find((s) => s.name === 'EBB_ON_VIEW_STREAM')?.stale).toBe(false);
  });

  it('refuses a dynamic table that refreshes fully with exit 3, and changes nothing', async () => {
    await writeFile(join(dir, 'ebb.yml'), stringify(config([live('on_view', 'analytics.active_customers'), live('on_full', 'analytics.customers_full')])));
    emulator.resetCounts();
    const deploy = await ebb(dir, ['deploy']);
    expect(deploy.code).toBe(3);
    expect(deploy.stderr).toContain('syncs[1].schedule: live: analytics.customers_full is a dynamic table that refreshes fully (REFRESH_MODE = FULL)');
    expect(emulator.statements.filter((s) => /^\s*(CREATE|ALTER (?!SESSION)|DROP|INSERT|UPDATE|DELETE|MERGE)/i.test(s.sql))).toEqual([]);
  });
});
