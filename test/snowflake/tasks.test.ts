/**
 * `ebb deploy` on Snowflake creates the tasks that queue scheduled runs (emulated): one task per
 * `every`/`cron` sync, a stream and a stream-triggered task per `live` sync, resumed, found again
 * by their comment; a deploy without changes runs no DDL; gone syncs lose their tasks; schedules
 * that Snowflake cannot run are refused before anything changes. The tasks' INSERTs are fired in
 * the emulator, and `ebb worker --once` runs what they queued. On DuckDB, deploy says it skips tasks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { SnowflakeEmulator, type EmulatedTask } from './emulator.ts';
import './support.ts';
import { duck, ebb, makeProject } from '../support/project.ts';
import { snowflakeSchedule, taskName } from '../../engine/schedule/tasks.ts';

function sync(name: string, schedule: unknown, extra: Record<string, unknown> = {}) {
  return {
    name,
    source: { table: 'analytics.customers', key: 'customer_id' },
    destination: { connection: 'files', object: `${name}.jsonl` },
    strategy: 'upsert',
    mapping: { email: 'email', plan: 'plan' },
    schedule,
    ...extra,
  };
}

const byName = (tasks: EmulatedTask[]) => Object.fromEntries(tasks.map((t) => [t.name, t]));

describe('task names and schedules', () => {
  it('names a task EBB_<SYNC>, with a hash where the name does not map one to one', () => {
    expect(taskName('customers_to_crm')).toBe('EBB_CUSTOMERS_TO_CRM');
    expect(taskName('Customers')).toMatch(/^EBB_CUSTOMERS_[0-9A-F]{6}$/);
    expect(taskName('Customers')).not.toBe(taskName('CUSTOMERS'));
    expect(taskName('customers')).not.toBe(taskName('Customers'));
    expect(taskName('a-b')).not.toBe(taskName('a_b'));
    expect(taskName("it's a \"name\"")).toMatch(/^EBB_IT_S_A__NAME__[0-9A-F]{6}$/);
    expect(taskName('x'.repeat(300)).length).toBeLessThan(220);
  });

  it("turns every and cron into Snowflake's SCHEDULE, and refuses what Snowflake cannot run", () => {
    expect(snowflakeSchedule({ every: '15m' })).toEqual({ schedule: '15 MINUTES' });
    expect(snowflakeSchedule({ every: '1m' })).toEqual({ schedule: '1 MINUTE' });
    expect(snowflakeSchedule({ every: '2h' })).toEqual({ schedule: '120 MINUTES' });
    expect(snowflakeSchedule({ every: '1d' })).toEqual({ schedule: '1440 MINUTES' });
    expect(snowflakeSchedule({ every: '90s' })).toEqual({ schedule: '2 MINUTES', note: 'every 90s rounded up to 2 minutes: Snowflake schedules in whole minutes' });
    expect(() => snowflakeSchedule({ every: '30s' })).toThrow(/every 30s is shorter than a minute, the shortest schedule of a Snowflake task/);
    expect(() => snowflakeSchedule({ every: '9d' })).toThrow(/longer than 8 days/);
    expect(snowflakeSchedule({ cron: '0 * * * *' })).toEqual({ schedule: 'USING CRON 0 * * * * UTC' });
    expect(snowflakeSchedule({ cron: '@daily' })).toEqual({ schedule: 'USING CRON 0 0 * * * UTC' });
    expect(snowflakeSchedule({ cron: '0 30 6 * * 1-5' })).toEqual({ schedule: 'USING CRON 30 6 * * 1-5 UTC' });
    expect(() => snowflakeSchedule({ cron: '*/10 * * * * *' })).toThrow(/has a seconds field/);
    expect(() => snowflakeSchedule({ cron: 'every day' })).toThrow(/is not a valid cron/);
  });
});

