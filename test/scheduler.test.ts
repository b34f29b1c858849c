/**
 * `ebb scheduler`, end to end as a real child process with short intervals: `every`, `cron` and
 * `once` syncs run on time with trigger `schedule`, paused and manual syncs are left alone and
 * the decision is logged, runs of one sync never overlap (even with two schedulers on one
 * warehouse), a live sync runs within seconds of a change to its source, and SIGTERM lets the
 * current run finish. Also the busy warehouse: other commands wait for the file, or say which
 * process holds it. The due computation itself is tested with a fake clock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { duck, ebb, makeProject, repoRoot } from './support/project.ts';
import { decide, formatDuration, parseInterval, type DueInput } from '../engine/schedule/due.ts';
import { HttpReceivers } from './support/notification-receivers.ts';
import { until } from './support/wait.ts';

const bin = join(repoRoot, 'bin', 'ebb.js');
/** Short intervals, so that the end-to-end tests take seconds. */
const FAST = ['--tick-seconds', '0.2', '--refresh-seconds', '1', '--live-poll-seconds', '0.5'];

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Runs SQL on the warehouse, waiting while a scheduler holds the file for a moment. */
async function query(db: string, sql: string): Promise<Record<string, unknown>[]> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await duck(db, sql);
    } catch (e) {
      if (!/lock/i.test((e as Error).message) || attempt > 400) throw e;
      await sleep(25);
    }
  }
}

