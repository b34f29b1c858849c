/**
 * `ebb worker`: claims run_requests rows and runs their syncs. Against the Snowflake wire emulator
 * (emulated; several processes share it as they would share an account): three workers drain 50
 * requests of 5 syncs, each request runs exactly once and no sync runs twice at the same time;
 * SIGTERM stops a run after its current batches and loses nothing. In process, with races made
 * deterministic: a run refused by the run lock goes back to the queue, requests of paused or
 * unknown syncs are dropped, and a dead worker's claim is taken over. And on DuckDB.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { SnowflakeEmulator } from './snowflake/emulator.ts';
import './snowflake/support.ts';
import { duck, ebb, makeProject, repoRoot, type CliResult } from './support/project.ts';
import { SlowContacts } from './support/slow-contacts.ts';
import { until } from './support/wait.ts';
import { loadProject } from '../engine/config/load.ts';
import { Worker, type WorkerLogEntry } from '../engine/schedule/worker.ts';

const bin = join(repoRoot, 'bin', 'ebb.js');

/** Runs `ebb` as a child process; `onStart` gets the child (to signal it). */
function ebbChild(dir: string, args: string[], onStart?: (kill: (signal: NodeJS.Signals) => void) => void): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args, '--project-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    onStart?.((signal) => child.kill(signal));
  });
}

const warehouseOf = (emulator: SnowflakeEmulator) => ({ type: 'snowflake', account: 'emulated', username: 'ebb_user', password: 'secret', database: 'DB', access_url: emulator.url });

function fileSync(name: string, connection: string, extra: Record<string, unknown> = {}) {
  return { name, source: { table: 'people', key: 'id' }, destination: { connection, object: 'people.jsonl' }, strategy: 'upsert', mapping: { name: 'name' }, ...extra };
}