describe('ebb deploy: Snowflake tasks (emulated)', () => {
  let emulator: SnowflakeEmulator;
  let dir: string;
  const config = (syncs: object[]) => ({
    version: 1,
    name: 'acme',
    warehouse: { type: 'snowflake', account: 'emulated', username: 'ebb_user', password: 'secret', database: 'DB', warehouse: 'transforming', access_url: emulator.url },
    connections: { files: { plugin: 'file', config: { directory: './out' } } },
    syncs,
  });
  const first = () => [
    sync('every', { every: '15m' }),
    sync('every_90s', { every: '90s' }),
    sync('hourly', { cron: '0 * * * *' }),
    sync('live', 'live'),
    sync('by_hand', 'manual'),
    sync('one_off', 'once'),
  ];
  const redeploy = async (syncs: object[], args: string[] = ['--json']) => {
    await writeFile(join(dir, 'ebb.yml'), stringify(config(syncs)));
    return ebb(dir, ['deploy', ...args]);
  };
  const requests = () => emulator.sql('SELECT sync_name, "trigger", run_id, finished_at FROM ebb.run_requests ORDER BY sync_name, requested_at');

  beforeAll(async () => {
    emulator = await SnowflakeEmulator.start();
    await emulator.sql('CREATE SCHEMA analytics');
    await emulator.sql('CREATE TABLE analytics.customers (customer_id INTEGER, email VARCHAR, plan VARCHAR)');
    await emulator.sql(`INSERT INTO analytics.customers VALUES (1, 'ada@x.io', 'pro'), (2, 'bob@x.io', 'free')`);
    dir = await makeProject(stringify({ version: 1, name: 'acme', syncs: [] }));
  });
  afterAll(() => emulator?.stop());

  it('--dry-run prints the DDL, and creates neither tasks nor catalog rows', async () => {
    await writeFile(join(dir, 'ebb.yml'), stringify(config(first())));
    const dry = await ebb(dir, ['deploy', '--dry-run']);
    expect(dry.stderr).toBe('');
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('tasks in schema ebb');
    expect(dry.stdout).toMatch(/\+ EBB_EVERY\s+new: every 15m → SCHEDULE '15 MINUTES', warehouse TRANSFORMING/);
    expect(dry.stdout).toMatch(/\+ EBB_LIVE_STREAM\s+stream, new: on analytics.customers/);
    expect(dry.stdout).toContain('DDL that deploy would run:');
    expect(dry.stdout).toContain(`CREATE OR REPLACE TASK "EBB"."EBB_HOURLY"\nWAREHOUSE = "TRANSFORMING"\nSCHEDULE = 'USING CRON 0 * * * * UTC'\nCOMMENT = 'ebb:acme:hourly'\nAS INSERT INTO "EBB"."RUN_REQUESTS"`);
    expect(dry.stdout).toContain(`CREATE STREAM IF NOT EXISTS "EBB"."EBB_LIVE_STREAM"\nON TABLE "ANALYTICS"."CUSTOMERS"`);
    expect(dry.stdout).toContain(`WHEN SYSTEM$STREAM_HAS_DATA('"EBB"."EBB_LIVE_STREAM"')`);
    expect(dry.stdout).toContain('ALTER TASK IF EXISTS "EBB"."EBB_EVERY" RESUME;');
    expect(dry.stdout).not.toMatch(/EBB_BY_HAND|EBB_ONE_OFF/);
    expect(emulator.tasks()).toEqual([]);
    expect(emulator.streams()).toEqual([]);
    expect(await emulator.sql('SELECT count(*) AS n FROM ebb.syncs')).toEqual([{ N: '0' }]);
  });

  it('creates one resumed task per every/cron sync and a stream plus a task for a live one, found by their comment', async () => {
    const result = await ebb(dir, ['deploy', '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const out = JSON.parse(result.stdout) as { committed: boolean; tasks: { schema: string; steps: Array<{ object: string; name: string; kind: string; ddl: string[] }> } };
    expect(out.committed).toBe(true);
    expect(out.tasks.steps.map((s) => `${s.object}:${s.name}:${s.kind}`)).toEqual([
      'stream:EBB_LIVE_STREAM:create',
      'task:EBB_EVERY:create',
      'task:EBB_EVERY_90S:create',
      'task:EBB_HOURLY:create',
      'task:EBB_LIVE:create',
    ]);
    const tasks = byName(emulator.tasks());
    expect(Object.keys(tasks)).toEqual(['EBB_EVERY', 'EBB_EVERY_90S', 'EBB_HOURLY', 'EBB_LIVE']);
    expect(tasks.EBB_EVERY).toMatchObject({ database: 'DB', schema: 'EBB', schedule: '15 MINUTES', state: 'started', comment: 'ebb:acme:every', warehouse: 'TRANSFORMING', condition: null });
    expect(tasks.EBB_EVERY_90S).toMatchObject({ schedule: '2 MINUTES', state: 'started' });
    expect(tasks.EBB_HOURLY).toMatchObject({ schedule: 'USING CRON 0 * * * * UTC', state: 'started' });
    expect(tasks.EBB_LIVE).toMatchObject({ schedule: '1 MINUTE', state: 'started', condition: `SYSTEM$STREAM_HAS_DATA('"EBB"."EBB_LIVE_STREAM"')` });
    expect(tasks.EBB_LIVE.definition).toContain('FROM (SELECT 1 FROM "EBB"."EBB_LIVE_STREAM" LIMIT 1)');
    expect(emulator.streams()).toMatchObject([{ name: 'EBB_LIVE_STREAM', schema: 'EBB', table: 'DB.ANALYTICS.CUSTOMERS', comment: 'ebb:acme:live' }]);
  });

  it('a deploy without changes runs no DDL', async () => {
    emulator.resetCounts();
    const again = await ebb(dir, ['deploy']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/= EBB_EVERY\s+unchanged: every 15m/);
    expect(again.stdout).toMatch(/= EBB_LIVE_STREAM\s+stream, unchanged/);
    expect(emulator.statements.filter((s) => /^(CREATE|ALTER|DROP)\b[^\n]*\b(TASK|STREAM)\b/.test(s.sql))).toEqual([]);
  });

  it('recreates no task when SHOW TASKS spells its schedule another way', async () => {
    // What a real account may answer for the schedules that ebb wrote.
    const respelled: Record<string, string> = { EBB_EVERY: '15 minute', EBB_EVERY_90S: '2 MINUTE', EBB_HOURLY: 'using  cron 0 * * * * utc', EBB_LIVE: '60 SECONDS' };
    for (const task of emulator.tasks()) if (respelled[task.name]) task.schedule = respelled[task.name];
    emulator.resetCounts();
    const again = await ebb(dir, ['deploy']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/= EBB_EVERY\s+unchanged: every 15m/);
    expect(emulator.statements.filter((s) => /^(CREATE|ALTER|DROP)\b[^\n]*\b(TASK|STREAM)\b/.test(s.sql))).toEqual([]);
  });

  it('the tasks queue runs for ebb worker; a live task fires only when its source changed, and consumes its stream', async () => {
    expect((await emulator.fireTasks()).sort()).toEqual(['EBB_EVERY', 'EBB_EVERY_90S', 'EBB_HOURLY']);
    await emulator.sql(`UPDATE analytics.customers SET plan = 'enterprise' WHERE customer_id = 2`);
    expect(await emulator.executeTask('ebb.ebb_live')).toBe(true);
    // The INSERT read the stream: it is consumed, and the live task waits for the next change.
    expect(await emulator.executeTask('"EBB"."EBB_LIVE"')).toBe(false);
    expect((await requests()).map((r) => `${String(r.SYNC_NAME)}:${String(r.trigger)}:${String(r.RUN_ID)}`)).toEqual(['every:task:null', 'every_90s:task:null', 'hourly:task:null', 'live:live:null']);

    const worker = await ebb(dir, ['worker', '--once', '--poll-seconds', '0.1']);
    expect(worker.code, worker.stderr).toBe(0);
    expect(worker.stderr).toMatch(/request \S+ \(live\) → run live/);
    const done = await emulator.sql(
      'SELECT q.sync_name, q."trigger", r.status, r."trigger" AS run_trigger FROM ebb.run_requests q JOIN ebb.sync_runs r ON r.run_id = q.run_id WHERE q.finished_at IS NOT NULL ORDER BY q.sync_name',
    );
    expect(done.map((r) => `${String(r.SYNC_NAME)}:${String(r.STATUS)}:${String(r.RUN_TRIGGER)}`)).toEqual(['every:HEALTHY:task', 'every_90s:HEALTHY:task', 'hourly:HEALTHY:task', 'live:HEALTHY:live']);
  });

  it('updates changed tasks, suspends those of paused syncs, removes those of gone syncs, and leaves other tasks alone', async () => {
    await emulator.sql(`CREATE TASK ebb.ebb_not_ours SCHEDULE = '5 MINUTES' COMMENT = 'made by hand' AS INSERT INTO ebb.run_requests (request_id) SELECT 'x'`);
    await emulator.sql(`CREATE TASK ebb.ebb_other_project SCHEDULE = '5 MINUTES' COMMENT = 'ebb:other:every' AS INSERT INTO ebb.run_requests (request_id) SELECT 'y'`);
    expect((await ebb(dir, ['pause', 'every_90s'])).code).toBe(0);
    const result = await redeploy([sync('every', { every: '30m' }), sync('every_90s', { every: '90s' }), sync('by_hand', 'manual')], []);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/~ EBB_EVERY\s+updated: schedule changed: every 30m → SCHEDULE '30 MINUTES'/);
    expect(result.stdout).toMatch(/~ EBB_EVERY_90S\s+suspended: the sync is paused/);
    expect(result.stdout).toMatch(/- EBB_HOURLY\s+removed: sync hourly is gone/);
    expect(result.stdout).toMatch(/- EBB_LIVE\s+removed/);
    expect(result.stdout).toMatch(/- EBB_LIVE_STREAM\s+stream, removed: sync live is gone, or no longer live/);
    const tasks = byName(emulator.tasks());
    expect(Object.keys(tasks)).toEqual(['EBB_EVERY', 'EBB_EVERY_90S', 'EBB_NOT_OURS', 'EBB_OTHER_PROJECT']);
    expect(tasks.EBB_EVERY).toMatchObject({ schedule: '30 MINUTES', state: 'started' });
    expect(tasks.EBB_EVERY_90S).toMatchObject({ state: 'suspended' });
    expect(emulator.streams()).toEqual([]);

    // Resumed, the sync's task starts again at the next deploy.
    expect((await ebb(dir, ['resume', 'every_90s'])).code).toBe(0);
    const resumed = await ebb(dir, ['deploy']);
    expect(resumed.stdout).toMatch(/~ EBB_EVERY_90S\s+resumed/);
    expect(byName(emulator.tasks()).EBB_EVERY_90S.state).toBe('started');
  });

  it('refuses schedules that Snowflake cannot run, before anything changes (exit 3)', async () => {
    const before = emulator.tasks();
    const result = await redeploy([sync('fast', { every: '30s' }), sync('from_query', 'live', { source: { query: 'select * from analytics.customers', key: 'customer_id' } })], []);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('syncs[0].schedule: every 30s is shorter than a minute, the shortest schedule of a Snowflake task');
    expect(result.stderr).toContain('syncs[1].schedule: live: a Snowflake stream needs a table, and sync from_query reads a query');
    expect(emulator.tasks()).toEqual(before);
    expect(await emulator.sql(`SELECT count(*) AS n FROM ebb.syncs WHERE sync_name IN ('fast', 'from_query')`)).toEqual([{ N: '0' }]);
  });
});

describe('the emulator keeps the rules of Snowflake tasks (emulated)', () => {
  let emulator: SnowflakeEmulator;
  beforeAll(async () => {
    emulator = await SnowflakeEmulator.start();
    await emulator.sql('CREATE TABLE t (id INTEGER)');
    await emulator.sql('CREATE TABLE log (v VARCHAR)');
  });
  afterAll(() => emulator?.stop());

  it('refuses bad schedules, mixed warehouses, unknown properties and unknown tasks; IF EXISTS is quiet', async () => {
    await expect(emulator.sql(`CREATE TASK a SCHEDULE = '30 SECONDS' AS INSERT INTO log VALUES ('a')`)).rejects.toThrow(/invalid value '30 SECONDS' for property 'SCHEDULE'/);
    await expect(emulator.sql(`CREATE TASK a WAREHOUSE = wh USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE = 'XSMALL' SCHEDULE = '1 MINUTE' AS INSERT INTO log VALUES ('a')`)).rejects.toThrow(/not both/);
    await expect(emulator.sql(`CREATE TASK a FOO = 1 AS INSERT INTO log VALUES ('a')`)).rejects.toThrow(/invalid property 'FOO'/);
    await expect(emulator.sql(`CREATE TASK a SCHEDULE = '1 MINUTE' AS SELECT 1`)).rejects.toThrow(/must be DML/);
    await expect(emulator.sql(`CREATE TASK a SCHEDULE = '1 MINUTE' AS INSERT INTO log VALUES (json_object('a', 1))`)).rejects.toThrow(/Unknown function JSON_OBJECT/);
    await expect(emulator.sql('ALTER TASK nope RESUME')).rejects.toThrow(/Task 'NOPE' does not exist or not authorized/);
    await emulator.sql('ALTER TASK IF EXISTS nope RESUME');
    await emulator.sql('DROP TASK IF EXISTS nope');
    await emulator.sql(`CREATE TASK a SCHEDULE = '5 MINUTES' AS INSERT INTO log VALUES ('a')`);
    await expect(emulator.sql(`CREATE TASK a SCHEDULE = '5 MINUTES' AS INSERT INTO log VALUES ('a')`)).rejects.toThrow(/already exists/);
    expect(await emulator.sql(`SHOW TASKS LIKE 'A%'`)).toMatchObject([{ name: 'A', state: 'suspended', schedule: '5 MINUTES' }]);
    expect(await emulator.fireTasks()).toEqual([]);
    await emulator.sql('EXECUTE TASK a');
    expect(await emulator.sql('SELECT v FROM log')).toEqual([{ V: 'a' }]);
  });

  it('a stream has data after a change to its table, until DML reads it', async () => {
    await emulator.sql('CREATE STREAM s ON TABLE t');
    await expect(emulator.sql('CREATE STREAM s ON TABLE t')).rejects.toThrow(/already exists/);
    await expect(emulator.sql('CREATE STREAM s2 ON TABLE missing')).rejects.toThrow(/Table 'MISSING' does not exist/);
    await emulator.sql(`CREATE TASK b SCHEDULE = '1 MINUTE' WHEN SYSTEM$STREAM_HAS_DATA('s') AS INSERT INTO log SELECT 'b' FROM (SELECT 1 FROM s LIMIT 1)`);
    await emulator.sql('ALTER TASK b RESUME');
    expect(await emulator.executeTask('b')).toBe(false);
    await emulator.sql('INSERT INTO t VALUES (1)');
    // A plain SELECT does not consume the stream.
    await emulator.sql('SELECT * FROM s');
    expect(await emulator.executeTask('b')).toBe(true);
    expect(await emulator.executeTask('b')).toBe(false);
    expect(await emulator.sql(`SELECT count(*) AS n FROM log WHERE v = 'b'`)).toEqual([{ N: '1' }]);
    await emulator.sql('DROP TASK b');
    await emulator.sql('DROP STREAM s');
    expect(emulator.streams()).toEqual([]);
  });

  it('task graphs: AFTER without a schedule, predecessors of one graph, changed only while the root is suspended', async () => {
    await emulator.sql(`CREATE TASK root SCHEDULE = '1 MINUTE' AS INSERT INTO log VALUES ('root')`);
    await expect(emulator.sql(`CREATE TASK kid SCHEDULE = '1 MINUTE' AFTER root AS INSERT INTO log VALUES ('kid')`)).rejects.toThrow(/cannot have a schedule/);
    await expect(emulator.sql(`CREATE TASK kid AFTER nope AS INSERT INTO log VALUES ('kid')`)).rejects.toThrow(/Task 'NOPE' does not exist/);
    await emulator.sql('ALTER TASK root RESUME');
    await expect(emulator.sql(`CREATE TASK kid AFTER root AS INSERT INTO log VALUES ('kid')`)).rejects.toThrow(/Unable to update graph with root task DB.PUBLIC.ROOT since that root task is not suspended/);
    await emulator.sql('ALTER TASK root SUSPEND');
    await emulator.sql(`CREATE TASK kid AFTER root AS INSERT INTO log VALUES ('kid')`);
    await emulator.sql(`CREATE TASK other SCHEDULE = '1 MINUTE' AS INSERT INTO log VALUES ('other')`);
    await expect(emulator.sql(`CREATE TASK mixed AFTER kid, other AS INSERT INTO log VALUES ('mixed')`)).rejects.toThrow(/different task graphs/);
    await emulator.sql('ALTER TASK kid RESUME');
    await emulator.sql('ALTER TASK root RESUME');
    const [shown] = await emulator.sql('SHOW TASKS LIKE \'KID\'');
    expect(shown).toMatchObject({ schedule: null, predecessors: '["DB.PUBLIC.ROOT"]', state: 'started' });
    // A round fires the root, then the task after it.
    expect(await emulator.fireTasks()).toEqual(['KID', 'ROOT']);
    await emulator.sql('DROP TASK root');
    expect(byName(emulator.tasks()).KID.predecessors).toEqual([]);
  });
});

describe('ebb deploy on DuckDB', () => {
  it('says once that it skips tasks, which the scheduler replaces', async () => {
    const dir = await makeProject({
      name: 'local',
      warehouse: { type: 'duckdb', path: 'wh.duckdb' },
      connections: { files: { plugin: 'file', config: { directory: './out' } } },
      syncs: [
        { ...sync('a', { every: '15m' }), source: { table: 'people', key: 'id' }, mapping: { id: 'id' } },
        { ...sync('b', 'live'), source: { table: 'people', key: 'id' }, mapping: { id: 'id' } },
        { ...sync('c', 'manual'), source: { table: 'people', key: 'id' }, mapping: { id: 'id' } },
      ],
    });
    await duck(join(dir, 'wh.duckdb'), 'CREATE TABLE people AS SELECT range AS id FROM range(3)');
    const text = await ebb(dir, ['deploy']);
    expect(text.code).toBe(0);
    expect(text.stdout.match(/tasks: /g)).toHaveLength(1);
    expect(text.stdout).toContain('tasks: skipped, DuckDB has none; `ebb scheduler` runs the schedules of a, b');
    const json = await ebb(dir, ['deploy', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ tasks: null });
  });
});

describe('syncs that run after others: task graphs (emulated)', () => {
  let emulator: SnowflakeEmulator;
  let dir: string;
  const deploy = async (syncs: object[], args: string[] = ['--json']) => {
    await writeFile(
      join(dir, 'ebb.yml'),
      stringify({
        version: 1,
        name: 'acme',
        warehouse: { type: 'snowflake', account: 'emulated', username: 'ebb_user', password: 'secret', database: 'DB', warehouse: 'transforming', access_url: emulator.url },
        connections: { files: { plugin: 'file', config: { directory: './out' } } },
        syncs,
      }),
    );
    return ebb(dir, ['deploy', ...args]);
  };
  const graph = () => [
    sync('nightly', { every: '1h' }, { source: { table: 'analytics.nightly', key: 'customer_id' } }),
    sync('child', { after: ['nightly'] }),
    sync('grand', { after: ['child'] }),
    sync('both', { after: ['nightly', 'child'] }),
  ];
  const runOrder = async () => (await emulator.sql('SELECT sync_name, status FROM ebb.sync_runs ORDER BY started_at')).map((r) => `${String(r.SYNC_NAME)}:${String(r.STATUS)}`);

  beforeAll(async () => {
    emulator = await SnowflakeEmulator.start();
    await emulator.sql('CREATE SCHEMA analytics');
    await emulator.sql('CREATE TABLE analytics.customers (customer_id INTEGER, email VARCHAR, plan VARCHAR)');
    await emulator.sql(`INSERT INTO analytics.customers VALUES (1, 'ada@x.io', 'pro'), (2, 'bob@x.io', 'free')`);
    await emulator.sql('CREATE TABLE analytics.nightly (customer_id INTEGER, email VARCHAR, plan VARCHAR)');
    await emulator.sql(`INSERT INTO analytics.nightly VALUES (1, 'ada@x.io', 'pro')`);
    dir = await makeProject(stringify({ version: 1, name: 'acme', syncs: [] }));
  });
  afterAll(() => emulator?.stop());

  it('gives a sync that runs after others a task AFTER theirs, in their graph, resumed children first and the root last', async () => {
    const result = await deploy(graph());
    expect(result.code, result.stderr).toBe(0);
    const steps = (JSON.parse(result.stdout) as { tasks: { steps: Array<{ name: string; kind: string }> } }).tasks.steps.map((s) => `${s.name}:${s.kind}`);
    expect(steps).toEqual(['EBB_NIGHTLY:create', 'EBB_CHILD:create', 'EBB_GRAND:create', 'EBB_BOTH:create', 'EBB_BOTH:resume', 'EBB_GRAND:resume', 'EBB_CHILD:resume', 'EBB_NIGHTLY:resume']);
    const tasks = byName(emulator.tasks());
    expect(tasks.EBB_NIGHTLY).toMatchObject({ schedule: '60 MINUTES', predecessors: [], state: 'started' });
    expect(tasks.EBB_CHILD).toMatchObject({ schedule: null, predecessors: ['DB.EBB.EBB_NIGHTLY'], state: 'started', comment: 'ebb:acme:child' });
    expect(tasks.EBB_GRAND).toMatchObject({ schedule: null, predecessors: ['DB.EBB.EBB_CHILD'], state: 'started' });
    expect(tasks.EBB_BOTH.predecessors.sort()).toEqual(['DB.EBB.EBB_CHILD', 'DB.EBB.EBB_NIGHTLY']);
    const dry = await deploy(graph(), ['--dry-run']);
    expect(dry.stdout).toMatch(/= EBB_CHILD\s+unchanged: after nightly → AFTER EBB_NIGHTLY/);
  });

  it('the graph queues its runs in order, and the worker runs each sync after the syncs it runs after', async () => {
    expect(await emulator.fireTasks()).toEqual(expect.arrayContaining(['EBB_NIGHTLY', 'EBB_CHILD', 'EBB_GRAND', 'EBB_BOTH']));
    const worker = await ebb(dir, ['worker', '--once', '--poll-seconds', '0.1']);
    expect(worker.code, worker.stderr).toBe(0);
    const order = await runOrder();
    expect(order[0]).toBe('nightly:HEALTHY');
    expect(order.indexOf('child:HEALTHY')).toBeLessThan(order.indexOf('grand:HEALTHY'));
    expect(order.indexOf('child:HEALTHY')).toBeLessThan(order.indexOf('both:HEALTHY'));
    expect(order).toHaveLength(4);
  });

  it('a failed parent holds back the syncs after it: their requests are finished without a run, with the reason', async () => {
    // A duplicate key: the only record to send is a source failure, so nightly's run fails.
    await emulator.sql(`INSERT INTO analytics.nightly VALUES (3, 'cy@x.io', 'pro'), (3, 'cy2@x.io', 'pro')`);
    await emulator.fireTasks();
    const worker = await ebb(dir, ['worker', '--once', '--poll-seconds', '0.1']);
    // Exit 1: nightly's run failed.
    expect(worker.code, worker.stderr).toBe(1);
    expect((await runOrder()).slice(4)).toEqual(['nightly:FAILED']);
    expect(worker.stderr).toMatch(/not run, sync child runs after nightly, which did not complete HEALTHY since its last run/);
    expect(worker.stderr).toMatch(/not run, sync grand runs after child/);
    const open = await emulator.sql('SELECT count(*) AS n FROM ebb.run_requests WHERE finished_at IS NULL');
    expect(open).toEqual([{ N: '0' }]);
  });

  it('changes a graph with its root suspended first, and refuses graphs that Snowflake cannot make (exit 3)', async () => {
    emulator.resetCounts();
    const changed = graph();
    changed[2] = sync('grand', { after: ['nightly'] });
    const result = await deploy(changed, []);
    expect(result.code, result.stderr).toBe(0);
    const ddl = emulator.statements.map((s) => s.sql).filter((s) => /^(CREATE|ALTER)\b[^\n]*\bTASK\b/.test(s)).map((s) => s.split('\n')[0]);
    expect(ddl[0]).toBe('ALTER TASK IF EXISTS "EBB"."EBB_NIGHTLY" SUSPEND');
    expect(ddl[1]).toBe('CREATE OR REPLACE TASK "EBB"."EBB_GRAND"');
    expect(ddl[ddl.length - 1]).toBe('ALTER TASK IF EXISTS "EBB"."EBB_NIGHTLY" RESUME');
    expect(byName(emulator.tasks()).EBB_GRAND).toMatchObject({ predecessors: ['DB.EBB.EBB_NIGHTLY'], state: 'started' });
    expect(byName(emulator.tasks()).EBB_NIGHTLY.state).toBe('started');

    const bad = await deploy([sync('by_hand', 'manual'), sync('a', { every: '1h' }), sync('b', { every: '2h' }), sync('after_manual', { after: ['by_hand'] }), sync('two_roots', { after: ['a', 'b'] })], []);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toContain('syncs[3].schedule: after: by_hand has no Snowflake task');
    expect(bad.stderr).toContain('syncs[4].schedule: after: the syncs it runs after belong to different task graphs (roots EBB_A, EBB_B)');
  });
});
