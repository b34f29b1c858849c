/** The warehouse conformance suite on DuckDB (in memory), and what only DuckDB does. */
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DuckdbWarehouse } from '../engine/warehouse/duckdb.ts';
import { describeWarehouse } from './warehouse-conformance.ts';
import { Sql } from '../engine/warehouse/sql.ts';
import { plan } from '../engine/plan/plan.ts';
import { syncSchema } from '../engine/config/schema.ts';
import { loadProject } from '../engine/config/load.ts';
import { openEngine } from '../engine/engine.ts';
import { runSync } from '../engine/run.ts';
import { deploySyncs } from '../engine/catalog/deploy.ts';
import { makeProject } from './support/project.ts';

describeWarehouse('duckdb', async () => ({ warehouse: await DuckdbWarehouse.open({ path: ':memory:' }, tmpdir()) }));

describe('record hashes on DuckDB', () => {
  it("hashes each record from its values as the state's formula hashes the stored record, whatever the types", async () => {
    const w = await DuckdbWarehouse.open({ path: ':memory:' }, tmpdir());
    try {
      const sql = new Sql(w, 'ebb');
      await sql.runScript('setup');
      // Types whose JSON text reads back unchanged, and some that do not (a DECIMAL keeps all its
      // digits in JSON, and reads back as a double), alone, nested and from expressions.
      await w.run(`CREATE TABLE src AS SELECT * FROM (VALUES
        (1, 12345678.123456789::DECIMAL(18,9), 1.10::DECIMAL(18,2), 1.234567890123456789012340000000::DECIMAL(38,30), {'a': 1.10::DECIMAL(18,2), 'b': [0.1::DOUBLE]},
         123456789012345678901234567890::HUGEINT, 0.1::REAL, 1e20::DOUBLE, -0.0::DOUBLE, 'x"\\u00e9', TIMESTAMPTZ '2020-01-01 01:02:03+05', '{"z": 1, "a": [1.0, 2e3]}'::JSON, [1.5, 2.25]::DECIMAL(20,2)[]),
        (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
      ) v(id, d1, d2, d3, s, h, r, f, z, t, tz, j, l)`);
      const columns = ['d1', 'd2', 'd3', 's', 'h', 'r', 'f', 'z', 't', 'tz', 'j', 'l'];
      const sync = syncSchema.parse({
        name: 'types',
        source: { table: 'src', key: 'id' },
        destination: { connection: 'app', object: 'things' },
        strategy: 'upsert',
        mapping: { ...Object.fromEntries(columns.map((c) => [c, c])), e1: { sql: 'd1 * 2' }, e2: { sql: "upper(t)" }, k: { value: 1.5 } },
      });
      await plan(sql, sync, { runId: 'r1' });
      const rows = await w.runAndRead(`SELECT record_key, record_hash, transformed_record FROM ebb.sync_changes ORDER BY record_key`);
      expect(rows).toHaveLength(2);
      // The state's formula (dialect.sql.njk record_hash), as plan_rehash applies it to stored records.
      const fields = Object.keys(sync.mapping);
      const pointers = fields.map((f) => `json_extract(transformed_record, '/${f}')`).join(', ');
      const expected = await w.runAndRead(`SELECT record_key, md5(CAST(json_array(${pointers}) AS VARCHAR)) AS record_hash FROM ebb.sync_changes ORDER BY record_key`);
      expect(rows.map((r) => ({ record_key: r.record_key, record_hash: r.record_hash }))).toEqual(expected);
    } finally {
      await w.close();
    }
  });
});

