/**
 * No idle cost on Snowflake (emulated): an idle `ebb worker` and an idle `ebb scheduler` with one
 * live sync poll change tokens, which need no running warehouse, and look at the warehouse itself
 * at most about once a minute (bench/idle.ts, at 600× speed); and a worker still notices a new
 * request at its next poll, not after its idle wait.
 */
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SnowflakeEmulator } from './emulator.ts';
import './support.ts';
import { until } from '../support/wait.ts';
import { idleCost, idleEmulator, idleHourOf, idleProject } from '../../bench/idle.ts';
import type { Project } from '../../engine/config/load.ts';
import { Worker } from '../../engine/schedule/worker.ts';

describe('idle worker and scheduler on Snowflake (emulated)', () => {
  it('need the warehouse at most about once a minute in an idle hour; their polls need none', async () => {
    // The two hours at once: each has an emulator of its own, and counts only its statements.
    const [worker, scheduler] = await Promise.all([idleHourOf('worker', 600), idleHourOf('scheduler', 600)]);
    // An hour has 60 minutes: one look a minute at most, and a few polls of tokens in between.
    expect(worker.warehouse).toBeLessThanOrEqual(62);
    expect(scheduler.warehouse).toBeLessThanOrEqual(62);
    expect(worker.free).toBeGreaterThan(0);
    expect(scheduler.free).toBeGreaterThan(0);
  }, 120_000);

  it('an idle worker turns a no_success verdict that time turned, without reading the runs again', async () => {
    const emulator = await idleEmulator();
    try {
      const project = await idleProject(emulator, { rules: { no_success: { for: '3s' } } });
      const worker = new Worker(project, { pollMs: 50, maxIdleLookMs: 500, staleCheckMs: 100, log: () => {} });
      const done = worker.start();
      try {
        // The sync never runs (live syncs are the scheduler's): 3 s after its deploy, it has not succeeded for too long.
        // (Until the worker has deployed, there is no table to read.)
        const state = async () => (await emulator.sql(`SELECT state FROM ebb.sync_alerts WHERE sync_name = 'customers' AND rule = 'no_success'`).catch(() => []))[0]?.STATE;
        expect(await until('no_success to fire', async () => ((await state()) === 'FIRING' ? 'FIRING' : undefined), { timeoutMs: 20_000 })).toBe('FIRING');
        // Its first check read the last successes; the tokens have not moved since: none read them again.
        expect(emulator.statements.filter((s) => /^\s*SELECT s\.sync_name, s\.created_at/i.test(s.sql))).toHaveLength(1);
      } finally {
        await worker.stop();
        await done;
      }
    } finally {
      await emulator.stop();
    }
  });

  describe('a worker that waits long between looks', () => {
    let emulator: SnowflakeEmulator;
    let project: Project;
    beforeAll(async () => {
      emulator = await idleEmulator();
      project = await idleProject(emulator);
    });
    afterAll(() => emulator?.stop());

    it('notices a queued request at its next poll of the tokens, not at its next look', async () => {
      // Its idle wait doubles from 50 ms, up to ten minutes: after its sixth look it waits 3.2 s
      // before the next, so a claim much sooner than that can only come from the token poll.
      const worker = new Worker(project, { pollMs: 50, maxIdleLookMs: 600_000, log: () => {} });
      const done = worker.start();
      try {
        const looks = () => idleCost(emulator.statements.filter((s) => /"RUN_REQUESTS"/.test(s.sql) && /^\s*SELECT/i.test(s.sql))).warehouse;
        await until('six looks at the queue', () => looks() >= 6, { timeoutMs: 20_000, intervalMs: 5 });
        const queuedAt = performance.now();
        await emulator.sql(`INSERT INTO ebb.run_requests (request_id, sync_name, "trigger", requested_at) SELECT 'r1', 'customers', 'api', SYSDATE()`);
        const finished = await until('the run of the request to finish', async () => {
          const rows = await emulator.sql(`SELECT run_id FROM ebb.run_requests WHERE request_id = 'r1' AND finished_at IS NOT NULL`);
          return rows.length > 0 ? rows : undefined;
        });
        expect(finished).toHaveLength(1);
        const claim = emulator.statements.find((s) => s.at > queuedAt && /^\s*UPDATE\s+"[^"]+"\."RUN_REQUESTS"\s+SET claimed_by/i.test(s.sql));
        expect(claim).toBeDefined();
        expect(claim!.at - queuedAt).toBeLessThan(2000);
      } finally {
        await worker.stop();
        await done;
      }
    });
  });
});