describe('ebb worker on Snowflake (emulated)', () => {
  let emulator: SnowflakeEmulator;
  beforeAll(async () => {
    emulator = await SnowflakeEmulator.start();
    await emulator.sql(`CREATE TABLE people AS SELECT range AS id, 'person ' || range AS name FROM range(20)`);
  });
  afterAll(() => emulator?.stop());

  it('3 workers, 50 queued requests of 5 syncs: each request runs exactly once, and no sync runs twice at the same time', async () => {
    const names = ['s1', 's2', 's3', 's4', 's5'];
    const dir = await makeProject({
      name: 'many',
      warehouse: warehouseOf(emulator),
      connections: Object.fromEntries(names.map((n) => [n, { plugin: 'file', config: { directory: `./out/${n}` } }])),
      syncs: names.map((n) => fileSync(n, n, { schedule: { every: '15m' } })),
    });
    // The tasks that `ebb deploy` creates queue the requests: ten firings of five tasks.
    const deployed = await ebb(dir, ['deploy']);
    expect(deployed.code, deployed.stderr).toBe(0);
    expect(emulator.tasks().map((t) => t.name)).toEqual(['EBB_S1', 'EBB_S2', 'EBB_S3', 'EBB_S4', 'EBB_S5']);
    for (let round = 0; round < 10; round++) expect(await emulator.fireTasks()).toHaveLength(5);
    expect(await emulator.sql('SELECT count(*) AS n FROM ebb.run_requests WHERE claimed_by IS NULL')).toEqual([{ N: '50' }]);

    const workers = await Promise.all([1, 2, 3].map(() => ebbChild(dir, ['worker', '--once', '--poll-seconds', '0.1'])));
    for (const w of workers) expect(w.code, w.stderr).toBe(0);

    const requests = await emulator.sql('SELECT request_id, sync_name, claimed_by, finished_at, run_id FROM ebb.run_requests');
    expect(requests).toHaveLength(50);
    expect(requests.filter((r) => r.FINISHED_AT === null || r.RUN_ID === null)).toEqual([]);
    // One run per request: as many distinct runs as requests.
    expect(new Set(requests.map((r) => r.RUN_ID)).size).toBe(50);
    const runs = await emulator.sql(
      `SELECT q.sync_name AS requested, r.sync_name, r."trigger", r.status FROM ebb.run_requests q JOIN ebb.sync_runs r ON r.run_id = q.run_id`,
    );
    expect(runs).toHaveLength(50);
    expect(runs.filter((r) => r.REQUESTED !== r.SYNC_NAME || r.trigger !== 'task' || r.STATUS !== 'HEALTHY')).toEqual([]);
    expect(await emulator.sql('SELECT sync_name, count(*) AS n FROM ebb.sync_runs GROUP BY sync_name ORDER BY sync_name')).toEqual(names.map((n) => ({ SYNC_NAME: n, N: '10' })));
    // No two runs of one sync overlap.
    const overlaps = await emulator.sql(
      `SELECT a.run_id FROM ebb.sync_runs a JOIN ebb.sync_runs b
       ON a.sync_name = b.sync_name AND a.run_id < b.run_id AND a.started_at < b.finished_at AND b.started_at < a.finished_at`,
    );
    expect(overlaps).toEqual([]);
    // The work was shared.
    expect(new Set(requests.map((r) => r.CLAIMED_BY)).size).toBeGreaterThan(1);
    for (const n of names) expect((await readFile(join(dir, 'out', n, 'people.jsonl'), 'utf8')).trim().split('\n')).toHaveLength(20);
  });

  it('SIGTERM stops the run after its current batches: the rest is DELAYED, queued again, and sent by the next worker', async () => {
    const app = await SlowContacts.start([15, 30]);
    try {
      await emulator.sql(`CREATE TABLE contacts AS SELECT range AS id, 'c' || range || '@x.io' AS email FROM range(120)`);
      const dir = await makeProject({
        name: 'slow',
        warehouse: warehouseOf(emulator),
        connections: { crm: { plugin: 'http', config: { base_url: app.url }, concurrency: 2 } },
        syncs: [
          {
            name: 'contacts_to_crm',
            source: { table: 'contacts', key: 'id' },
            destination: {
              connection: 'crm',
              object: 'contacts',
              requests: {
                create: { method: 'POST', path: '/contacts', body: '{{ record | tojson }}', app_id: '{{ response.id }}' },
                update: { method: 'PATCH', path: '/contacts/{{ app_id }}', body: '{{ record | tojson }}' },
              },
            },
            strategy: 'upsert',
            mapping: { email: 'email' },
            batch_size: 5,
          },
        ],
      });
      expect((await ebb(dir, ['deploy'])).code).toBe(0);
      await emulator.sql(`INSERT INTO ebb.run_requests (request_id, sync_name, "trigger", requested_at) VALUES ('sigterm-1', 'contacts_to_crm', 'task', SYSDATE())`);

      const stopped = await ebbChild(dir, ['worker', '--poll-seconds', '0.1'], (kill) => {
        void until('20 contacts in the app', () => app.exchanges.length >= 20).then(() => kill('SIGTERM'));
      });
      expect(stopped.code, stopped.stderr).toBe(0);
      expect(stopped.stderr).toContain('SIGTERM (send it again to stop at once): stopping, claiming no more requests; the run of contacts_to_crm sends no new batch');
      await app.idle();
      const [first] = await emulator.sql(`SELECT q.run_id, r.status, r.succeeded, r.delayed, r.failed FROM ebb.run_requests q JOIN ebb.sync_runs r ON r.run_id = q.run_id WHERE q.request_id = 'sigterm-1'`);
      expect(first.STATUS).toBe('DELAYED');
      const sent = Number(first.SUCCEEDED);
      expect(sent).toBeGreaterThanOrEqual(20);
      expect(sent).toBeLessThan(120);
      expect(Number(first.DELAYED)).toBe(120 - sent);
      expect(Number(first.FAILED)).toBe(0);
      // Every contact that reached the app was recorded.
      expect(app.app.contacts.size).toBe(sent);
      const followUp = await emulator.sql(`SELECT request_id, "trigger", claimed_by FROM ebb.run_requests WHERE request_id <> 'sigterm-1' AND sync_name = 'contacts_to_crm'`);
      expect(followUp).toMatchObject([{ trigger: 'task', CLAIMED_BY: null }]);
      expect(stopped.stderr).toContain(`queued again as request ${String(followUp[0].REQUEST_ID)}`);

      const rest = await ebb(dir, ['worker', '--once', '--poll-seconds', '0.1']);
      expect(rest.code, rest.stderr).toBe(0);
      const [second] = await emulator.sql(
        `SELECT r.status, r.succeeded, r.planned FROM ebb.run_requests q JOIN ebb.sync_runs r ON r.run_id = q.run_id WHERE q.request_id = '${String(followUp[0].REQUEST_ID)}'`,
      );
      expect(second.STATUS).toBe('HEALTHY');
      expect(Number(second.SUCCEEDED)).toBe(120 - sent);
      // Nothing lost, nothing sent twice.
      expect(app.byEmail().size).toBe(120);
      expect(app.exchanges.filter((e) => e.method === 'POST').length).toBe(120);
    } finally {
      await app.stop();
    }
  });
});

