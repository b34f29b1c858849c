/**
 * The conformance suite that every Warehouse implementation runs (in the way of dbt-adapters'
 * shared adapter tests): types and binds, row counts, streaming, bulk append, describe, hostile
 * identifiers, and then a small sync through the real engine (plan, apply, record) whose
 * resulting state must be the same on every warehouse. Runners: test/warehouse-duckdb.test.ts,
 * test/snowflake/emulated.test.ts and test/snowflake/live.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Param, Row, Warehouse } from '../engine/warehouse/warehouse.ts';
import { Sql } from '../engine/warehouse/sql.ts';
import { plan } from '../engine/plan/plan.ts';
import { applyChanges } from '../engine/apply/apply.ts';
import { recordRun } from '../engine/record/record.ts';
import { syncSchema } from '../engine/config/schema.ts';
import type { Change, Outcome, Session } from '../plugins/plugin.ts';

/** A warehouse to test, and how to clean up after it. */
export interface WarehouseUnderTest {
  warehouse: Warehouse;
  /** Called after the suite, once the warehouse is closed. */
  cleanup?: () => Promise<void>;
}

/** The few SQL spellings that the tests' own DDL needs, per dialect. */
function spell(w: Warehouse) {
  return w.dialect.name === 'snowflake'
    ? { json: 'VARIANT', ts: 'TIMESTAMP_NTZ', parseJson: (e: string) => `PARSE_JSON(${e})` }
    : { json: 'JSON', ts: 'TIMESTAMP', parseJson: (e: string) => `CAST(${e} AS JSON)` };
}

const parse = (v: unknown) => (typeof v === 'string' ? JSON.parse(v) : v);

/** A fake app for the engine scenario: records by app id, and keys that it refuses. */
class FakeApp {
  readonly records = new Map<string, Record<string, unknown>>();
  /** The record each delete carried, by app id. */
  readonly deleted = new Map<string, Record<string, unknown>>();
  refuse = new Set<string>();
  session(): Session {
    return {
      apply: async (changes: Change[]): Promise<Outcome[]> =>
        changes.map((c) => {
          if (this.refuse.has(c.key)) return { key: c.key, success: false, error: { kind: 'rejected', message: 'invalid email' } };
          const appId = c.appId ?? `app-${c.key}`;
          if (c.action === 'delete') {
            this.records.delete(appId);
            this.deleted.set(appId, c.record);
          } else this.records.set(appId, c.record);
          return { key: c.key, success: true, appId, result: { id: appId } };
        }),
      close: async () => undefined,
    };
  }
}

/** The parts of a sync's state that every warehouse must agree on. */
async function stateOf(sql: Sql, syncName: string) {
  const rows = await sql.warehouse.runAndRead(
    `SELECT record_key, app_identifier, apply_state, apply_reason, last_action, failure_count, transformed_record FROM ${sql.ident(sql.stateSchema)}.${sql.ident('sync_record_state')} WHERE sync_name = ? ORDER BY record_key`,
    [syncName],
  );
  return rows.map((r) => ({ ...r, transformed_record: parse(r.transformed_record) }));
}

