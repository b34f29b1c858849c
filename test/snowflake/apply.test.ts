/**
 * Apply's writes to the warehouse (emulated): on a distant one (every request late) the in-flight
 * marks keep up with the sends, a window of the change set per statement; on a near one the
 * outcomes of many batches share a statement; and every record is delivered once with its outcome.
 */
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SnowflakeEmulator } from './emulator.ts';
import { openEmulated } from './support.ts';
import { Sql } from '../../engine/warehouse/sql.ts';
import { plan } from '../../engine/plan/plan.ts';
import { applyChanges, OUTCOME_LINGER_MS } from '../../engine/apply/apply.ts';
import { recordRun } from '../../engine/record/record.ts';
import { syncSchema } from '../../engine/config/schema.ts';
import type { SnowflakeWarehouse } from '../../engine/warehouse/snowflake.ts';
import type { Change, Outcome } from '../../plugins/plugin.ts';

describe("apply's warehouse writes (emulated)", () => {
  let emulator: SnowflakeEmulator;
  let warehouse: SnowflakeWarehouse;
  let sql: Sql;

  beforeAll(async () => {
    // Results of 20 rows a chunk: a window of the change set arrives a chunk at a time.
    emulator = await SnowflakeEmulator.start({ chunkRows: 20 });
    warehouse = await openEmulated(emulator);
    sql = new Sql(warehouse, 'ebb');
    await sql.runScript('setup');
    await emulator.sql('CREATE SCHEMA analytics');
    await emulator.sql(`CREATE TABLE analytics.contacts AS SELECT i AS id, 'p' || i || '@x.io' AS email FROM range(1, 601) t(i)`);
  });

  afterAll(async () => {
    await warehouse?.close();
    await emulator?.stop();
  });

  /** A session that answers every change after 2 ms; `received` lists the keys it got. */
  function app() {
    const received: string[] = [];
    const session = {
      apply: async (changes: Change[]): Promise<Outcome[]> => {
        await new Promise((resolve) => setTimeout(resolve, 2));
        return changes.map((c) => {
          received.push(c.key);
          return { key: c.key, success: true, appId: `app-${c.key}` };
        });
      },
      close: async () => undefined,
    };
    return { received, session };
  }

  /** Plans a first run of a sync of the 600 contacts; returns what applyChanges and recordRun need. */
  async function planned(name: string) {
    const sync = syncSchema.parse({ name, source: { table: 'analytics.contacts', key: 'id' }, destination: { connection: 'app', object: 'contacts' }, strategy: 'upsert', mapping: { email: 'email' } });
    const runId = `run-${name}`;
    await sql.run('run_insert', { run_id: runId, sync_name: sync.name, trigger: 'manual' });
    return { sync, runId, summary: await plan(sql, sync, { runId }) };
  }

  it('marks each window of the change set in one statement beside its read, and delivers every record once', async () => {
    const { sync, runId, summary } = await planned('window_marks');
    // From here on every request to the warehouse takes 40 ms, and the change set comes in windows
    // of 200 records, each read a chunk of 20 at a time; the app answers in 2 ms. Creates are
    // idempotent here, so that they are marked with their window.
    emulator.latencyMs = 40;
    emulator.resetCounts();
    const { received, session } = app();
    const result = await applyChanges({ sql, runId, lastSeq: summary.total, seqWindow: 200, session, strategy: sync.strategy, batchSize: 10, concurrency: 4, retryDelaysMs: [], idempotentCreate: true });
    emulator.latencyMs = 0;

    expect(result).toMatchObject({ applied: 600, stopped: undefined });
    expect(received).toHaveLength(600);
    expect(new Set(received).size).toBe(600);
    // Three windows (1–200, 201–400, 401–600): three mark statements, not one per few batches,
    // each of which arrived before its window's read had run (the two were on their way together).
    const marks = emulator.statements.filter((s) => /^INSERT INTO "EBB"\."SYNC_INFLIGHT"/.test(s.sql));
    const reads = emulator.statements.filter((s) => /^SELECT\b.*\sFROM "EBB"\."SYNC_CHANGES"/s.test(s.sql));
    expect(marks).toHaveLength(3);
    expect(reads).toHaveLength(3);
    marks.forEach((mark, i) => expect(mark.arrivedAt!).toBeLessThan(reads[i].at));
    // Two windows ahead: the second window's read was on its way before the first's ran; the
    // third left once the first had answered.
    expect(reads[1].arrivedAt!).toBeLessThan(reads[0].at);
    expect(reads[2].arrivedAt!).toBeGreaterThan(reads[0].at);
    const inflight = await warehouse.runAndRead(`SELECT seq_lo, seq_hi FROM ebb.sync_inflight WHERE run_id = ? ORDER BY seq_lo`, [runId]);
    expect(inflight.map((r) => [Number(r.seq_lo), Number(r.seq_hi)])).toEqual([[1, 200], [201, 400], [401, 600]]);
    const { counts } = await recordRun(sql, { runId, syncName: sync.name, planned: summary.actions, error: null, idempotentCreate: true });
    expect(counts).toMatchObject({ succeeded: 600, failed: 0 });
  });

  it('records DELAYED, not in flight, the records of a marked window that were not sent when sending stops', async () => {
    const { sync, runId, summary } = await planned('window_stop');
    const { received, session } = app();
    const stop = new AbortController();
    const stopping = { ...session, apply: async (changes: Change[]) => (received.length >= 100 && stop.abort(), session.apply(changes)) };
    const result = await applyChanges({ sql, runId, lastSeq: summary.total, seqWindow: 400, session: stopping, strategy: sync.strategy, batchSize: 10, concurrency: 2, retryDelaysMs: [], idempotentCreate: true, signal: stop.signal });

    expect(result.deferred).toBe('the run was asked to stop');
    expect(received.length).toBeGreaterThanOrEqual(100);
    expect(received.length).toBeLessThan(600);
    await recordRun(sql, { runId, syncName: sync.name, planned: summary.actions, error: null, idempotentCreate: true });
    const history = await warehouse.runAndRead(`SELECT apply_state, in_flight, count(*) AS n FROM ebb.sync_record_history WHERE run_id = ? GROUP BY 1, 2 ORDER BY 1`, [runId]);
    expect(history.map((h) => [h.apply_state, h.in_flight, Number(h.n)])).toEqual([
      ['DELAYED', false, 600 - received.length],
      ['SUCCESS', false, received.length],
    ]);
  });

  it('marks a create that could make a duplicate alone, just before its send, never with its window', async () => {
    const { sync, runId, summary } = await planned('sender_marks');
    emulator.latencyMs = 40;
    emulator.resetCounts();
    const { received, session } = app();
    const result = await applyChanges({ sql, runId, lastSeq: summary.total, seqWindow: 200, session, strategy: sync.strategy, batchSize: 10, concurrency: 4, retryDelaysMs: [] });
    emulator.latencyMs = 0;

    expect(result).toMatchObject({ applied: 600, stopped: undefined });
    expect(new Set(received).size).toBe(600);
    // A mark for each batch of 10 creates (its sender's), none for a window: a crash leaves in
    // doubt only the creates that were on the wire.
    const inflight = await warehouse.runAndRead(`SELECT action, seq_lo, seq_hi FROM ebb.sync_inflight WHERE run_id = ? ORDER BY seq_lo`, [runId]);
    expect(inflight).toHaveLength(60);
    inflight.forEach((mark, i) => expect([mark.action, Number(mark.seq_lo), Number(mark.seq_hi)]).toEqual(['create', i * 10 + 1, i * 10 + 10]));
    const { counts } = await recordRun(sql, { runId, syncName: sync.name, planned: summary.actions, error: null, idempotentCreate: false });
    expect(counts).toMatchObject({ succeeded: 600, failed: 0 });
  });

  it(`writes the outcomes answered within ${OUTCOME_LINGER_MS} ms in one statement on a warehouse faster than that`, async () => {
    const { sync, runId, summary } = await planned('near_outcomes');
    emulator.resetCounts();
    const { received, session } = app();
    const started = performance.now();
    const result = await applyChanges({ sql, runId, lastSeq: summary.total, session, strategy: sync.strategy, batchSize: 5, concurrency: 4, retryDelaysMs: [], idempotentCreate: true });
    const elapsed = performance.now() - started;

    expect(result).toMatchObject({ applied: 600, stopped: undefined });
    expect(new Set(received).size).toBe(600);
    // 120 batches answered: at most one outcome statement per OUTCOME_LINGER_MS of the run, and
    // the last one, not one for every statement's time (a few ms here).
    const outcomes = emulator.statements.filter((s) => /^INSERT INTO "EBB"\."SYNC_(BATCH_)?OUTCOMES"/.test(s.sql));
    expect(outcomes.length).toBeGreaterThan(0);
    expect(outcomes.length).toBeLessThanOrEqual(Math.ceil(elapsed / OUTCOME_LINGER_MS) + 2);
    const { counts } = await recordRun(sql, { runId, syncName: sync.name, planned: summary.actions, error: null, idempotentCreate: false });
    expect(counts).toMatchObject({ succeeded: 600, failed: 0 });
  });
});
