/**
 * Record hashes and record keys that no release or session setting changes, on both warehouses
 * (DuckDB, and Snowflake emulated), through the CLI: a record's hash is MD5 of the JSON array of its
 * mapped values in mapping order; date and timestamp keys are text in explicit formats; and state
 * written by an older ebb (MD5 of the record's JSON object, schema version 1) is migrated on
 * upgrade without sending any record again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { SnowflakeEmulator } from './emulator.ts';
import './support.ts';
import { duck, ebb, makeProject } from '../support/project.ts';
import { SCHEMA_VERSION } from '../../engine/warehouse/open.ts';

const md5 = (text: string) => createHash('md5').update(text).digest('hex');

const SEED = [
  'CREATE SCHEMA analytics',
  'CREATE TABLE analytics.events (day DATE, seen_at TIMESTAMP, email VARCHAR, score DOUBLE)',
  "INSERT INTO analytics.events VALUES (DATE '2026-03-01', TIMESTAMP '2026-03-01 10:20:30.250', 'ada@x.io', 1.5), (DATE '2026-03-02', TIMESTAMP '2026-03-02 00:00:00', 'bob@x.io', 2)",
];

function project(name: string, warehouse: object) {
  return {
    version: 1,
    name,
    warehouse,
    connections: { files: { plugin: 'file', config: { directory: './out' } } },
    syncs: [
      {
        name: 'events',
        source: { table: 'analytics.events', key: ['day', 'seen_at'] },
        destination: { connection: 'files', object: 'events.jsonl' },
        strategy: 'upsert',
        // Not in alphabetical order: the hash follows the mapping's order.
        mapping: { score: 'score', email: 'email' },
      },
      {
        name: 'days',
        source: { table: 'analytics.events', key: 'day' },
        destination: { connection: 'files', object: 'days.jsonl' },
        strategy: 'upsert',
        mapping: { email: 'email' },
      },
    ],
  };
}

interface Side {
  dir: string;
  /** Runs SQL on the warehouse (Snowflake SQL on the emulator); rows keyed by lower-case column. */
  sql(text: string): Promise<Record<string, unknown>[]>;
  /** The record hash of the first ebb, MD5 of the record's JSON object as this warehouse writes it. */
  oldHash: string;
  keys: { events: string[]; days: string[] };
}

const lower = (rows: Record<string, unknown>[]) => rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k.toLowerCase(), v])));

describe.each(['duckdb', 'snowflake'] as const)('record hashes and keys on %s', (kind) => {
  let side: Side;
  let emulator: SnowflakeEmulator | undefined;

  beforeAll(async () => {
    if (kind === 'duckdb') {
      const dir = await makeProject(project('hashes', { type: 'duckdb', path: 'warehouse.duckdb', state_schema: 'ebb' }));
      const path = join(dir, 'warehouse.duckdb');
      await duck(path, SEED.join(';\n'));
      side = {
        dir,
        sql: async (text) => lower(await duck(path, text)),
        oldHash: 'md5(CAST(transformed_record AS VARCHAR))',
        keys: { events: ['["2026-03-01","2026-03-01 10:20:30.25"]', '["2026-03-02","2026-03-02 00:00:00"]'], days: ['2026-03-01', '2026-03-02'] },
      };
    } else {
      emulator = await SnowflakeEmulator.start();
      for (const statement of SEED) await emulator.sql(statement);
      const dir = await makeProject(project('hashes', { type: 'snowflake', account: 'emulated', username: 'u', password: 'p', database: 'DB', state_schema: 'ebb', access_url: emulator.url }));
      side = {
        dir,
        sql: async (text) => lower(await emulator!.sql(text)),
        oldHash: 'MD5(TO_JSON(transformed_record))',
        keys: { events: ['["2026-03-01","2026-03-01 10:20:30.250"]', '["2026-03-02","2026-03-02 00:00:00.000"]'], days: ['2026-03-01', '2026-03-02'] },
      };
    }
  });
  afterAll(() => emulator?.stop());

  it('hashes the mapped values as an ordered array, and writes date and timestamp keys in explicit formats', async () => {
    const run = await ebb(side.dir, ['run', '--all', '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const state = await side.sql(`SELECT sync_name, record_key, record_hash, hash_version FROM ebb.sync_record_state ORDER BY sync_name, record_key`);
    expect(state.map((r) => `${String(r.sync_name)} ${String(r.record_key)}`)).toEqual([...side.keys.days.map((k) => `days ${k}`), ...side.keys.events.map((k) => `events ${k}`)]);
    const events = state.filter((r) => r.sync_name === 'events');
    expect(events[0].record_hash).toBe(md5('[1.5,"ada@x.io"]'));
    // A whole double is 2.0 in DuckDB's JSON and 2 in Snowflake's.
    expect([md5('[2.0,"bob@x.io"]'), md5('[2,"bob@x.io"]')]).toContain(events[1].record_hash);
    expect(state.every((r) => Number(r.hash_version) === 2)).toBe(true);
  });

  it("migrates the state of an older ebb (today's hash, schema version 1) without sending any record again", async () => {
    // The tables as the first ebb left them: no hash_version, hashes of the record's JSON object.
    await side.sql(`UPDATE ebb.sync_record_state SET record_hash = ${side.oldHash}`);
    await side.sql('ALTER TABLE ebb.sync_record_state DROP COLUMN hash_version');
    await side.sql('DELETE FROM ebb.schema_version');
    await side.sql('INSERT INTO ebb.schema_version (version) VALUES (1)');
    const before = await side.sql(`SELECT record_key, record_hash FROM ebb.sync_record_state ORDER BY sync_name, record_key`);
    expect(before.every((r) => /^[0-9a-f]{32}$/.test(String(r.record_hash)))).toBe(true);

    const upgrade = await ebb(side.dir, ['run', '--all', '--json']);
    expect(upgrade.stderr).toBe('');
    const runs = (JSON.parse(upgrade.stdout).runs as Array<{ sync: string }>).sort((a, b) => a.sync.localeCompare(b.sync));
    expect(runs).toMatchObject([
      { sync: 'days', status: 'HEALTHY', planned: {} },
      { sync: 'events', status: 'HEALTHY', planned: {} },
    ]);
    const [{ version }] = await side.sql('SELECT max(version) AS version FROM ebb.schema_version');
    expect(Number(version)).toBe(SCHEMA_VERSION);
    const after = await side.sql(`SELECT record_key, record_hash, hash_version FROM ebb.sync_record_state WHERE sync_name = 'days' ORDER BY record_key`);
    expect(after).toEqual([
      { record_key: side.keys.days[0], record_hash: md5('["ada@x.io"]'), hash_version: expect.anything() },
      { record_key: side.keys.days[1], record_hash: md5('["bob@x.io"]'), hash_version: expect.anything() },
    ]);

    // A changed record is still seen as changed, and only it.
    await side.sql(`UPDATE analytics.events SET email = 'bob@y.io' WHERE day = DATE '2026-03-02'`);
    const changed = await ebb(side.dir, ['run', 'days', '--json']);
    expect(JSON.parse(changed.stdout).runs).toMatchObject([{ sync: 'days', planned: { update: 1 } }]);
  });
});
