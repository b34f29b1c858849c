/**
 * Hostile identifiers and values cannot inject SQL, in the way of Kysely's sql-injection.test.ts.
 * Every name that ebb puts into SQL (state schema, sync, source table and columns, mapping
 * fields) and every value it handles (keys, columns, static values) is an attempt; the test
 * runs them end to end through the CLI, then checks that every table is still there, that
 * nothing else changed, and that the values round-trip exactly into the file and the history.
 */
import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBValue } from '@duckdb/node-api';
import { ebb, makeProject } from './support/project.ts';

const schema = `eb'b"; drop schema main cascade; --`;
const syncName = `x'); drop table ebb.syncs; --`;
const table = `pe"ople'); drop table canary; --`;
const keyColumn = `k'ey"; drop table canary; --`;
const column = `a"; drop table t; --`;
const field = `it's "odd"`;
const staticValue = `'); delete from canary; --`;
const object = `it's; --.jsonl`;

const keys = [
  `'); delete from ebb.sync_record_state; --`,
  `"; drop table canary; --`,
  `O'Brien`,
  `semi;colon`,
  `back\\slash '' ""`,
  `line\nbreak`,
  `ünï"cödé' 🦆`,
  `__ebb_bind_0__`,
  `?`,
  `$1`,
];
const valueOf = (key: string) => `${key}'); update canary set v = 'pwned'; --`;

