/**
 * No idle cost on Snowflake (emulated): an idle `ebb worker` and an idle `ebb scheduler` with one
 * live sync poll change tokens, which need no running warehouse, and look at the warehouse itself
 * at most about once a minute (bench/idle.ts, at 600× speed); and a worker still notices a new
 * request at its next poll, not after its idle wait.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { needsWarehouse, SnowflakeEmulator } from './emulator.ts';
import './support.ts';
import { makeProject } from '../support/project.ts';
import { benchIdle } from '../../bench/idle.ts';
import { loadProject } from '../../engine/config/load.ts';
import { Worker } from '../../engine/schedule/worker.ts';

describe('idle worker and scheduler on Snowflake (emulated)', () => {
  it('need the warehouse at most about once a minute in an idle hour; their polls need none', async () => {
    const { worker, scheduler } = await benchIdle(600);
    // An hour has 60 minutes: one look a minute at most, and a few polls of tokens in between.
    expect(worker.warehouse).toBeLessThanOrEqual(62);
    expect(scheduler.warehouse).toBeLessThanOrEqual(62);
    expect(worker.free).toBeGreaterThan(0);
    expect(scheduler.free).toBeGreaterThan(0);
  }, 120_000);

  describe('a worker that waits long between looks', () => {
    let emulator: SnowflakeEmulator;
    let dir: string;
    beforeAll(async () => {
      emulator = await SnowflakeEmulator.start();
      await emulator.sql('CREATE SCHEMA analytics');
      await emulator.sql('CREATE TABLE analytics.customers (customer_id INTEGER, email VARCHAR)');
      await emulator.sql(`INSERT INTO analytics.customers VALUES (1, 'ada@x.io')`);
      dir = await makeProject({});
      await writeFile(
        join(dir, 'ebb.yml'),
        stringify({
          version: 1,
          name: 'idle',
          warehouse: { type: 'snowflake', account: 'emulated', username: 'u', password: 'p', database: 'DB', access_url: emulator.url },
          connections: { files: { plugin: 'file', config: { directory: './out' } } },
          syncs: [{ name: 'customers', source: { table: 'analytics.customers', key: 'customer_id' }, destination: { connection: 'files', object: 'c.jsonl' }, strategy: 'upsert', mapping: { email: 'email' } }],
        }),
      );
    });
    afterAll(() => emulator?.stop());

    it('notices a queued request at its next poll of the tokens', async () => {
      // Its idle wait grows to ten minutes: only the token of run_requests can wake it in time.
      const worker = new Worker(await loadProject(dir), { pollMs: 50, maxIdleLookMs: 600_000, log: () => {} });
      const done = worker.start();
      try {
        const looks = () => emulator.statements.filter((s) => needsWarehouse(s) && /"RUN_REQUESTS"/.test(s.sql) && /^\s*SELECT/i.test(s.sql)).length;
        for (let i = 0; i < 200 && looks() < 3; i++) await new Promise((ok) => setTimeout(ok, 50));
        await new Promise((ok) => setTimeout(ok, 1000));
        await emulator.sql(`INSERT INTO ebb.run_requests (request_id, sync_name, "trigger", requested_at) SELECT 'r1', 'customers', 'api', SYSDATE()`);
        let finished: unknown[] = [];
        for (let i = 0; i < 300 && finished.length === 0; i++) {
          await new Promise((ok) => setTimeout(ok, 100));
          finished = await emulator.sql(`SELECT run_id FROM ebb.run_requests WHERE request_id = 'r1' AND finished_at IS NOT NULL`);
        }
        expect(finished).toHaveLength(1);
      } finally {
        await worker.stop();
        await done;
      }
    });
  });
});