/** A running `ebb scheduler`: its log lines and its exit. */
interface Running {
  child: ChildProcess;
  log(): string;
  /** Waits for a log line that matches; returns the line. */
  waitFor(pattern: RegExp, ms?: number): Promise<string>;
  /** How many runs it has logged the end of (`SYNC: HEALTH in … (run ID): planned …`). */
  runsEnded(): number;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

function startScheduler(dir: string, args: string[] = FAST, env: Record<string, string> = {}): Running {
  const child = spawn(process.execPath, [bin, 'scheduler', '--project-dir', dir, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout!.on('data', (c: Buffer) => (text += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (text += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const running: Running = {
    child,
    exited,
    log: () => text,
    runsEnded: () => text.match(/ \(run [^)]+\): planned /g)?.length ?? 0,
    waitFor: (pattern, ms = 20_000) =>
      until(() => `a log line matching ${pattern}; the log so far:\n${text}`, () => text.split('\n').find((line) => pattern.test(line)), { timeoutMs: ms }),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return running;
}

/**
 * Looks at the warehouse with `check` at first and then each time one of the schedulers logs the
 * end of a run, until it holds: the file is opened when something may have changed rather than on
 * a timer, as each look holds the file a scheduler needs too.
 */
async function untilRunEnds<T>(what: string, schedulers: Running[], check: () => Promise<T>, timeoutMs = 20_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  const ended = () => schedulers.reduce((n, s) => n + s.runsEnded(), 0);
  for (;;) {
    const seen = ended();
    const value = await check();
    if (value) return value;
    await until(() => `${what}; the log so far:\n${schedulers.map((s) => s.log()).join('\n')}`, () => ended() > seen, { timeoutMs: Math.max(0, deadline - Date.now()) });
  }
}

interface RunRow {
  run_id: string;
  sync_name: string;
  trigger: string;
  status: string;
  started_at: Date;
  finished_at: Date | null;
  succeeded: number;
}

async function runsOf(db: string, sync: string): Promise<RunRow[]> {
  const [{ n }] = await query(db, `SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'ebb' AND table_name = 'sync_runs'`);
  if (n === 0) return [];
  return (await query(db, `SELECT run_id, sync_name, "trigger", status, started_at, finished_at, succeeded FROM ebb.sync_runs WHERE sync_name = '${sync}' ORDER BY started_at`)) as unknown as RunRow[];
}

/** A sync of the `people` table to a JSONL file of the `out` connection. */
function fileSync(name: string, schedule: unknown, extra: Record<string, unknown> = {}) {
  return {
    name,
    source: { table: 'people', key: 'id' },
    destination: { connection: 'out', object: `${name}.jsonl` },
    strategy: 'upsert',
    mapping: { id: 'id', name: 'name' },
    schedule,
    ...extra,
  };
}

/** A project whose syncs write files, with a `people` table of `rows` rows. */
async function fileProject(syncs: object[], rows = 3): Promise<{ dir: string; db: string }> {
  const dir = await makeProject({
    version: 1,
    name: 'scheduled',
    warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
    connections: { out: { plugin: 'file', config: { directory: './out' } } },
    syncs,
  });
  const db = join(dir, 'warehouse.duckdb');
  await duck(db, `CREATE TABLE people AS SELECT range AS id, 'person ' || range AS name FROM range(${rows})`);
  return { dir, db };
}

/** An HTTP app that answers every POST after `delayMs`, and remembers when each request was in flight. */
async function slowApp(delayMs: number): Promise<{ url: string; requests: Array<{ start: number; end: number }>; server: Server }> {
  const requests: Array<{ start: number; end: number }> = [];
  let next = 1;
  const server = createServer((req, res) => {
    const start = Date.now();
    req.resume();
    req.on('end', () => {
      setTimeout(() => {
        requests.push({ start, end: Date.now() });
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ id: String(next++) }));
      }, delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, server };
}

/** A project with one sync `slow` that empties the set and recreates every record on every run (strategy replace) in a slow app. */
async function slowProject(url: string, schedule: unknown, rows: number): Promise<{ dir: string; db: string }> {
  const dir = await makeProject({
    version: 1,
    name: 'slow',
    warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
    connections: { app: { plugin: 'http', config: { base_url: url }, concurrency: 1, retry: { delays_seconds: [] } } },
    syncs: [
      {
        name: 'slow',
        source: { table: 'people', key: 'id' },
        destination: {
          connection: 'app',
          object: 'events',
          requests: { recreate: { method: 'POST', path: '/events', body: '{{ record | tojson }}', app_id: '{{ response.id }}' }, delete_all: { method: 'DELETE', path: '/events' } },
        },
        strategy: 'replace',
        mapping: { id: 'id', name: 'name' },
        batch_size: 1,
        schedule,
      },
    ],
  });
  const db = join(dir, 'warehouse.duckdb');
  await duck(db, `CREATE TABLE people AS SELECT range AS id, 'person ' || range AS name FROM range(${rows})`);
  return { dir, db };
}

describe('when a sync is due (a fake clock)', () => {
  const T = Date.parse('2026-03-01T10:00:05Z');
  const base: DueInput = { schedule: { every: '15m' }, status: 'ACTIVE', lastRunAt: T, health: 'HEALTHY', startedAt: T - 3_600_000, now: T };

  it('runs an interval sync once the interval since its last run has passed, and says why', () => {
    expect(decide({ ...base, now: T + 14 * 60_000 })).toEqual({ action: 'wait', reason: 'every 15m', next: T + 15 * 60_000 });
    expect(decide({ ...base, now: T + 15 * 60_000 + 2000 })).toEqual({ action: 'run', reason: 'every 15m, last run 15m02s ago', since: T + 15 * 60_000 });
    // Never ran: the interval counts from the start of the scheduler.
    expect(decide({ ...base, lastRunAt: null, startedAt: T, now: T + 60_000 })).toMatchObject({ action: 'wait', next: T + 15 * 60_000 });
    expect(decide({ ...base, lastRunAt: null, startedAt: T, now: T + 15 * 60_000 })).toMatchObject({ action: 'run', reason: 'every 15m, never ran, scheduler started 15m00s ago' });
  });

  it('runs a cron sync at the first time the cron fires after its last run, in UTC, once however late', () => {
    const hourly = { ...base, schedule: { cron: '0 * * * *' } };
    expect(decide({ ...hourly, now: Date.parse('2026-03-01T10:59:59Z') })).toEqual({ action: 'wait', reason: 'cron "0 * * * *"', next: Date.parse('2026-03-01T11:00:00Z') });
    expect(decide({ ...hourly, now: Date.parse('2026-03-01T11:00:00Z') })).toMatchObject({ action: 'run', since: Date.parse('2026-03-01T11:00:00Z') });
    // Three days down: one run, not seventy-two.
    const late = decide({ ...hourly, now: T + 3 * 86_400_000 });
    expect(late).toMatchObject({ action: 'run', reason: 'cron "0 * * * *", last run 3d00h ago' });
    // Six fields: seconds first.
    const everyTen = { ...base, schedule: { cron: '*/10 * * * * *' }, lastRunAt: Date.parse('2026-03-01T10:00:01Z') };
    expect(decide({ ...everyTen, now: Date.parse('2026-03-01T10:00:09Z') })).toMatchObject({ action: 'wait', next: Date.parse('2026-03-01T10:00:10Z') });
    expect(decide({ ...everyTen, now: Date.parse('2026-03-01T10:00:10Z') })).toMatchObject({ action: 'run' });
    expect(decide({ ...base, schedule: { cron: 'every tuesday' } })).toMatchObject({ action: 'skip', reason: expect.stringContaining('invalid cron "every tuesday"') });
  });

  it('leaves paused, completed, failed and manual syncs alone; runs a once sync that never ran', () => {
    expect(decide({ ...base, status: 'PAUSED', now: T + 86_400_000 })).toMatchObject({ action: 'skip', reason: expect.stringMatching(/^PAUSED/) });
    expect(decide({ ...base, status: 'ERROR', now: T + 86_400_000 })).toMatchObject({ action: 'skip', reason: expect.stringMatching(/^ERROR/) });
    expect(decide({ ...base, schedule: 'once', status: 'COMPLETED' })).toMatchObject({ action: 'skip', reason: expect.stringMatching(/^COMPLETED/) });
    expect(decide({ ...base, schedule: 'manual' })).toMatchObject({ action: 'skip' });
    expect(decide({ ...base, schedule: 'once', lastRunAt: null })).toMatchObject({ action: 'run', reason: 'once, never ran' });
    expect(decide({ ...base, schedule: 'once', health: 'FAILED' })).toMatchObject({ action: 'skip', reason: expect.stringContaining('already ran (FAILED)') });
    expect(decide({ ...base, schedule: 'live' })).toMatchObject({ action: 'live' });
    expect(decide({ ...base, schedule: 'live', status: 'PAUSED' })).toMatchObject({ action: 'skip' });
  });

  it('reads intervals and prints durations', () => {
    expect([parseInterval('30s'), parseInterval('15m'), parseInterval('2h'), parseInterval('1d')]).toEqual([30_000, 900_000, 7_200_000, 86_400_000]);
    expect([formatDuration(850), formatDuration(4200), formatDuration(902_000), formatDuration(7_500_000)]).toEqual(['850ms', '4.2s', '15m02s', '2h05m']);
  });
});

describe('ebb scheduler', () => {
  it('runs every, cron and once syncs on time, leaves paused and manual syncs alone, and logs each decision', async () => {
    const { dir, db } = await fileProject([
      fileSync('every', { every: '1s' }),
      fileSync('cron', { cron: '* * * * * *' }),
      fileSync('once', 'once'),
      fileSync('paused', { every: '1s' }),
      fileSync('manual', 'manual'),
    ]);
    expect((await ebb(dir, ['deploy'])).code).toBe(0);
    expect((await ebb(dir, ['pause', 'paused'])).code).toBe(0);

    const scheduler = startScheduler(dir);
    await scheduler.waitFor(/paused: skipped, PAUSED/);
    await scheduler.waitFor(/manual: skipped, manual schedule/);
    await scheduler.waitFor(/once: due \(once, never ran\) → run/);
    await scheduler.waitFor(/once: skipped, COMPLETED/);
    await untilRunEnds('two runs each of every and cron', [scheduler], async () => (await runsOf(db, 'every')).length >= 2 && (await runsOf(db, 'cron')).length >= 2);
    await scheduler.waitFor(/every: due \(every 1s, last run [\d.]+s ago\) → run/);
    expect(await scheduler.stop()).toBe(0);

    const log = scheduler.log();
    expect(log).toMatch(/every: HEALTHY in .* 3 create; 3 succeeded, 0 failed/);
    for (const name of ['every', 'cron']) {
      const runs = await runsOf(db, name);
      expect(runs.length).toBeGreaterThanOrEqual(2);
      expect(runs.every((r) => r.trigger === 'schedule' && r.status === 'HEALTHY')).toBe(true);
    }
    expect((await runsOf(db, 'once')).map((r) => r.status)).toEqual(['HEALTHY']);
    expect(await query(db, `SELECT status FROM ebb.syncs WHERE sync_name = 'once'`)).toEqual([{ status: 'COMPLETED' }]);
    expect(await runsOf(db, 'paused')).toEqual([]);
    expect(await runsOf(db, 'manual')).toEqual([]);
    // A decision is logged when it changes, not on every tick.
    expect(log.match(/paused: skipped, PAUSED/g)).toHaveLength(1);
    expect((await readFile(join(dir, 'out', 'every.jsonl'), 'utf8')).trim().split('\n')).toHaveLength(3);
  });

  it('never overlaps two runs of one sync, even with two schedulers on one warehouse', async () => {
    const app = await slowApp(150);
    const { dir, db } = await slowProject(app.url, { every: '1s' }, 4);
    const first = startScheduler(dir);
    const second = startScheduler(dir);
    await untilRunEnds('four finished runs', [first, second], async () => (await runsOf(db, 'slow')).filter((r) => r.finished_at).length >= 4, 40_000);
    expect(await first.stop()).toBe(0);
    expect(await second.stop()).toBe(0);

    const runs = await runsOf(db, 'slow');
    expect(runs.every((r) => r.status === 'HEALTHY' && r.succeeded === 4 && r.trigger === 'schedule')).toBe(true);
    for (let i = 1; i < runs.length; i++) {
      expect(runs[i].started_at.getTime(), `run ${runs[i].run_id} started before ${runs[i - 1].run_id} finished`).toBeGreaterThanOrEqual(runs[i - 1].finished_at!.getTime());
    }
    // The app never saw two requests at once (concurrency 1, and no second run alongside).
    const sorted = [...app.requests].sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++) expect(sorted[i].start).toBeGreaterThanOrEqual(sorted[i - 1].end);
    // Both schedulers took part: each one waited for the file while the other ran.
    expect(first.log() + second.log()).toMatch(/slow: due \(every 1s/);
  });

  it('refuses a sync whose run lock another process holds, logs it, and runs the others meanwhile', async () => {
    const { dir, db } = await fileProject([fileSync('locked', { every: '1s' }), fileSync('free', { every: '1s' })]);
    expect((await ebb(dir, ['deploy'])).code).toBe(0);
    // A run of `locked` goes on elsewhere (another machine, on a shared warehouse).
    await query(db, `UPDATE ebb.syncs SET lock_run_id = 'elsewhere', lock_holder = 'otherhost:4242', lock_expires_at = now()::TIMESTAMP + INTERVAL 1 HOUR WHERE sync_name = 'locked'`);
    const scheduler = startScheduler(dir);
    await scheduler.waitFor(/locked: refused: sync locked is already running \(run elsewhere, held by otherhost:4242\).*trying again in 1\.0s/);
    await untilRunEnds('three runs of free', [scheduler], async () => (await runsOf(db, 'free')).length >= 3);
    expect(await scheduler.stop()).toBe(0);
    expect(await runsOf(db, 'locked')).toEqual([]);
  });

  it('runs a live sync within seconds of a change to its source, and the new rows reach the destination', async () => {
    const { dir, db } = await fileProject([fileSync('live', 'live')]);
    const scheduler = startScheduler(dir);
    await scheduler.waitFor(/live live: first look at its source .* → run/);
    await scheduler.waitFor(/live: HEALTHY .* 3 create/);
    await scheduler.waitFor(/live live: watching its source \(3 rows\)/);

    // The scheduler does not hold the file between looks, so another process can write the source.
    const before = new Set((await runsOf(db, 'live')).map((r) => r.run_id));
    await query(db, `INSERT INTO people VALUES (100, 'new person 100'), (101, 'new person 101')`);
    await scheduler.waitFor(/live live: fingerprint changed \(3 → 5 rows\) → run/, 15_000);
    await scheduler.waitFor(/live: HEALTHY .* 2 create/, 15_000);
    const afterChange = (await runsOf(db, 'live')).filter((r) => !before.has(r.run_id));
    expect(afterChange.map((r) => r.trigger)).toEqual(['live']);
    let file = await readFile(join(dir, 'out', 'live.jsonl'), 'utf8');
    expect(file).toContain('new person 101');

    // A change that keeps the row count is seen too: the fingerprint hashes the rows.
    await query(db, `UPDATE people SET name = 'renamed' WHERE id = 1`);
    await scheduler.waitFor(/live live: fingerprint changed \(5 → 5 rows\) → run/, 15_000);
    await scheduler.waitFor(/live: HEALTHY .* 1 update/, 15_000);
    expect(await scheduler.stop()).toBe(0);
    file = await readFile(join(dir, 'out', 'live.jsonl'), 'utf8');
    expect(file).toContain('"renamed"');
    expect((await runsOf(db, 'live')).every((r) => r.trigger === 'live' && r.status === 'HEALTHY')).toBe(true);
  });

  it('stops on SIGTERM after the current run, exits 0 and leaves no RUNNING run', async () => {
    const app = await slowApp(200);
    const { dir, db } = await slowProject(app.url, 'once', 8);
    const scheduler = startScheduler(dir);
    await until('the run to be under way', () => app.requests.length >= 1, { timeoutMs: 20_000 });
    expect(await scheduler.stop('SIGTERM')).toBe(0);
    expect(scheduler.log()).toMatch(/SIGTERM .*stopping, no new runs; waiting for the run of slow to finish/);
    expect(scheduler.log()).toMatch(/scheduler stopped/);
    const runs = await runsOf(db, 'slow');
    expect(runs.map((r) => [r.status, r.succeeded])).toEqual([['HEALTHY', 8]]);
    // delete_all, then the 8 records.
    expect(app.requests).toHaveLength(9);
  });

  it('lets other commands use the warehouse while it waits', async () => {
    const { dir, db } = await fileProject([fileSync('hourly', { cron: '0 * * * *' }), fileSync('manual', 'manual')]);
    const scheduler = startScheduler(dir);
    await scheduler.waitFor(/hourly: next run at/);
    const status = await ebb(dir, ['status', '--json'], { EBB_BUSY_WAIT_SECONDS: '10' });
    expect(status.code, status.stderr).toBe(0);
    const run = await ebb(dir, ['run', 'manual'], { EBB_BUSY_WAIT_SECONDS: '10' });
    expect(run.code, run.stderr).toBe(0);
    expect(await scheduler.stop()).toBe(0);
    expect((await runsOf(db, 'manual')).map((r) => r.trigger)).toEqual(['manual']);
  });
});

/**
 * Holds the DuckDB file from another process for `ms` (taking it as soon as it is free); resolves
 * with its PID once it holds it.
 * `releasedAt` is when it let go, by its own clock (the machine's).
 */
async function holdFile(db: string, ms: number): Promise<{ pid: number; releasedAt: Promise<number> }> {
  const script = `import { DuckDBInstance } from '@duckdb/node-api';
let instance;
for (;;) {
  try { instance = await DuckDBInstance.create(${JSON.stringify(db)}); break; }
  catch (e) { if (!/lock/i.test(e.message)) throw e; await new Promise((r) => setTimeout(r, 20)); }
}
process.stdout.write('held\\n');
setTimeout(() => { instance.closeSync(); process.stdout.write('released ' + Date.now() + '\\n', () => process.exit(0)); }, ${ms});`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  const done = new Promise<void>((resolve) => child.on('close', () => resolve()));
  cleanups.push(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await done;
  });
  await until('the holder to hold the file', () => out.includes('held') || child.exitCode !== null, { timeoutMs: 20_000 });
  if (!out.includes('held')) throw new Error('the holder exited before it held the file');
  const releasedAt = done.then(() => Number(/released (\d+)/.exec(out)?.[1] ?? NaN));
  return { pid: child.pid!, releasedAt };
}

describe('a busy warehouse', () => {
  it('makes the scheduler wait, log who holds the file, and go on once it is free', async () => {
    const { dir, db } = await fileProject([fileSync('every', { every: '1s' })]);
    const scheduler = startScheduler(dir, FAST, { EBB_BUSY_WAIT_SECONDS: '0.5' });
    await scheduler.waitFor(/every: next run at/);
    const holder = await holdFile(db, 3000);
    await scheduler.waitFor(new RegExp(`warn: the warehouse warehouse\\.duckdb is busy: another process \\(PID ${holder.pid}\\b.*\\) holds it`));
    const releasedAt = await holder.releasedAt;
    await untilRunEnds('a run after the file was free', [scheduler], async () => (await runsOf(db, 'every')).some((r) => r.started_at.getTime() > releasedAt - 100));
    expect(await scheduler.stop()).toBe(0);
    expect(scheduler.log()).not.toMatch(/internal error|\n\s+at /);
  });

  it('makes a command wait for the file, then go on', async () => {
    const { dir, db } = await fileProject([fileSync('s', 'manual')]);
    expect((await ebb(dir, ['deploy'])).code).toBe(0);
    const holder = await holdFile(db, 4000);
    const status = await ebb(dir, ['status'], { EBB_BUSY_WAIT_SECONDS: '30' });
    const finishedAt = Date.now();
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^s\s+ACTIVE/m);
    // It could only open the file once the holder let go: it waited (quietly, as stderr is no terminal).
    expect(await holder.releasedAt).toBeLessThanOrEqual(finishedAt);
    expect(status.stderr).toBe('');
  });

  it('says clearly which process holds the file when the wait is over', async () => {
    const { dir, db } = await fileProject([fileSync('s', 'manual')]);
    const holder = await holdFile(db, 60_000);
    for (const command of [['status'], ['history', 's'], ['run', 's']]) {
      const result = await ebb(dir, command, { EBB_BUSY_WAIT_SECONDS: '0.5' });
      expect(result.code, `ebb ${command.join(' ')}`).toBe(1);
      expect(result.stderr).toMatch(/^error: the warehouse warehouse\.duckdb is busy: another process \(PID \d+/m);
      expect(result.stderr).toContain(`PID ${holder.pid}`);
      expect(result.stderr).toContain('still did after 0.5s');
      expect(result.stderr).not.toMatch(/internal error|\n\s+at /);
    }
  });
});

describe('dependent syncs (schedule: { after })', () => {
  const T = Date.parse('2026-03-01T10:00:00Z');
  const after: DueInput = { schedule: { after: ['a', 'b'] }, status: 'ACTIVE', lastRunAt: T, health: 'HEALTHY', startedAt: T - 3_600_000, now: T + 60_000 };

  it('is due once every sync it runs after has finished HEALTHY since its own last run', () => {
    expect(decide({ ...after, parents: new Map([['a', T + 1000], ['b', T - 1000]]) })).toEqual({ action: 'wait', reason: 'after a, b: b not HEALTHY since its last run', next: null });
    expect(decide({ ...after, parents: new Map([['a', T + 1000], ['b', T + 2000]]) })).toEqual({ action: 'run', reason: 'after a, b: all HEALTHY since its last run', since: T + 2000 });
    // Never ran: any HEALTHY run of each will do; a parent that never succeeded holds it back.
    expect(decide({ ...after, lastRunAt: null, parents: new Map([['a', T - 5000], ['b', null]]) })).toMatchObject({ action: 'wait', reason: 'after a, b: b not HEALTHY yet' });
    expect(decide({ ...after, lastRunAt: null, parents: new Map([['a', T - 5000], ['b', T - 4000]]) })).toMatchObject({ action: 'run' });
    expect(decide({ ...after, status: 'PAUSED', parents: new Map([['a', T + 1000], ['b', T + 2000]]) })).toMatchObject({ action: 'skip' });
  });

  it('a cycle, an unknown sync or a sync after itself is a config error (exit 3)', async () => {
    const { dir } = await fileProject([fileSync('a', { after: ['c'] }), fileSync('b', { after: ['a'] }), fileSync('c', { after: ['b'] })]);
    const cycle = await ebb(dir, ['validate']);
    expect(cycle.code).toBe(3);
    expect(cycle.stderr).toContain('syncs[0].schedule.after: the syncs run after each other in a cycle (a → c → b → a)');
    const { dir: other } = await fileProject([fileSync('a', { after: ['a'] }), fileSync('b', { after: ['nope'] })]);
    const bad = await ebb(other, ['run', '--all']);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toContain('syncs[0].schedule.after: a sync cannot run after itself');
    expect(bad.stderr).toContain('syncs[1].schedule.after: unknown sync "nope"');
  });

  it('`ebb run --all` runs syncs after the ones they depend on, and skips a sync whose parent did not end HEALTHY', async () => {
    const { dir, db } = await fileProject([fileSync('grandchild', { after: ['child'] }), fileSync('child', { after: ['parent'] }), fileSync('parent', 'manual'), fileSync('alone', 'manual')]);
    const ok = await ebb(dir, ['run', '--all', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const order = (JSON.parse(ok.stdout) as { runs: Array<{ sync: string }> }).runs.map((r) => r.sync);
    expect(order.filter((n) => n !== 'alone')).toEqual(['parent', 'child', 'grandchild']);
    expect(order).toContain('alone');
    // The parent's source breaks (a duplicate key): its run fails, and the syncs after it do not run.
    await duck(db, `CREATE OR REPLACE TABLE people AS SELECT range AS id, 'person ' || range AS name FROM range(3) UNION ALL SELECT 1, 'twin'`);
    const broken = await ebb(dir, ['run', '--all', '--json']);
    const out = JSON.parse(broken.stdout) as { runs: Array<{ sync: string; health: string }>; skipped: Array<{ sync: string; reason_code: string; reason: string }> };
    expect(out.skipped.map((s) => [s.sync, s.reason_code])).toEqual([
      ['child', 'dependency_unhealthy'],
      ['grandchild', 'dependency_unhealthy'],
    ]);
    expect(out.skipped[0].reason).toContain('runs after parent (FAILED), which did not end HEALTHY in this command');
    expect(out.runs.map((r) => [r.sync, r.health]).sort()).toEqual([['alone', 'FAILED'], ['parent', 'FAILED']]);
    expect(broken.code).toBe(1);
  });

  it('the scheduler runs a sync after the syncs it depends on, each time they all completed HEALTHY', async () => {
    const { dir, db } = await fileProject([fileSync('parent', { every: '1s' }), fileSync('child', { after: ['parent'] }), fileSync('waits', { after: ['parent', 'manual'] }), fileSync('manual', 'manual')]);
    const scheduler = startScheduler(dir);
    await scheduler.waitFor(/waits: waiting \(after parent, manual: manual not HEALTHY yet\)/);
    await untilRunEnds('two runs of child', [scheduler], async () => (await runsOf(db, 'child')).length >= 2);
    expect(await runsOf(db, 'waits')).toEqual([]);
    // The manual parent runs by hand: the sync that also waited for it runs next.
    expect((await ebb(dir, ['run', 'manual'])).code).toBe(0);
    await untilRunEnds('a run of waits', [scheduler], async () => (await runsOf(db, 'waits')).length >= 1);
    expect(await scheduler.stop()).toBe(0);
    const parents = await runsOf(db, 'parent');
    // Each run of child started after a HEALTHY run of parent that finished after child's previous run.
    const children = await runsOf(db, 'child');
    children.forEach((run, i) => {
      const since = i === 0 ? 0 : children[i - 1].started_at.getTime();
      expect(parents.some((p) => p.status === 'HEALTHY' && p.finished_at!.getTime() > since && p.finished_at!.getTime() <= run.started_at.getTime())).toBe(true);
    });
    expect(children.every((r) => r.trigger === 'schedule')).toBe(true);
  });
});

describe('periodic full resyncs (full_resync_every)', () => {
  it('the scheduler sends every record again once the interval has passed, with reason FULL_RESYNC', async () => {
    const { dir, db } = await fileProject([fileSync('periodic', { every: '1s' }, { full_resync_every: '3s' })]);
    const scheduler = startScheduler(dir);
    const full = async () =>
      (await runsOf(db, 'periodic')).length === 0 ? [] : query(db, `SELECT DISTINCT run_id FROM ebb.sync_record_history WHERE sync_name = 'periodic' AND apply_reason = 'FULL_RESYNC' ORDER BY run_id`);
    await untilRunEnds('two full resyncs', [scheduler], async () => (await full()).length >= 2, 30_000);
    expect(await scheduler.stop()).toBe(0);
    const runs = await runsOf(db, 'periodic');
    const resyncs = (await full()).map((r) => String(r.run_id));
    // The first run sends everything as NEW; runs in between send nothing; every record goes again at each resync.
    expect(resyncs).not.toContain(runs[0].run_id);
    expect(runs.length).toBeGreaterThan(resyncs.length + 1);
    for (const runId of resyncs) {
      expect(await query(db, `SELECT count(*) AS n FROM ebb.sync_record_history WHERE run_id = '${runId}' AND apply_reason = 'FULL_RESYNC' AND apply_state = 'SUCCESS'`)).toEqual([{ n: 3 }]);
    }
    const quiet = runs.filter((r) => !resyncs.includes(r.run_id)).slice(1);
    expect(quiet.every((r) => r.succeeded === 0)).toBe(true);
  }, 60_000);
});

describe('alerts between runs', () => {
  it('the scheduler fires `no_success` for a sync that has not succeeded for too long, once, and its next success resolves it', async () => {
    const secret = 'whsec-scheduler-0123456789';
    const receivers = await HttpReceivers.start(secret);
    cleanups.push(() => receivers.stop());
    const dir = await makeProject({
      version: 1,
      name: 'quiet',
      warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
      connections: { out: { plugin: 'file', config: { directory: './out' } } },
      alerts: { channels: { hook: { type: 'webhook', url: `${receivers.url}/hook`, secret: "{{ env_var('HOOK_SECRET') }}", events: ['sync.alert.firing', 'sync.alert.resolved'] } }, rules: { no_success: { for: '6s' } } },
      syncs: [fileSync('quiet', 'manual')],
    });
    const db = join(dir, 'warehouse.duckdb');
    await duck(db, `CREATE TABLE people AS SELECT range AS id, 'person ' || range AS name FROM range(3)`);
    const env = { HOOK_SECRET: secret };
    const scheduler = startScheduler(dir, FAST, env);
    const events = () => receivers.webhooks().map((h) => `${String(h.json.event)} ${String((h.json.alert as { rule: string }).rule)}`);
    await until('the no_success alert', () => events().length > 0, { timeoutMs: 20_000 });
    expect(events()).toEqual(['sync.alert.firing no_success']);
    expect(receivers.webhooks()[0].verified).toBe(true);
    expect(String((receivers.webhooks()[0].json.alert as { message: string }).message)).toContain('no successful run since the sync was deployed');
    // Still quiet for a few more looks: no second notification.
    await sleep(2500);
    expect(events()).toEqual(['sync.alert.firing no_success']);
    expect((await ebb(dir, ['run', 'quiet'], env)).code).toBe(0);
    await until('the resolution', () => events().length > 1, { timeoutMs: 20_000 });
    // A few more looks, well within `for` of the success: no second resolution (and, after 6 s
    // without another success, the alert would rightly fire again).
    await sleep(2000);
    expect(await scheduler.stop()).toBe(0);
    expect(events()).toEqual(['sync.alert.firing no_success', 'sync.alert.resolved no_success']);
  }, 60_000);
});