/** Quotes an identifier for this test's own SQL. */
const q = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** Runs one statement with bound values on the project's DuckDB file. */
async function sql(db: string, text: string, values: DuckDBValue[] = []): Promise<Record<string, unknown>[]> {
  const instance = await DuckDBInstance.create(db);
  const conn = await instance.connect();
  try {
    return (await conn.runAndReadAll(text, values)).getRowObjectsJS() as Record<string, unknown>[];
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

/** Everything in the warehouse that the attempts could have touched. */
async function snapshot(db: string) {
  return {
    tables: await sql(db, `SELECT schema_name, table_name FROM duckdb_tables() ORDER BY ALL`),
    views: await sql(db, `SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal ORDER BY ALL`),
    schemas: await sql(db, `SELECT schema_name FROM duckdb_schemas() WHERE NOT internal ORDER BY ALL`),
    canary: await sql(db, `SELECT * FROM canary ORDER BY ALL`),
    source: await sql(db, `SELECT * FROM ${q(table)} ORDER BY ALL`),
  };
}

async function loadSource(db: string, records: string[]) {
  await sql(db, `CREATE OR REPLACE TABLE ${q(table)} (${q(keyColumn)} VARCHAR, ${q(column)} VARCHAR)`);
  for (const key of records) await sql(db, `INSERT INTO ${q(table)} VALUES ($1, $2)`, [key, valueOf(key)]);
}

describe('SQL injection through names and values', () => {
  it('hostile identifiers and values round-trip exactly and change nothing else', async () => {
    const dir = await makeProject({
      version: 1,
      name: 'injection',
      warehouse: { type: 'duckdb', path: 'warehouse.duckdb', state_schema: schema },
      connections: { files: { plugin: 'file', config: { directory: 'out' } } },
      syncs: [
        {
          name: syncName,
          source: { table: `main.${q(table)}`, key: keyColumn },
          destination: { connection: 'files', object },
          strategy: 'mirror',
          mapping: { key: keyColumn, [field]: column, [staticValue]: { value: staticValue } },
        },
      ],
    });
    const db = join(dir, 'warehouse.duckdb');
    await sql(db, `CREATE TABLE canary AS SELECT 1 AS id, 'alive' AS v`);
    await sql(db, `CREATE TABLE t AS SELECT 1 AS id`);
    await loadSource(db, keys);
    const cli = async (...args: string[]) => {
      const result = await ebb(dir, args);
      expect(result.code, `ebb ${args.join(' ')}: ${result.stderr}`).toBe(0);
      return result.stdout;
    };
    const history = () => sql(db, `SELECT * FROM ${q(schema)}.sync_record_history WHERE sync_name = $1 ORDER BY recorded_at, record_key`, [syncName]);
    const fileRecords = async () => (await readFile(join(dir, 'out', object), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const recordOf = (key: string) => ({ key, [field]: valueOf(key), [staticValue]: staticValue });
    const byKey = (a: Record<string, unknown>, b: Record<string, unknown>) => String(a.key).localeCompare(String(b.key));

    await cli('validate');
    await cli('status'); // creates ebb's tables, so that the snapshot holds them
    const before = await snapshot(db);
    expect(before.tables.map((t) => t.schema_name)).toContain(schema);

    // Run 1 creates every record.
    await cli('plan', syncName);
    await cli('run', syncName);
    expect((await fileRecords()).sort(byKey)).toEqual(keys.map(recordOf).sort(byKey));
    const created = await history();
    expect(created.map((h) => h.record_key).sort()).toEqual([...keys].sort());
    for (const h of created) {
      expect(h).toMatchObject({ sync_name: syncName, action: 'create', apply_state: 'SUCCESS', app_identifier: h.record_key });
      expect(JSON.parse(String(h.transformed_record))).toEqual(recordOf(String(h.record_key)));
    }

    // Run 2 updates one record and deletes another, both with hostile keys.
    const [changed, removed] = keys;
    await sql(db, `UPDATE ${q(table)} SET ${q(column)} = ${q(column)} || $2 WHERE ${q(keyColumn)} = $1`, [changed, `"'; --`]);
    await sql(db, `DELETE FROM ${q(table)} WHERE ${q(keyColumn)} = $1`, [removed]);
    await cli('run', syncName);
    const expected = keys.filter((k) => k !== removed).map((k) => (k === changed ? { ...recordOf(k), [field]: `${valueOf(k)}"'; --` } : recordOf(k)));
    expect((await fileRecords()).sort(byKey)).toEqual(expected.sort(byKey));
    const run2 = (await history()).slice(keys.length);
    expect(run2.map((h) => [h.record_key, h.action])).toEqual(expect.arrayContaining([[changed, 'update'], [removed, 'delete']]));
    expect(run2).toHaveLength(2);

    // Manual control and the read commands, with hostile keys and the hostile sync name.
    const target = keys[6];
    await cli('pause', syncName);
    await cli('resume', syncName);
    await cli('skip', syncName, '--key', target, '--always');
    await cli('resync', syncName, '--key', target);
    await cli('run', syncName);
    const trail = JSON.parse(await cli('history', syncName, '--key', target, '--json')) as Array<{ record_key: string; action: string; apply_reason: string }>;
    expect(trail.map((h) => h.record_key)).toEqual([target, target, target, target]);
    expect(trail.map((h) => h.action)).toEqual(['update', 'resync', 'skip', 'create']);
    expect(trail[0].apply_reason).toBe('RESYNC_REQUESTED');
    for (const command of [['runs', syncName], ['status'], ['history', syncName, '--key', ...keys]]) await cli(...command, '--json');

    const state = await sql(db, `SELECT record_key, apply_state FROM ${q(schema)}.sync_record_state WHERE sync_name = $1`, [syncName]);
    expect(state.sort((a, b) => (String(a.record_key) < String(b.record_key) ? -1 : 1))).toEqual(keys.filter((k) => k !== removed).sort().map((k) => ({ record_key: k, apply_state: 'SUCCESS' })));
    const catalog = await sql(db, `SELECT sync_name, status FROM ${q(schema)}.syncs`);
    expect(catalog).toEqual([{ sync_name: syncName, status: 'ACTIVE' }]);

    // Nothing else moved: the same tables, views and schemas; the canary and the source intact.
    const after = await snapshot(db);
    expect(after).toEqual({ ...before, source: after.source });
    expect(after.source).toHaveLength(keys.length - 1);
    expect(after.canary).toEqual([{ id: 1, v: 'alive' }]);
  });
});