/** Runs the whole conformance suite against the warehouse that `open` returns. */
export function describeWarehouse(name: string, open: () => Promise<WarehouseUnderTest>): void {
  describe(`warehouse conformance: ${name}`, () => {
    let under: WarehouseUnderTest;
    let w: Warehouse;
    // A schema of its own, so that a run against a shared (live) account collides with nothing.
    const schema = `ebb_conf_${randomBytes(4).toString('hex')}`;
    const q = (id: string) => w.dialect.quote(id);
    const t = (table: string) => `${q(schema)}.${q(table)}`;

    beforeAll(async () => {
      under = await open();
      w = under.warehouse;
      await w.run(`CREATE SCHEMA IF NOT EXISTS ${q(schema)}`);
    });

    afterAll(async () => {
      if (w) {
        await w.run(`DROP SCHEMA IF EXISTS ${q(schema)} CASCADE`).catch(() => undefined);
        await w.close();
      }
      await under?.cleanup?.();
    });

    it('run() creates and changes rows and returns how many rows changed', async () => {
      await w.run(`CREATE TABLE ${t('counts')} (id INTEGER, label VARCHAR)`);
      expect(await w.run(`INSERT INTO ${t('counts')} (id, label) SELECT 1, 'a' UNION ALL SELECT 2, 'b' UNION ALL SELECT 3, 'c'`)).toBe(3);
      expect(await w.run(`UPDATE ${t('counts')} SET label = ? WHERE id >= ?`, ['z', 2])).toBe(2);
      expect(await w.run(`DELETE FROM ${t('counts')} WHERE id = ?`, [1])).toBe(1);
      expect(
        await w.run(
          `MERGE INTO ${t('counts')} c USING (SELECT 2 AS id, 'm' AS label UNION ALL SELECT 9, 'n') s ON c.id = s.id ` +
            `WHEN MATCHED THEN UPDATE SET label = s.label WHEN NOT MATCHED THEN INSERT (id, label) VALUES (s.id, s.label)`,
        ),
      ).toBe(2);
      expect(await w.runAndRead(`SELECT id, label FROM ${t('counts')} ORDER BY id`)).toEqual([
        { id: 2, label: 'm' },
        { id: 3, label: 'z' },
        { id: 9, label: 'n' },
      ]);
    });

    it('runAndRead() returns each type as DuckDB does: numbers, text, booleans, Dates, JSON text and null', async () => {
      const s = spell(w);
      await w.run(`CREATE TABLE ${t('types')} (i INTEGER, big BIGINT, d DECIMAL(10,2), f DOUBLE, s VARCHAR, b BOOLEAN, ts ${s.ts}, j ${s.json}, n VARCHAR)`);
      const at = new Date('2024-02-29T23:59:58.123Z');
      await w.run(`INSERT INTO ${t('types')} SELECT ?, ?, ?, ?, ?, ?, CAST(? AS ${s.ts}), ${s.parseJson('?')}, ?`, [
        42,
        9007199254740993n.toString(),
        12.5,
        0.25,
        "it's ünïcode",
        true,
        at,
        JSON.stringify({ a: 1, b: [true, null, 'x'] }),
        null,
      ]);
      const [row] = await w.runAndRead(`SELECT * FROM ${t('types')}`);
      expect(Object.keys(row)).toEqual(['i', 'big', 'd', 'f', 's', 'b', 'ts', 'j', 'n']);
      expect(row).toMatchObject({ i: 42, d: 12.5, f: 0.25, s: "it's ünïcode", b: true, n: null });
      // An integer beyond 2^53 comes back as text rather than as a wrong number.
      expect(row.big).toBe('9007199254740993');
      expect(row.ts).toBeInstanceOf(Date);
      expect((row.ts as Date).toISOString()).toBe(at.toISOString());
      expect(typeof row.j).toBe('string');
      expect(JSON.parse(row.j as string)).toEqual({ a: 1, b: [true, null, 'x'] });
      const [small] = await w.runAndRead(`SELECT count(*) AS n, sum(i) AS total, max(ts) AS latest FROM ${t('types')}`);
      expect(small).toEqual({ n: 1, total: 42, latest: at });
    });

    it('binds every kind of value without quoting it into the SQL', async () => {
      const s = spell(w);
      const values: Param[] = ["'; DROP TABLE x; --", 'ünï "q"', 7, -1.5, false, null, new Date('2001-02-03T04:05:06.789Z')];
      const [row] = await w.runAndRead(`SELECT ? AS a, ? AS b, ? AS c, ? AS d, ? AS e, ? AS f, CAST(? AS ${s.ts}) AS g`, values);
      expect(row).toEqual({ a: values[0], b: values[1], c: 7, d: -1.5, e: false, f: null, g: values[6] });
    });

    it('stream() yields a large result in chunks, in order, never as one block', async () => {
      await w.run(`CREATE TABLE ${t('many')} (id INTEGER, label VARCHAR)`);
      await w.append(schema, 'many', ['id', 'label'], Array.from({ length: 5000 }, (_v, i) => [i, `row ${i}`]));
      const chunks: Row[][] = [];
      for await (const chunk of w.stream(`SELECT id, label FROM ${t('many')} WHERE id >= ? ORDER BY id`, [0])) chunks.push(chunk);
      expect(chunks.length).toBeGreaterThan(1);
      expect(Math.max(...chunks.map((c) => c.length))).toBeLessThan(5000);
      const rows = chunks.flat();
      expect(rows).toHaveLength(5000);
      expect(rows.every((r, i) => r.id === i && r.label === `row ${i}`)).toBe(true);
    });

    it('append() inserts 2000 rows in bulk, JSON and timestamps included', async () => {
      const s = spell(w);
      await w.run(`CREATE TABLE ${t('outcomes')} (run_id VARCHAR, seq BIGINT, success BOOLEAN, result ${s.json}, note VARCHAR, recorded_at ${s.ts})`);
      const base = Date.UTC(2025, 0, 1);
      const rows: Param[][] = Array.from({ length: 2000 }, (_v, i) => [
        'r1',
        i,
        i % 3 !== 0,
        i % 10 === 0 ? null : JSON.stringify({ id: `app-${i}`, tags: ['a', i], quote: `"${i}'` }),
        i % 7 === 0 ? null : `note ${i}`,
        new Date(base + i * 1001),
      ]);
      // Columns in another order than the table's: append() maps them by name.
      await w.append(schema, 'outcomes', ['seq', 'run_id', 'success', 'result', 'note', 'recorded_at'], rows.map((r) => [r[1], r[0], r[2], r[3], r[4], r[5]]));
      const back = await w.runAndRead(`SELECT * FROM ${t('outcomes')} ORDER BY seq`);
      expect(back).toHaveLength(2000);
      for (const i of [0, 1, 3, 7, 10, 1999]) {
        const r = back[i];
        expect(r.run_id).toBe('r1');
        expect(r.seq).toBe(i);
        expect(r.success).toBe(i % 3 !== 0);
        expect(parse(r.result)).toEqual(i % 10 === 0 ? null : { id: `app-${i}`, tags: ['a', i], quote: `"${i}'` });
        expect(r.note).toBe(i % 7 === 0 ? null : `note ${i}`);
        expect((r.recorded_at as Date).getTime()).toBe(base + i * 1001);
      }
      // A table without JSON columns (the shape of ebb's sync_inflight) takes the other bulk path.
      await w.run(`CREATE TABLE ${t('inflight')} (run_id VARCHAR, action VARCHAR, seq_lo BIGINT, seq_hi BIGINT, sent_at ${s.ts})`);
      await w.append(schema, 'inflight', ['run_id', 'action', 'seq_lo', 'seq_hi', 'sent_at'], Array.from({ length: 2000 }, (_v, i) => ['r1', i % 2 ? 'create' : null, i, i + 1, new Date(base)]));
      expect(await w.runAndRead(`SELECT count(*) AS n, count(action) AS actions, sum(seq_hi) AS hi, min(sent_at) AS first FROM ${t('inflight')}`)).toEqual([
        { n: 2000, actions: 1000, hi: 2001000, first: new Date(base) },
      ]);
    });

    it('describe() names the columns of a query without running it', async () => {
      const columns = await w.describe(`SELECT id, label, id + 1 AS next_id FROM ${t('counts')}`);
      expect(columns.map((c) => c.name.toLowerCase())).toEqual(['id', 'label', 'next_id']);
      expect(columns.every((c) => c.type.length > 0)).toBe(true);
      await expect(w.describe(`SELECT nope FROM ${t('counts')}`)).rejects.toThrow();
    });

    it('quotes hostile identifiers so that none breaks out, and reads them back by name', async () => {
      const names = ['we"ird', 'Mixed Case', 'select', 'a;b--c', "it's", 'ünï', 'UPPER', 'x"); DROP TABLE y; --'];
      const table = 'hostile "table"; --';
      await w.run(`CREATE TABLE ${t(table)} (${names.map((n) => `${q(n)} VARCHAR`).join(', ')})`);
      await w.run(`INSERT INTO ${t(table)} (${names.map(q).join(', ')}) VALUES (${names.map(() => '?').join(', ')})`, names);
      const [row] = await w.runAndRead(`SELECT ${names.map(q).join(', ')} FROM ${t(table)}`);
      expect(row).toEqual(Object.fromEntries(names.map((n) => [n.toLowerCase(), n])));
      const described = await w.describe(`SELECT * FROM ${t(table)}`);
      expect(described.map((c) => c.name.toLowerCase())).toEqual(names.map((n) => n.toLowerCase()));
      await w.append(schema, table, names, [names.map((n) => `${n}!`)]);
      expect(await w.runAndRead(`SELECT count(*) AS n FROM ${t(table)}`)).toEqual([{ n: 2 }]);
    });

    it('runs a sync through the real engine (setup, plan, apply, record) to the same state as every warehouse', async () => {
      const sql = new Sql(w, schema);
      await sql.runScript('setup');
      await sql.runScript('setup'); // idempotent
      await w.run(`CREATE TABLE ${t('customers')} (customer_id INTEGER, email VARCHAR, score DECIMAL(10,2))`);
      const put = (rows: Array<[number | null, string, number]>) => w.run(`INSERT INTO ${t('customers')} VALUES ${rows.map(() => '(?, ?, ?)').join(', ')}`, rows.flat());
      await put([
        [1, 'a@x.io', 1.25],
        [2, 'b@x.io', 2.5],
        [3, 'bad-email', 3],
        [4, 'd@x.io', 4],
        [4, 'd2@x.io', 4],
        [null, 'nokey@x.io', 0],
      ]);
      const sync = syncSchema.parse({
        name: 'customers_to_app',
        source: { table: `${schema}.customers`, key: 'customer_id' },
        destination: { connection: 'app', object: 'contacts' },
        strategy: 'upsert',
        on_remove: 'delete',
        mapping: { email: 'email', score: { sql: 'round(score, 1)' }, source_system: { value: 'warehouse' } },
      });
      const app = new FakeApp();
      let runNo = 0;
      const runOnce = async () => {
        const runId = `run-${++runNo}`;
        await sql.run('run_insert', { run_id: runId, sync_name: sync.name, trigger: 'manual' });
        const summary = await plan(sql, sync, { runId });
        const order = await w.runAndRead(`SELECT seq, action, record_key FROM ${t('sync_changes')} WHERE run_id = ? ORDER BY seq`, [runId]);
        await applyChanges({ sql, runId, lastSeq: summary.total, seqWindow: 3, session: app.session(), strategy: sync.strategy, batchSize: 2, concurrency: 2, retryDelaysMs: [] });
        const { counts, health } = await recordRun(sql, { runId, syncName: sync.name, planned: summary.actions, error: null, idempotentCreate: false });
        return { planned: summary.actions, counts, health, order };
      };

      app.refuse.add('3');
      const first = await runOnce();
      expect(first.planned).toEqual({ create: 3, source_failure: 3 });
      expect(first.counts).toMatchObject({ succeeded: 2, failed: 1, source_failures: 3 });
      expect(first.health).toBe('INCOMPLETE');
      const record = (email: string, score: number) => ({ email, score, source_system: 'warehouse' });
      expect(await stateOf(sql, sync.name)).toEqual([
        { record_key: '1', app_identifier: 'app-1', apply_state: 'SUCCESS', apply_reason: 'NEW', last_action: 'create', failure_count: 0, transformed_record: record('a@x.io', 1.3) },
        { record_key: '2', app_identifier: 'app-2', apply_state: 'SUCCESS', apply_reason: 'NEW', last_action: 'create', failure_count: 0, transformed_record: record('b@x.io', 2.5) },
        { record_key: '3', app_identifier: null, apply_state: 'FAILED', apply_reason: 'NEW', last_action: 'create', failure_count: 1, transformed_record: record('bad-email', 3) },
        expect.objectContaining({ record_key: '4', app_identifier: null, apply_state: 'SOURCE_FAILURE', failure_count: 1 }),
      ]);

      // The source changes: one update, one removal, the failed record fixed, the duplicate resolved.
      app.refuse.clear();
      await w.run(`UPDATE ${t('customers')} SET email = ? WHERE customer_id = ?`, ['a2@x.io', 1]);
      await w.run(`DELETE FROM ${t('customers')} WHERE customer_id = ? OR email = ?`, [2, 'd2@x.io']);
      const second = await runOnce();
      expect(second.planned).toEqual({ create: 2, update: 1, delete: 1, source_failure: 1 });
      // Numbered 1 to n one action at a time, by key; the rows that cannot be sent last.
      expect(second.order).toEqual([
        { seq: 1, action: 'create', record_key: '3' },
        { seq: 2, action: 'create', record_key: '4' },
        { seq: 3, action: 'delete', record_key: '2' },
        { seq: 4, action: 'update', record_key: '1' },
        { seq: 5, action: 'none', record_key: null },
      ]);
      expect(second.counts).toMatchObject({ succeeded: 4, failed: 0, source_failures: 1 });
      expect(await stateOf(sql, sync.name)).toEqual([
        { record_key: '1', app_identifier: 'app-1', apply_state: 'SUCCESS', apply_reason: 'CHANGED', last_action: 'update', failure_count: 0, transformed_record: record('a2@x.io', 1.3) },
        { record_key: '3', app_identifier: 'app-3', apply_state: 'SUCCESS', apply_reason: 'PREVIOUSLY_FAILED', last_action: 'create', failure_count: 0, transformed_record: record('bad-email', 3) },
        { record_key: '4', app_identifier: 'app-4', apply_state: 'SUCCESS', apply_reason: 'PREVIOUSLY_FAILED', last_action: 'create', failure_count: 0, transformed_record: record('d@x.io', 4) },
      ]);
      expect([...app.records.keys()].sort()).toEqual(['app-1', 'app-3', 'app-4']);
      // The delete carried the record ebb held of it, and history says so.
      expect(app.deleted).toEqual(new Map([['app-2', record('b@x.io', 2.5)]]));
      const deletes = await w.runAndRead(`SELECT record_key, transformed_record FROM ${t('sync_record_history')} WHERE action = ?`, ['delete']);
      expect(deletes.map((r) => ({ ...r, transformed_record: parse(r.transformed_record) }))).toEqual([{ record_key: '2', transformed_record: record('b@x.io', 2.5) }]);

      // Nothing changed: the row hashes are stable, so nothing is planned but the null key.
      const third = await runOnce();
      expect(third.planned).toEqual({ source_failure: 1 });

      const history = await w.runAndRead(
        `SELECT run_id, apply_state, count(*) AS n FROM ${t('sync_record_history')} WHERE sync_name = ? GROUP BY run_id, apply_state ORDER BY run_id, apply_state`,
        [sync.name],
      );
      expect(history).toEqual([
        { run_id: 'run-1', apply_state: 'FAILED', n: 1 },
        { run_id: 'run-1', apply_state: 'SOURCE_FAILURE', n: 3 },
        { run_id: 'run-1', apply_state: 'SUCCESS', n: 2 },
        { run_id: 'run-2', apply_state: 'SOURCE_FAILURE', n: 1 },
        { run_id: 'run-2', apply_state: 'SUCCESS', n: 4 },
        { run_id: 'run-3', apply_state: 'SOURCE_FAILURE', n: 1 },
      ]);
      const runs = await sql.runAndRead('runs_list', { names: [sync.name], limit: 10 });
      // Sorted here: the three runs may share a start time.
      const byRun = runs.map((r) => [r.run_id, r.status, r.succeeded, r.failed, r.source_failures, parse(r.planned)]).sort((a, b) => String(a[0]).localeCompare(String(b[0])));
      expect(byRun).toEqual([
        ['run-1', 'INCOMPLETE', 2, 1, 3, { create: 3, source_failure: 3 }],
        ['run-2', 'INCOMPLETE', 4, 0, 1, { create: 2, update: 1, delete: 1, source_failure: 1 }],
        ['run-3', 'FAILED', 0, 0, 1, { source_failure: 1 }],
      ]);
      // The working tables of the runs are cleared.
      for (const table of ['sync_changes', 'sync_outcomes', 'sync_batch_outcomes', 'sync_inflight']) expect(await w.runAndRead(`SELECT count(*) AS n FROM ${t(table)}`)).toEqual([{ n: 0 }]);
    });

    it('finds duplicate keys by the key: integer columns compared as numbers, any other key as its text', async () => {
      const sql = new Sql(w, schema);
      await sql.runScript('setup');
      await w.run(`CREATE TABLE ${t('pairs')} (region INTEGER, id BIGINT, code VARCHAR, note VARCHAR)`);
      await w.run(`INSERT INTO ${t('pairs')} VALUES ${Array(6).fill('(?, ?, ?, ?)').join(', ')}`, [
        ...[1, 10, 'a', 'first'],
        ...[1, 10, 'a', 'second'],
        ...[1, 11, 'A', 'third'],
        ...[2, 10, 'b', 'fourth'],
        ...[null, 12, 'c', 'fifth'],
        ...[2, 13, 'c', 'sixth'],
      ]);
      const failures = async (name: string, key: string | string[]) => {
        const sync = syncSchema.parse({ name, source: { table: `${schema}.pairs`, key }, destination: { connection: 'app', object: 'notes' }, strategy: 'upsert', mapping: { note: 'note' } });
        const summary = await plan(sql, sync, { runId: `run-${name}` });
        const rows = await w.runAndRead(`SELECT record_key, source_error FROM ${t('sync_changes')} WHERE run_id = ? AND source_error IS NOT NULL`, [`run-${name}`]);
        return { actions: summary.actions, failures: rows.map((r) => `${r.record_key} ${String(r.source_error).split(':')[0]}`).sort() };
      };
      expect(await failures('by_region_id', ['region', 'id'])).toEqual({ actions: { create: 3, source_failure: 3 }, failures: ['[1,10] duplicate key', '[1,10] duplicate key', 'null null key'] });
      expect(await failures('by_id', 'id')).toEqual({ actions: { create: 3, source_failure: 3 }, failures: ['10 duplicate key', '10 duplicate key', '10 duplicate key'] });
      // 'a' twice, 'A' once: text compares case and all.
      expect(await failures('by_code', 'code')).toEqual({ actions: { create: 2, source_failure: 4 }, failures: ['a duplicate key', 'a duplicate key', 'c duplicate key', 'c duplicate key'] });
    });

    it('reads the change set a group of changes per row: every key and record arrives whole, whatever its characters, across groups and windows', async () => {
      const sql = new Sql(w, schema);
      await sql.runScript('setup');
      await w.run(`CREATE TABLE ${t('awkward')} (k VARCHAR, note VARCHAR, n INTEGER)`);
      // Characters that a separator, an escape or a multi-byte encoding could cut: CHR(31) among them.
      const odd = ['\x1f', '"', '\\', ',', '\n', 'é', '日本', '😀', "'", '{}'];
      const rows = Array.from({ length: 230 }, (_, i): [string, string, number] => [`k${odd[i % odd.length]}${i}`, `note ${odd[(i * 3) % odd.length]} ${i}${odd[(i * 7) % odd.length]}`, i]);
      for (let i = 0; i < rows.length; i += 50) {
        const part = rows.slice(i, i + 50);
        await w.run(`INSERT INTO ${t('awkward')} VALUES ${part.map(() => '(?, ?, ?)').join(', ')}`, part.flat());
      }
      const sync = syncSchema.parse({
        name: 'awkward_to_app',
        source: { table: `${schema}.awkward`, key: 'k' },
        destination: { connection: 'app', object: 'notes' },
        strategy: 'upsert',
        mapping: { note: 'note', n: 'n' },
      });
      const app = new FakeApp();
      const runId = 'run-awkward';
      await sql.run('run_insert', { run_id: runId, sync_name: sync.name, trigger: 'manual' });
      const summary = await plan(sql, sync, { runId });
      expect(summary.actions).toEqual({ create: 230 });
      // Windows of 70 seqs cut the groups of rows (100 on Snowflake, 1,000 on DuckDB) and the batches of 9.
      await applyChanges({ sql, runId, lastSeq: summary.total, seqWindow: 70, session: app.session(), strategy: sync.strategy, batchSize: 9, concurrency: 3, retryDelaysMs: [] });
      const { counts } = await recordRun(sql, { runId, syncName: sync.name, planned: summary.actions, error: null, idempotentCreate: false });
      expect(counts).toMatchObject({ succeeded: 230, failed: 0 });
      expect(new Map([...app.records].sort())).toEqual(new Map(rows.map(([k, note, n]): [string, Record<string, unknown>] => [`app-${k}`, { note, n }]).sort()));
      const state = await stateOf(sql, sync.name);
      expect((state as Row[]).map((r) => [r.record_key, r.app_identifier]).sort()).toEqual(rows.map(([k]) => [k, `app-${k}`]).sort());
    });

    it('reads wide records whole: a group of the change set holds less than the 16 MB of a Snowflake VARCHAR', async () => {
      const sql = new Sql(w, schema);
      await sql.runScript('setup');
      await w.run(`CREATE TABLE ${t('wide')} (id INTEGER, body VARCHAR)`);
      // 120 records of 200,000 characters: 100 consecutive ones hold 20 MB of JSON.
      const ids = Array.from({ length: 120 }, (_, i) => i + 1);
      await w.run(`INSERT INTO ${t('wide')} VALUES ${ids.map((id) => `(${id}, REPEAT('${String.fromCharCode(97 + (id % 26))}', 200000))`).join(', ')}`);
      const sync = syncSchema.parse({ name: 'wide_to_app', source: { table: `${schema}.wide`, key: 'id' }, destination: { connection: 'app', object: 'notes' }, strategy: 'upsert', mapping: { body: 'body' } });
      const app = new FakeApp();
      const runId = 'run-wide';
      await sql.run('run_insert', { run_id: runId, sync_name: sync.name, trigger: 'manual' });
      const summary = await plan(sql, sync, { runId });
      await applyChanges({ sql, runId, lastSeq: summary.total, session: app.session(), strategy: sync.strategy, batchSize: 50, concurrency: 2, retryDelaysMs: [] });
      const { counts } = await recordRun(sql, { runId, syncName: sync.name, planned: summary.actions, error: null, idempotentCreate: false });
      expect(counts).toMatchObject({ succeeded: 120, failed: 0 });
      expect(new Map([...app.records].sort())).toEqual(new Map(ids.map((id): [string, Record<string, unknown>] => [`app-${id}`, { body: String.fromCharCode(97 + (id % 26)).repeat(200000) }]).sort()));
    });

    it('removes a record that a stopped create may have put in the app under an unknown id: creates it first to learn the id, then deletes that', async () => {
      const sql = new Sql(w, schema);
      await sql.runScript('setup');
      await w.run(`CREATE TABLE ${t('doubtful')} (id INTEGER, email VARCHAR)`);
      await w.run(`INSERT INTO ${t('doubtful')} VALUES (1, 'a@x.io'), (2, 'b@x.io')`);
      const sync = syncSchema.parse({
        name: 'doubtful_to_app',
        source: { table: `${schema}.doubtful`, key: 'id' },
        destination: { connection: 'app', object: 'contacts' },
        strategy: 'upsert',
        on_remove: 'delete',
        mapping: { email: 'email' },
      });
      const app = new FakeApp();
      const sent: string[] = [];
      const session = app.session();
      const logged: Session = { ...session, apply: (changes) => (sent.push(...changes.map((c) => `${c.action} ${c.key} ${c.appId ?? '-'}`)), session.apply(changes)) };
      const runOnce = async (runId: string) => {
        await sql.run('run_insert', { run_id: runId, sync_name: sync.name, trigger: 'manual' });
        const summary = await plan(sql, sync, { runId });
        await applyChanges({ sql, runId, lastSeq: summary.total, session: logged, strategy: sync.strategy, batchSize: 10, concurrency: 1, retryDelaysMs: [], idempotentCreate: true });
        return (await recordRun(sql, { runId, syncName: sync.name, planned: summary.actions, error: null, idempotentCreate: true })).counts;
      };
      await runOnce('run-doubt-1');
      // Record 2 as a create that was on the wire when its run stopped: maybe in the app, id unknown.
      await w.run(`UPDATE ${t('sync_record_state')} SET app_identifier = NULL, first_synced_at = NULL, maybe_in_app = TRUE WHERE sync_name = ? AND record_key = ?`, [sync.name, '2']);
      await w.run(`DELETE FROM ${t('doubtful')} WHERE id = 2`);
      sent.length = 0;
      expect(await runOnce('run-doubt-2')).toMatchObject({ succeeded: 1, failed: 0 });
      expect(sent).toEqual(['create 2 -', 'delete 2 app-2']);
      expect([...app.records.keys()]).toEqual(['app-1']);
      expect(app.deleted).toEqual(new Map([['app-2', { email: 'b@x.io' }]]));
    });

    it('records a run that stopped: a record without an outcome is in flight under any mark of its run (marks overlap), NEEDS_REVIEW under a create', async () => {
      const sql = new Sql(w, schema);
      await sql.runScript('setup');
      const runId = 'stopped-1';
      const at = new Date('2026-01-01T00:00:00.000Z');
      // Nine planned records: 1-4 creates, 5-8 updates, 9 a create that was never marked.
      const actions = ['create', 'create', 'create', 'create', 'update', 'update', 'update', 'update', 'create'];
      await w.append(
        schema,
        'sync_changes',
        ['run_id', 'sync_name', 'seq', 'record_key', 'action', 'apply_reason', 'record_hash', 'transformed_record', 'app_identifier', 'source_error', 'in_doubt'],
        actions.map((action, i) => [runId, 'stopped', i + 1, `k${i + 1}`, action, 'NEW', `h${i + 1}`, JSON.stringify({ n: i + 1 }), action === 'update' ? `app-${i + 1}` : null, null, false]),
      );
      // Only record 1 was answered before the process stopped.
      await w.append(schema, 'sync_outcomes', ['run_id', 'seq', 'action', 'success', 'app_identifier', 'result', 'error_kind', 'recorded_at'], [[runId, 1, 'create', true, 'app-1', null, null, at]]);
      await w.append(schema, 'sync_inflight', ['run_id', 'action', 'seq_lo', 'seq_hi', 'sent_at'], [
        [runId, 'create', 1, 4, at],
        [runId, 'update', 5, 8, at],
        // Update 6 was answered "not found" and sent again as a create: marked as one inside its batch.
        [runId, 'create', 6, 6, at],
        // Another run's mark says nothing about this run's records.
        ['stopped-0', 'create', 9, 9, at],
      ]);
      const { counts } = await recordRun(sql, { runId, syncName: 'stopped', planned: { create: 5, update: 4 }, error: 'interrupted', idempotentCreate: false });
      expect(counts).toMatchObject({ succeeded: 1, delayed: 4, needs_review: 4 });
      const history = await w.runAndRead(`SELECT record_key, apply_state, in_flight, result FROM ${t('sync_record_history')} WHERE run_id = ? ORDER BY record_key`, [runId]);
      const note = { note: 'in flight when the run stopped; it may or may not have reached the app' };
      expect(history.map((r) => ({ ...r, result: parse(r.result) }))).toEqual([
        { record_key: 'k1', apply_state: 'SUCCESS', in_flight: false, result: null },
        ...['k2', 'k3', 'k4'].map((k) => ({ record_key: k, apply_state: 'NEEDS_REVIEW', in_flight: true, result: note })),
        { record_key: 'k5', apply_state: 'DELAYED', in_flight: true, result: note },
        { record_key: 'k6', apply_state: 'NEEDS_REVIEW', in_flight: true, result: note },
        ...['k7', 'k8'].map((k) => ({ record_key: k, apply_state: 'DELAYED', in_flight: true, result: note })),
        { record_key: 'k9', apply_state: 'DELAYED', in_flight: false, result: null },
      ]);
    });

    it('records the outcomes of consecutive records written as one row: each record its own identifier and result, or the change set\'s identifier, or its key', async () => {
      const sql = new Sql(w, schema);
      await sql.runScript('setup');
      const runId = 'batched-1';
      const at = new Date('2026-01-01T00:00:00.000Z');
      // 1-3 and 6-8 are creates, 4-5 updates of records the app holds.
      const actions = ['create', 'create', 'create', 'update', 'update', 'create', 'create', 'create'];
      await w.append(
        schema,
        'sync_changes',
        ['run_id', 'sync_name', 'seq', 'record_key', 'action', 'apply_reason', 'record_hash', 'transformed_record', 'app_identifier', 'source_error', 'in_doubt'],
        actions.map((action, i) => [runId, 'batched', i + 1, `k${i + 1}`, action, 'NEW', `h${i + 1}`, JSON.stringify({ n: i + 1 }), action === 'update' ? `app-${i + 1}` : null, null, false]),
      );
      const sep = '\x1f';
      await w.append(schema, 'sync_batch_outcomes', ['run_id', 'seq_lo', 'seq_hi', 'action', 'app_identifiers', 'results', 'recorded_at'], [
        // The app's identifiers and answers, one each.
        [runId, 1, 3, 'create', ['id-1', 'id-2', 'id-3'].join(sep), ['{"id":"id-1"}', '{"id":"id-2","n":[1,2]}', '"x"'].join(sep), at],
        // The identifiers the change set holds.
        [runId, 4, 5, 'update', null, null, at],
        // No identifier in the change set: the key.
        [runId, 6, 7, 'create', null, null, at],
        // Another run's row says nothing about this run's records.
        ['batched-0', 1, 8, 'create', null, null, at],
      ]);
      await w.append(schema, 'sync_outcomes', ['run_id', 'seq', 'action', 'success', 'app_identifier', 'result', 'error_kind', 'recorded_at'], [
        [runId, 8, 'create', false, null, JSON.stringify({ error: { kind: 'rejected', message: 'bad email' } }), 'rejected', at],
      ]);
      const { counts } = await recordRun(sql, { runId, syncName: 'batched', planned: { create: 6, update: 2 }, error: null, idempotentCreate: false });
      expect(counts).toMatchObject({ succeeded: 7, failed: 1, delayed: 0, needs_review: 0 });
      const history = await w.runAndRead(`SELECT record_key, action, apply_state, success, app_identifier, result, in_flight FROM ${t('sync_record_history')} WHERE run_id = ? ORDER BY record_key`, [runId]);
      const ok = (record_key: string, action: string, app_identifier: string, result: unknown = null) => ({ record_key, action, apply_state: 'SUCCESS', success: true, app_identifier, result, in_flight: false });
      expect(history.map((r) => ({ ...r, result: parse(r.result) }))).toEqual([
        ok('k1', 'create', 'id-1', { id: 'id-1' }),
        ok('k2', 'create', 'id-2', { id: 'id-2', n: [1, 2] }),
        ok('k3', 'create', 'id-3', 'x'),
        ok('k4', 'update', 'app-4'),
        ok('k5', 'update', 'app-5'),
        ok('k6', 'create', 'k6'),
        ok('k7', 'create', 'k7'),
        { record_key: 'k8', action: 'create', apply_state: 'FAILED', success: false, app_identifier: null, result: { error: { kind: 'rejected', message: 'bad email' } }, in_flight: false },
      ]);
    });

    it('records lots of hundreds of records, each record its own identifier and result, wherever the lot starts and ends', async () => {
      const sql = new Sql(w, schema);
      await sql.runScript('setup');
      const runId = 'long-lots-1';
      const at = new Date('2026-01-01T00:00:00.000Z');
      const n = 300;
      const seqs = Array.from({ length: n }, (_, i) => i + 1);
      await w.append(
        schema,
        'sync_changes',
        ['run_id', 'sync_name', 'seq', 'record_key', 'action', 'apply_reason', 'record_hash', 'transformed_record', 'app_identifier', 'source_error', 'in_doubt'],
        seqs.map((seq) => [runId, 'long-lots', seq, `k${seq}`, 'create', 'NEW', `h${seq}`, JSON.stringify({ n: seq }), null, null, false]),
      );
      // Seq 1 alone (apply writes a lot of one record as a single outcome), then lots of 62, 200 and
      // 37 records: the lots start and end anywhere, across DuckDB's buckets of 64 seqs.
      const lots = [[2, 63], [64, 263], [264, n]];
      const sep = '\x1f';
      const range = (lo: number, hi: number) => seqs.slice(lo - 1, hi);
      await w.append(
        schema,
        'sync_batch_outcomes',
        ['run_id', 'seq_lo', 'seq_hi', 'action', 'app_identifiers', 'results', 'recorded_at'],
        lots.map(([lo, hi]) => [runId, lo, hi, 'create', range(lo, hi).map((s) => `id-${s}`).join(sep), range(lo, hi).map((s) => JSON.stringify({ s })).join(sep), at]),
      );
      await w.append(schema, 'sync_outcomes', ['run_id', 'seq', 'action', 'success', 'app_identifier', 'result', 'error_kind', 'recorded_at'], [
        [runId, 1, 'create', true, 'id-1', JSON.stringify({ s: 1 }), null, at],
      ]);
      const { counts } = await recordRun(sql, { runId, syncName: 'long-lots', planned: { create: n }, error: null, idempotentCreate: false });
      expect(counts).toMatchObject({ succeeded: n, failed: 0, delayed: 0 });
      const history = await w.runAndRead(`SELECT record_key, app_identifier, result FROM ${t('sync_record_history')} WHERE run_id = ?`, [runId]);
      const bySeq = history.map((r) => ({ seq: Number(String(r.record_key).slice(1)), app_identifier: r.app_identifier, result: parse(r.result) })).sort((a, b) => a.seq - b.seq);
      expect(bySeq).toEqual(seqs.map((seq) => ({ seq, app_identifier: `id-${seq}`, result: { s: seq } })));
    });
  });
}