describe('the change set on DuckDB', () => {
  it('numbers a large change set 1 to n in the order apply sends it: one action at a time, by key', async () => {
    // Large enough for DuckDB to sort in parallel and number what comes out of the sort.
    const w = await DuckdbWarehouse.open({ path: ':memory:' }, tmpdir());
    try {
      const sql = new Sql(w, 'ebb');
      await sql.runScript('setup');
      await w.run(`CREATE TABLE src AS SELECT i AS id, 'user' || i AS email FROM range(200000) t(i)`);
      const sync = syncSchema.parse({
        name: 'big',
        source: { table: 'src', key: 'id' },
        destination: { connection: 'app', object: 'things' },
        strategy: 'upsert',
        on_remove: 'delete',
        mapping: { email: 'email' },
      });
      // The state of a sync of half the rows, one in ten of them since changed, and 1000 removed ones.
      await w.run(`INSERT INTO ebb.sync_record_state (sync_name, record_key, app_identifier, record_hash, transformed_record, apply_state, apply_reason, last_action, failure_count, first_synced_at, last_synced_at, hash_version)
        SELECT 'big', CAST(i AS VARCHAR), 'app-' || i, CASE WHEN i % 10 = 0 THEN 'stale' ELSE md5(CAST(json_array('user' || i) AS VARCHAR)) END,
               json_object('email', 'user' || i), 'SUCCESS', 'NEW', 'create', 0, now()::TIMESTAMP, now()::TIMESTAMP, 2
        FROM range(-1000, 100000) t(i)`);
      const summary = await plan(sql, sync, { runId: 'r1' });
      expect(summary.actions).toEqual({ create: 100000, update: 10000, delete: 1000 });
      const [check] = await w.runAndRead(`
        SELECT count(*) AS n, min(seq) AS lo, max(seq) AS hi, count(*) FILTER (WHERE seq <> expected) AS misplaced
        FROM (SELECT seq, row_number() OVER (ORDER BY action, record_key) AS expected FROM ebb.sync_changes WHERE run_id = 'r1')`);
      expect(check).toEqual({ n: 111000, lo: 1, hi: 111000, misplaced: 0 });
    } finally {
      await w.close();
    }
  });
});

describe("DuckDB's write-ahead log", () => {
  it('is folded into the file at the end of a run, not by a commit in the middle of it', async () => {
    // A change set of some 30 MB, written to the WAL by the plan (fewer rows than DuckDB writes
    // straight to the file): DuckDB's own threshold (16 MB) would checkpoint it at the first
    // in-flight mark's commit, while the sends wait.
    const dir = await makeProject({
      name: 'wal',
      warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
      connections: { out: { plugin: 'file', config: { directory: './out' } } },
      syncs: [{ name: 'wide', source: { table: 'wide', key: 'id' }, destination: { connection: 'out', object: 'wide.jsonl' }, strategy: 'upsert', mapping: { id: 'id', text: 'text' } }],
    });
    const wal = join(dir, 'warehouse.duckdb.wal');
    const walSize = () => (existsSync(wal) ? statSync(wal).size : 0);
    const engine = await openEngine(await loadProject(dir));
    try {
      await engine.sql.warehouse.run(`CREATE TABLE wide AS SELECT i AS id, repeat(md5(i::VARCHAR), 16) AS text FROM range(50000) t(i)`);
      await deploySyncs(engine);
      await engine.sql.warehouse.run('CHECKPOINT');
      let atRecord = 0;
      const result = await runSync(engine, engine.project.config.syncs[0], { onPhase: (phase) => phase === 'record' && (atRecord = walSize()) });
      expect(result.counts.succeeded).toBe(50_000);
      expect(atRecord).toBeGreaterThan(16 * 1024 * 1024);
      expect(walSize()).toBeLessThan(1024 * 1024);
    } finally {
      await engine.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("DuckDB's memory cap", () => {
  it('says, when a statement runs out of the memory that warehouse.memory_limit allows, that the cap is set in ebb.yml and how', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ebb-memory-'));
    try {
      const w = await DuckdbWarehouse.open({ path: 'w.duckdb', memory_limit: '16MB' }, dir);
      try {
        // A list of ten million numbers (80 MB) cannot spill to disk.
        const bigList = 'SELECT len(list(i)) AS n FROM range(10000000) t(i)';
        await expect(w.runAndRead(bigList)).rejects.toThrow(/^Out of Memory Error[\s\S]*\nebb caps DuckDB at warehouse\.memory_limit \(16MB in ebb\.yml\): raise it/);
        await expect(w.run(`CREATE TABLE t AS ${bigList}`)).rejects.toThrow(/warehouse\.memory_limit \(16MB in ebb\.yml\)/);
        const read = async () => {
          for await (const rows of w.stream(bigList)) expect(rows).toBeDefined();
        };
        await expect(read()).rejects.toThrow(/warehouse\.memory_limit \(16MB in ebb\.yml\)/);
        // Other errors are DuckDB's own.
        await expect(w.run('SELECT * FROM no_such_table')).rejects.toThrow(/^(?![\s\S]*memory_limit)[\s\S]*no_such_table/);
      } finally {
        await w.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
