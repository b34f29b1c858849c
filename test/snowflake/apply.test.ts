/**
 * Apply on a distant warehouse (emulated, every request late): the in-flight marks keep up with
 * the sends, and every record is delivered once with its outcome.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SnowflakeEmulator } from './emulator.ts';
import { openEmulated } from './support.ts';
import { Sql } from '../../engine/warehouse/sql.ts';
import { plan } from '../../engine/plan/plan.ts';
import { applyChanges } from '../../engine/apply/apply.ts';
import { recordRun } from '../../engine/record/record.ts';
import { syncSchema } from '../../engine/config/schema.ts';
import type { SnowflakeWarehouse } from '../../engine/warehouse/snowflake.ts';
import type { Change, Outcome } from '../../plugins/plugin.ts';

describe('apply on a warehouse slower than the app (emulated)', () => {
  let emulator: SnowflakeEmulator;
  let warehouse: SnowflakeWarehouse;

  beforeAll(async () => {
    // Results of 20 rows a chunk: a window of the change set arrives a chunk at a time.
    emulator = await SnowflakeEmulator.start({ chunkRows: 20 });
    warehouse = await openEmulated(emulator);
  });

  afterAll(async () => {
    await warehouse?.close();
    await emulator?.stop();
  });

  it('writes a second in-flight mark beside one that outlasts a send, and delivers every record once', async () => {
    const sql = new Sql(warehouse, 'ebb');
    await sql.runScript('setup');
    await emulator.sql('CREATE SCHEMA analytics');
    await emulator.sql(`CREATE TABLE analytics.contacts AS SELECT i AS id, 'p' || i || '@x.io' AS email FROM range(1, 601) t(i)`);
    const sync = syncSchema.parse({ name: 'slow_marks', source: { table: 'analytics.contacts', key: 'id' }, destination: { connection: 'app', object: 'contacts' }, strategy: 'upsert', mapping: { email: 'email' } });
    const runId = 'run-slow-marks';
    await sql.run('run_insert', { run_id: runId, sync_name: sync.name, trigger: 'manual' });
    const summary = await plan(sql, sync, { runId });

    // From here on every request to the warehouse takes 40 ms, and the change set comes in windows
    // of 200 records, each read a chunk of 20 at a time; the app answers in 2 ms. Creates are
    // idempotent here, so that they are marked ahead of the sends.
    emulator.latencyMs = 40;
    emulator.resetCounts();
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
    const result = await applyChanges({ sql, runId, lastSeq: summary.total, seqWindow: 200, session, strategy: sync.strategy, batchSize: 10, concurrency: 4, retryDelaysMs: [], idempotentCreate: true });
    emulator.latencyMs = 0;

    expect(result).toMatchObject({ applied: 600, stopped: undefined });
    expect(received).toHaveLength(600);
    expect(new Set(received).size).toBe(600);
    // A mark statement whose request arrived before the one before it had even run: two at once.
    // (One at a time, each mark would wait for the one before, and the batches behind it too.)
    const marks = emulator.statements.filter((s) => /^INSERT INTO "EBB"\."SYNC_INFLIGHT"/.test(s.sql)).sort((a, b) => a.arrivedAt! - b.arrivedAt!);
    expect(marks.some((m, i) => i > 0 && m.arrivedAt! < marks[i - 1].at)).toBe(true);
    const { counts } = await recordRun(sql, { runId, syncName: sync.name, planned: summary.actions, error: null, idempotentCreate: false });
    expect(counts).toMatchObject({ succeeded: 600, failed: 0 });
  });
});