describe('the Worker, in process (emulated)', () => {
  let emulator: SnowflakeEmulator;
  let dir: string;
  const entries: WorkerLogEntry[] = [];
  const log = (e: WorkerLogEntry) => entries.push(e);
  const queue = (id: string, sync: string, extra = '') =>
    emulator.sql(`INSERT INTO ebb.run_requests (request_id, sync_name, "trigger", requested_at${extra ? ', claimed_by, claimed_at' : ''}) VALUES ('${id}', '${sync}', 'task', SYSDATE()${extra})`);
  const request = async (id: string) => (await emulator.sql(`SELECT claimed_by, finished_at, run_id FROM ebb.run_requests WHERE request_id = '${id}'`))[0];

  beforeAll(async () => {
    emulator = await SnowflakeEmulator.start();
    await emulator.sql(`CREATE TABLE people AS SELECT range AS id, 'person ' || range AS name FROM range(5)`);
    dir = await makeProject(
      stringify({
        name: 'inproc',
        warehouse: warehouseOf(emulator),
        connections: { out: { plugin: 'file', config: { directory: './out' } } },
        syncs: [fileSync('a', 'out', { destination: { connection: 'out', object: 'a.jsonl' } }), fileSync('b', 'out', { destination: { connection: 'out', object: 'b.jsonl' } })],
      }),
    );
    expect((await ebb(dir, ['deploy'])).code).toBe(0);
  });
  afterEach(() => {
    entries.length = 0;
  });
  afterAll(() => emulator?.stop());

  it('gives a request back to the queue when its sync turns out to be running elsewhere, and runs it once the sync is free', async () => {
    await queue('busy-1', 'a');
    // Between the worker's claim and its run, another process takes the run lock of `a`.
    const taken = emulator.interpose(
      /^UPDATE "EBB"."SYNCS"\s+SET lock_run_id/,
      `UPDATE ebb.syncs SET lock_run_id = 'elsewhere-run', lock_holder = 'other-host:1', lock_expires_at = CAST('2100-01-01' AS TIMESTAMP_NTZ) WHERE sync_name = 'a'`,
    );
    const worker = new Worker(await loadProject(dir), { once: true, pollMs: 50, log });
    const done = worker.start();
    await taken;
    await until('the request back in the queue', () => entries.some((e) => e.event === 'requeued'));
    expect(entries.find((e) => e.event === 'requeued')?.message).toMatch(/request busy-1: sync a is already running \(run elsewhere-run, held by other-host:1\); this run is refused\..*; back in the queue/);
    expect(await request('busy-1')).toMatchObject({ CLAIMED_BY: null, RUN_ID: null });
    // --once waits for the sync: the request is still to do.
    await sleep(300);
    expect(entries.filter((e) => e.event === 'result')).toEqual([]);
    await emulator.sql(`UPDATE ebb.syncs SET lock_run_id = NULL, lock_holder = NULL, lock_expires_at = NULL WHERE sync_name = 'a'`);
    const summary = await done;
    expect(summary).toMatchObject({ requeued: 1, dropped: 0 });
    expect(summary.runs.map((r) => `${r.sync}:${r.health}`)).toEqual(['a:HEALTHY']);
    expect(await request('busy-1')).toMatchObject({ CLAIMED_BY: worker.id, RUN_ID: summary.runs[0].run_id });
  });

  it('finishes the requests of paused and unknown syncs without a run, and says why', async () => {
    expect((await ebb(dir, ['pause', 'b'])).code).toBe(0);
    await queue('paused-1', 'b');
    await queue('unknown-1', 'nope');
    const summary = await new Worker(await loadProject(dir), { once: true, pollMs: 50, log }).start();
    expect(summary).toMatchObject({ runs: [], dropped: 2 });
    for (const id of ['paused-1', 'unknown-1']) expect((await request(id)).FINISHED_AT).not.toBeNull();
    expect(await request('paused-1')).toMatchObject({ RUN_ID: null });
    const dropped = entries.filter((e) => e.event === 'dropped').map((e) => e.message);
    expect(dropped).toContain('request paused-1: not run, sync b is paused; resume it with `ebb resume b` to run it');
    expect(dropped).toContain('request unknown-1: not run, sync nope is not in the catalog; run `ebb deploy` (or turn catalog.auto_deploy on)');
    expect((await ebb(dir, ['resume', 'b'])).code).toBe(0);
  });

  it('takes over the claim of a worker that stopped renewing it', async () => {
    await queue('orphan-1', 'b', `, 'dead-host:99:abc', CAST('2020-01-01' AS TIMESTAMP_NTZ)`);
    await queue('held-1', 'a', `, 'live-host:1:def', SYSDATE()`);
    const worker = new Worker(await loadProject(dir), { once: true, pollMs: 50, claimTtlMs: 60_000, log });
    const summary = await worker.start();
    expect(summary.runs.map((r) => r.sync)).toEqual(['b']);
    expect(await request('orphan-1')).toMatchObject({ CLAIMED_BY: worker.id, RUN_ID: summary.runs[0].run_id });
    // A fresh claim of another worker is that worker's to finish: --once leaves it.
    expect(await request('held-1')).toMatchObject({ CLAIMED_BY: 'live-host:1:def', FINISHED_AT: null });
    await emulator.sql(`DELETE FROM ebb.run_requests WHERE request_id = 'held-1'`);
  });
});

