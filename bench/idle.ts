/**
 * The idle cost on Snowflake: for one idle hour, how many statements need a running virtual
 * warehouse (and so keep it from suspending), for an `ebb worker` with an empty queue and for an
 * `ebb scheduler` with one live sync whose source does not change, in a project with a
 * `no_success` alert rule. Through the wire emulator, at `scale` times the speed: every interval
 * (poll, idle wait, tick, alert check) is divided by `scale`, so the hour takes 3600 / scale
 * seconds. Statements that need no warehouse (the change tokens of
 * SYSTEM$LAST_CHANGE_COMMIT_TIME, SHOW, ALTER SESSION) are counted apart.
 *
 *   node bin/run-ts.js bench/idle.ts [scale]      (default 120: 30 s per hour)
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { stringify } from 'yaml';
import { needsWarehouse, SnowflakeEmulator, type LoggedStatement } from '../test/snowflake/emulator.ts';
import { loadProject, type Project } from '../engine/config/load.ts';
import { Worker } from '../engine/schedule/worker.ts';
import { Scheduler } from '../engine/schedule/scheduler.ts';
import { STALE_CHECK_MS } from '../engine/alerts/alerts.ts';
import { figureTable, type Figure } from './figures.ts';

/** What one idle hour cost. */
export interface IdleHour {
  /** Statements that need a running warehouse. */
  warehouse: number;
  /** Statements that need none (change tokens, SHOW, ALTER SESSION). */
  free: number;
}

export interface IdleBench {
  scale: number;
  worker: IdleHour;
  scheduler: IdleHour;
}

const HOUR_MS = 3_600_000;
/** Left out of the hour: start-up (connect, deploy, the live sync's first run) and the idle waits growing to their longest. */
const WARM_UP_MS = 10 * 60_000;

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

/** What statements cost: those that need a running warehouse, and those that need none. */
export function idleCost(statements: readonly LoggedStatement[]): IdleHour {
  const warehouse = statements.filter(needsWarehouse).length;
  return { warehouse, free: statements.length - warehouse };
}

/** An emulator with the source of the idle project: analytics.customers, two rows. */
export async function idleEmulator(): Promise<SnowflakeEmulator> {
  const emulator = await SnowflakeEmulator.start();
  try {
    await emulator.sql('CREATE SCHEMA analytics');
    await emulator.sql('CREATE TABLE analytics.customers (customer_id INTEGER, email VARCHAR)');
    await emulator.sql(`INSERT INTO analytics.customers VALUES (1, 'ada@x.io'), (2, 'bob@x.io')`);
    return emulator;
  } catch (e) {
    await emulator.stop();
    throw e;
  }
}

/** A project on the emulator with one live sync of analytics.customers to a file, and the alerts given. */
export async function idleProject(emulator: SnowflakeEmulator, alerts?: object): Promise<Project> {
  const dir = await mkdtemp(join(tmpdir(), 'ebb-bench-idle-'));
  await writeFile(
    join(dir, 'ebb.yml'),
    stringify({
      version: 1,
      name: 'idle',
      warehouse: { type: 'snowflake', account: 'emulated', username: 'bench', password: 'bench', database: 'DB', access_url: emulator.url },
      connections: { files: { plugin: 'file', config: { directory: './out' } } },
      ...(alerts && { alerts }),
      syncs: [{ name: 'customers', source: { table: 'analytics.customers', key: 'customer_id' }, destination: { connection: 'files', object: 'customers.jsonl' }, strategy: 'upsert', mapping: { email: 'email' }, schedule: 'live' }],
    }),
  );
  return loadProject(dir);
}

/** Runs `start` (a worker or a scheduler), lets it warm up, and counts the statements of one idle hour. */
async function idleHour(emulator: SnowflakeEmulator, scale: number, poller: { start(): Promise<unknown>; stop(): Promise<void> }): Promise<IdleHour> {
  const done = poller.start();
  // Start-up (connect, deploy, a first run) takes what it takes: the polls of tokens begin after it.
  while (!emulator.statements.some((st) => /^SELECT SYSTEM\$LAST_CHANGE_COMMIT_TIME/.test(st.sql))) await sleep(50);
  await sleep(WARM_UP_MS / scale);
  emulator.resetCounts();
  // Exactly one hour: a timer fires late, and at 120× speed 10 ms late is more than a second.
  const end = performance.now() + HOUR_MS / scale;
  await sleep(HOUR_MS / scale);
  const statements = emulator.statements.filter((st) => st.at < end);
  await poller.stop();
  await done;
  return idleCost(statements);
}

/** One idle hour of an `ebb worker` or of an `ebb scheduler` with one live sync, against a fresh emulator. */
export async function idleHourOf(kind: 'worker' | 'scheduler', scale: number, log: (line: string) => void = () => {}): Promise<IdleHour> {
  process.env.SF_OCSP_RESPONSE_CACHE_DIR ??= await mkdtemp(join(tmpdir(), 'ebb-sf-ocsp-'));
  const quiet = () => {};
  const emulator = await idleEmulator();
  try {
    // With a no_success rule, as a project that watches its schedules has: its checks count too.
    const p = await idleProject(emulator, { rules: { no_success: { for: '1d' } } });
    log(`idle hour of a ${kind} (${HOUR_MS / scale / 1000} s at ${scale}× speed)…`);
    return await idleHour(
      emulator,
      scale,
      kind === 'worker'
        ? new Worker(p, { pollMs: 2000 / scale, maxIdleLookMs: 60_000 / scale, staleCheckMs: STALE_CHECK_MS / scale, log: quiet })
        : new Scheduler(p, { tickMs: 1000 / scale, refreshMs: 10_000 / scale, livePollMs: 2000 / scale, maxIdleLookMs: 300_000 / scale, log: quiet }),
    );
  } finally {
    await emulator.stop();
  }
}

/** One idle hour of a worker, then of a scheduler with one live sync, each against a fresh emulator. */
export async function benchIdle(scale = 120, log: (line: string) => void = () => {}): Promise<IdleBench> {
  return { scale, worker: await idleHourOf('worker', scale, log), scheduler: await idleHourOf('scheduler', scale, log) };
}

/** The bench's figures: per idle hour, the statements that need a warehouse (goal: one a minute at most), and those that need none. */
export function idleFigures(bench: IdleBench): Figure[] {
  const figure = (who: string, h: IdleHour): Figure => ({
    goal: 'idle',
    figure: `Snowflake, one idle hour of ${who}, a no_success rule: statements that need a warehouse (that need none: ${h.free})`,
    value: h.warehouse,
    unit: 'requests',
    target: { op: '<=', value: 60 },
  });
  return [figure('ebb worker, empty queue', bench.worker), figure('ebb scheduler, one live sync', bench.scheduler)];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const scale = Number(process.argv[2] ?? 120);
  const bench = await benchIdle(scale, (l) => process.stderr.write(`${l}\n`));
  process.stdout.write(`${figureTable(idleFigures(bench)).join('\n')}\n`);
}