describe('ebb worker on DuckDB', () => {
  it('runs the queued requests of a DuckDB project, holding the file only while it works', async () => {
    const dir = await makeProject({
      name: 'local',
      warehouse: { type: 'duckdb', path: 'wh.duckdb' },
      connections: { out: { plugin: 'file', config: { directory: './out' } } },
      syncs: [fileSync('a', 'out')],
    });
    const db = join(dir, 'wh.duckdb');
    await duck(db, `CREATE TABLE people AS SELECT range AS id, 'person ' || range AS name FROM range(4)`);
    expect((await ebb(dir, ['deploy'])).code).toBe(0);
    await duck(db, `INSERT INTO ebb.run_requests (request_id, sync_name, "trigger", requested_at) VALUES ('r1', 'a', 'api', now()::TIMESTAMP), ('r2', 'a', 'task', now()::TIMESTAMP)`);
    const result = await ebb(dir, ['worker', '--once', '--json', '--poll-seconds', '0.1']);
    expect(result.code, result.stderr).toBe(0);
    const events = result.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as WorkerLogEntry);
    expect(events.filter((e) => e.event === 'result').map((e) => `${e.sync}:${e.result?.health}:${JSON.stringify(e.result?.planned)}`)).toEqual(['a:HEALTHY:{"create":4}', 'a:HEALTHY:{}']);
    const rows = await duck(db, `SELECT q.request_id, r."trigger" FROM ebb.run_requests q JOIN ebb.sync_runs r ON r.run_id = q.run_id ORDER BY q.request_id`);
    expect(rows).toEqual([
      { request_id: 'r1', trigger: 'api' },
      { request_id: 'r2', trigger: 'task' },
    ]);
  });
});
