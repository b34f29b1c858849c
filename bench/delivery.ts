/**
 * Delivery: how fast ebb sends records to an HTTP app, and how well it keeps a rate limit.
 *
 * 1. Throughput. 100,000 new records of a generated DuckDB project go to the fault server's batch
 *    endpoint (no faults; batches of 100, 8 requests in flight) through ebb's real path: loadProject,
 *    openEngine, deploySyncs, runSync, the http plugin in batch mode. Against it, a bare client
 *    sends the same records in the same batches (the same bodies) with the same concurrency:
 *    p-map + fetch, JSON.stringify the body, parse the answer. The apply stage of ebb (from the end
 *    of the plan to the last batch's outcome, read from runSync's progress events) is compared
 *    with the bare client's time; plan and record are reported apart. The two take turns, twice
 *    (ebb's second run is a full resync), and the best pass of each is compared: on a shared
 *    machine the best pass is the one least disturbed by other work. Each side first warms up
 *    on a tenth of the records (ebb with a sync of its own, the bare client with other emails).
 * 2. Rate limit. With `rate_limit: {requests: N, per_seconds: 1}` on the connection, ebb sends
 *    N × 6 records one request each; the app logs when each request arrives. Reported: the
 *    achieved rate, and the most requests that arrived within any one second (never above N).
 *
 * 3. The same first run on the Snowflake wire emulator, every request 100 ms late, after a warm-up
 *    there as in part 1 (the `warm` sync). Beside its time: its apply in three parts (to the app's
 *    first request, from the first request to the last, after the last), and two ceilings on its
 *    ratio: what the round trips before its first send and after its last answer allow (the bare
 *    client makes none), and what the CPU time that ebb, the app and the emulator spent during its
 *    apply allows on this machine's cores (the emulator stands in for a warehouse elsewhere).
 *
 * The app runs in a child process, so that its work does not share an event loop with either
 * sender. Run alone with `node bin/run-ts.js bench/delivery.ts [records] [--passes N] [--no-rate-limit]
 * [--no-snowflake]`; with `EBB_BENCH_PROFILE=DIR`, each of ebb's timed runs writes a CPU profile of
 * this process into DIR (`node --cpu-prof` would also profile the setup, the plan and the bare client),
 * and the emulator's child writes its own of part 3's timed run (`emulator-deliver-snowflake`).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Session } from 'node:inspector/promises';
import pMap from 'p-map';
import { stringify } from 'yaml';
import { loadProject } from '../engine/config/load.ts';
import { openEngine, type Engine } from '../engine/engine.ts';
import { deploySyncs } from '../engine/catalog/deploy.ts';
import { runSync, type RunResult } from '../engine/run.ts';
import { createSourceSql, FIELDS, SOURCE_TABLE } from './data.ts';
import { FaultServer } from '../test/support/fault-server.ts';
import { SnowflakeEmulator } from '../test/snowflake/emulator.ts';
import type { Figure } from './figures.ts';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const thisFile = fileURLToPath(import.meta.url);

/** The figures of the delivery bench. */
export interface DeliveryBench {
  records: number;
  batchSize: number;
  concurrency: number;
  /** ebb's runs: total, and their plan, apply and record stages (ms). */
  ebb: Array<{ totalMs: number; planMs: number; applyMs: number; recordMs: number; requests: number; applyCpuMs: number; appCpuMs: number }>;
  /** The bare client's time for each of its passes (ms); the best one is compared. */
  bareMs: number[];
  /** The CPU time of this process (every thread) in each bare pass, and in each of ebb's apply stages: less disturbed by other work than wall time. */
  bareCpuMs: number[];
  /** The app's CPU time (its child process) in each bare pass; in each of ebb's apply stages it is `ebb[].appCpuMs`. */
  bareAppCpuMs: number[];
  bareRequests: number;
  /** ebb's best apply rate over the bare client's best rate (goal: >= 0.8). */
  ratio: number;
  /** Part 2, unless it was left out. */
  rateLimit?: {
    /** The limit: requests per second. */
    limit: number;
    records: number;
    /** Requests per second between the first and the last arrival. */
    achieved: number;
    /** The most requests that arrived within any one second. */
    maxInOneSecond: number;
    runMs: number;
  };
  /** Part 3: ebb's first run on the Snowflake emulator with latency, against the same bare client. */
  snowflake?: {
    totalMs: number;
    planMs: number;
    applyMs: number;
    recordMs: number;
    /** CPU time during the apply stage: ebb's (this process), the app's and the emulator's (child processes), in ms. */
    cpuMs: { ebb: number; app: number; emulator: number };
    latencyMs: number;
    chunkRows: number;
    statements: EmulatorCounts;
    /** Its apply in three parts (ms): to the app's first request, from its first request to its last, after the last. */
    timeline: { toFirstRequestMs: number; sendsMs: number; afterLastRequestMs: number };
    ratio: number;
  };
}

/** Options of {@link benchDelivery}. */
export interface DeliveryOptions {
  records?: number;
  batchSize?: number;
  concurrency?: number;
  /** The rate limit of the second part, requests per second. */
  rateLimit?: number;
  /** How long the rate-limited run should last, in seconds. */
  rateSeconds?: number;
  /** Milliseconds the Snowflake emulator adds to every request in part 3. */
  snowflakeLatencyMs?: number;
  /** Turns of ebb and the bare client in part 1 (default 2). */
  passes?: number;
  /** Parts 2 and 3 run unless set to false. */
  rateLimitPart?: boolean;
  snowflakePart?: boolean;
}

/** Rows per result chunk of the emulator in part 3: Snowflake sizes chunks by bytes, several MB each. */
const SNOWFLAKE_CHUNK_ROWS = 10_000;

// ---- the app, in a child process -----------------------------------------------------------

type AppRequest = { cmd: 'reset' } | { cmd: 'stats'; windowMs: number };

/** What the app reports about the requests since its last reset. */
interface AppStats {
  requests: number;
  records: number;
  contacts: number;
  created: number;
  duplicates: number;
  answers: Record<string, number>;
  maxInWindow: number;
  firstAt: number;
  lastAt: number;
}

/** The child's side: a fault server without faults, driven over IPC. */
async function serve(): Promise<void> {
  const app = await FaultServer.start();
  answer<AppRequest>(
    app.url,
    (message): AppStats => {
      if (message.cmd === 'reset') app.reset();
      const answers: Record<string, number> = {};
      for (const r of app.requests) answers[String(r.answer)] = (answers[String(r.answer)] ?? 0) + 1;
      return {
        requests: app.requests.length,
        records: app.requests.reduce((n, r) => n + r.records.length, 0),
        contacts: app.contacts.size,
        created: app.created.length,
        duplicates: [...app.createdPerEmail().values()].filter((n) => n > 1).length,
        answers,
        maxInWindow: message.cmd === 'stats' ? app.maxInWindow(message.windowMs) : 0,
        firstAt: app.requests[0]?.at ?? 0,
        lastAt: app.requests.at(-1)?.at ?? 0,
      };
    },
    () => app.stop(),
  );
}

/** What the bench asks of the emulator in its child process. */
type EmulatorRequest = { cmd: 'latency'; ms: number } | { cmd: 'statements' };

/** The child's side: the Snowflake emulator holding the delivery source, driven over IPC. */
async function serveEmulator(records: number): Promise<void> {
  const emulator = await SnowflakeEmulator.start({ chunkRows: SNOWFLAKE_CHUNK_ROWS });
  await emulator.sql(createSourceSql(records));
  await emulator.sql(warmSourceSql(records));
  // With EBB_BENCH_PROFILE, the emulator's CPU profile from the last `latency` (the timed run's start) to `statements` (its end).
  let stopProfile: ((label: string) => Promise<void>) | undefined;
  answer<EmulatorRequest>(
    emulator.url,
    async (message) => {
      if (message.cmd === 'latency') {
        emulator.latencyMs = message.ms;
        emulator.resetCounts();
        await stopProfile?.('emulator-warm-up');
        stopProfile = await profile();
        return {};
      }
      await stopProfile?.('emulator-deliver-snowflake');
      stopProfile = undefined;
      return { queries: emulator.requests.query ?? 0, chunks: emulator.requests.chunk ?? 0, marks: emulator.statements.filter((st) => /^INSERT INTO "[^"]+"\."SYNC_INFLIGHT"/.test(st.sql)).length, outcomes: emulator.statements.filter((st) => /^INSERT INTO "[^"]+"\."SYNC_(BATCH_)?OUTCOMES"/.test(st.sql)).length };
    },
    () => emulator.stop(),
  );
}

/** The parent's handle on a server (the app, or the Snowflake emulator) in a child process, driven over IPC. */
class Remote<Request extends object, Answer> {
  private nextId = 1;
  private readonly waiting = new Map<number, (answer: unknown) => void>();
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {
    child.on('message', (m: { id?: number; answer?: Answer }) => {
      if (m.id !== undefined && m.answer !== undefined) this.waiting.get(m.id)?.(m.answer);
    });
  }

  /** Forks this file with `args`; resolves once the child sent its server's URL. */
  static start<Request extends object, Answer>(args: string[]): Promise<Remote<Request, Answer>> {
    const child = fork(join(repoRoot, 'bin', 'run-ts.js'), [thisFile, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`the bench's ${args[0]} child exited with code ${code}`)));
      child.once('message', (m: { url: string }) => resolve(new Remote(child, m.url)));
    });
  }

  ask(command: Request): Promise<Answer> {
    return this.send<Answer>(command);
  }

  /** The CPU time the child has used so far (user and system, every thread), in ms. */
  cpuMs(): Promise<number> {
    return this.send<number>({ cmd: 'cpu' });
  }

  private send<T>(command: object): Promise<T> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve as (answer: unknown) => void);
      this.child.send({ ...command, id });
    });
  }

  stop(): void {
    this.child.removeAllListeners('exit');
    this.child.disconnect();
  }
}

/** Answers a parent's commands (see Remote) in a child process; `url` is sent first. */
function answer<Request>(url: string, handle: (command: Request) => unknown, stop: () => Promise<void>): void {
  process.on('message', (message: Request & { id: number; cmd?: string }) => {
    // Every child says how much CPU time it has used (see Remote.cpuMs).
    if (message.cmd === 'cpu') process.send!({ id: message.id, answer: cpuMs(process.cpuUsage()) });
    else void Promise.resolve(handle(message)).then((result) => process.send!({ id: message.id, answer: result }));
  });
  process.on('disconnect', () => void stop().then(() => process.exit(0)));
  process.send!({ url });
}

// ---- the project -----------------------------------------------------------------------------

const batchCreate = {
  method: 'POST',
  path: '/contacts/batch/create',
  batch: true,
  body: '{"inputs": {{ records | tojson }}}',
  results: 'results',
  app_id: '{{ result.id }}',
  error: '{{ result.error }}',
};
const singleCreate = { method: 'POST', path: '/contacts', body: '{{ record | tojson }}', app_id: '{{ response.id }}' };
const mapping = Object.fromEntries(FIELDS.map((f) => [f, f]));

/** The bench's project: on DuckDB, or (given the emulator's URL) on Snowflake with the `deliver` and `warm` syncs. */
async function makeProject(appUrl: string, o: Required<DeliveryOptions>, snowflakeUrl?: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ebb-bench-delivery-'));
  const warehouse = snowflakeUrl
    ? { type: 'snowflake', account: 'emulated', username: 'bench', password: 'bench', database: 'DB', access_url: snowflakeUrl }
    : { type: 'duckdb', path: 'warehouse.duckdb' };
  const deliverSync = {
    name: 'deliver',
    source: { table: SOURCE_TABLE, key: 'id' },
    // send: a full resync sends every record again, so that ebb can be timed more than once.
    // The app answers a repeated create with the existing id: sending a create again cannot
    // make a duplicate, so ebb need not hold a batch in doubt to the ones on the wire.
    destination: { connection: 'app', object: 'contacts', create_is_idempotent: true, requests: { send: batchCreate } },
    strategy: 'send',
    batch_size: o.batchSize,
    mapping,
  };
  const config = {
    name: 'bench_delivery',
    warehouse,
    connections: {
      app: { plugin: 'http', config: { base_url: appUrl }, concurrency: o.concurrency },
      limited: { plugin: 'http', config: { base_url: appUrl }, concurrency: o.concurrency, rate_limit: { requests: o.rateLimit, per_seconds: 1 } },
    },
    syncs: [
      deliverSync,
      // The same sync over a tenth of the records: ebb's warm-up, as the bare client has its own.
      { ...deliverSync, name: 'warm', source: { table: 'warm_contacts', key: 'id' } },
      {
        name: 'limited',
        source: { table: 'limited_contacts', key: 'id' },
        destination: { connection: 'limited', object: 'contacts', requests: { create: singleCreate } },
        strategy: 'create',
        batch_size: 10,
        mapping,
      },
    ].filter((sync) => !snowflakeUrl || sync.name !== 'limited'),
  };
  await writeFile(join(dir, 'ebb.yml'), stringify(config));
  return dir;
}

/** The records as the transform makes them, in key order: what the bare client sends. */
async function sourceRecords(engine: Engine): Promise<Array<Record<string, unknown>>> {
  const rows = await engine.sql.warehouse.runAndRead(`SELECT transformed_record::VARCHAR AS r FROM ebb.sync_record_state WHERE sync_name = 'deliver' ORDER BY record_key`);
  return rows.map((row) => JSON.parse(String(row.r)) as Record<string, unknown>);
}

/** The bare client: the same batches, bodies and concurrency as ebb, with p-map and fetch. */
async function bare(url: string, records: Array<Record<string, unknown>>, batchSize: number, concurrency: number): Promise<{ ms: number; cpuMs: number }> {
  const batches: Array<Array<Record<string, unknown>>> = [];
  for (let i = 0; i < records.length; i += batchSize) batches.push(records.slice(i, i + batchSize));
  const start = performance.now();
  const cpu = process.cpuUsage();
  await pMap(
    batches,
    async (batch) => {
      const res = await fetch(`${url}/contacts/batch/create`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ inputs: batch }),
      });
      const answer = (await res.json()) as { results: Array<{ id?: string; error?: string }> };
      if (!res.ok || answer.results.length !== batch.length || answer.results.some((r) => r.error)) throw new Error(`the bare client got ${res.status}`);
    },
    { concurrency },
  );
  return { ms: performance.now() - start, cpuMs: cpuMs(process.cpuUsage(cpu)) };
}

/** Milliseconds of CPU (user and system, every thread of this process) in a cpuUsage difference. */
function cpuMs(usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1000;
}

/** With EBB_BENCH_PROFILE=DIR, a CPU profile of this process from start() to stop(label), written to DIR/label.cpuprofile. */
async function profile(): Promise<(label: string) => Promise<void>> {
  const dir = process.env.EBB_BENCH_PROFILE;
  if (!dir) return async () => {};
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async (label) => {
    const { profile } = await session.post('Profiler.stop');
    await writeFile(join(dir, `${label}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  };
}

/** Something whose CPU time can be asked for: a child process of the bench (see Remote.cpuMs). */
interface Child {
  cpuMs(): Promise<number>;
}

/** A run of ebb, timed by stage from its progress events; with the CPU time of its apply stage, its own and each child's (in the order given). */
async function timedRun(
  engine: Engine,
  name: string,
  options: { fullResync?: boolean; label?: string; children?: Child[] } = {},
): Promise<{ result: RunResult; totalMs: number; planMs: number; applyMs: number; recordMs: number; applyCpuMs: number; childApplyCpuMs: number[]; applyAt: [number, number] }> {
  const { fullResync = false, label = name, children = [] } = options;
  const sync = engine.project.config.syncs.find((s) => s.name === name)!;
  globalThis.gc?.();
  const stopProfile = await profile();
  const start = performance.now();
  let planned = 0;
  let lastApplied = 0;
  let cpuAtPlan: NodeJS.CpuUsage | undefined;
  let applyCpuMs = 0;
  // The children's CPU time as apply starts and as it ends (asked then, answered a moment later).
  let childrenAtApply: Promise<number[]> | undefined;
  let childrenAtRecord: Promise<number[]> | undefined;
  const childCpu = () => Promise.all(children.map((c) => c.cpuMs()));
  // Per batch only the clock is read: the CPU time (a system call) is read as apply starts and ends.
  const result = await runSync(engine, sync, {
    fullResync,
    onProgress: ({ applied }) => {
      if (applied === 0 && planned === 0) planned = performance.now();
      else lastApplied = performance.now();
    },
    onPhase: (phase) => {
      if (phase === 'apply') {
        cpuAtPlan = process.cpuUsage();
        childrenAtApply = childCpu();
      }
      if (phase === 'record' && cpuAtPlan) {
        applyCpuMs = cpuMs(process.cpuUsage(cpuAtPlan));
        childrenAtRecord = childCpu();
      }
    },
  });
  const end = performance.now();
  await stopProfile(label);
  if (result.error) throw new Error(`the ${name} run failed: ${result.error}`);
  const [atApply, atRecord] = await Promise.all([childrenAtApply ?? childCpu(), childrenAtRecord ?? childCpu()]);
  const childApplyCpuMs = atRecord.map((ms, i) => ms - atApply[i]);
  // As epoch milliseconds too, to compare with the app's clock (AppStats.firstAt, lastAt).
  const epoch = (t: number) => performance.timeOrigin + t;
  return { result, totalMs: end - start, planMs: planned - start, applyMs: lastApplied - planned, recordMs: end - lastApplied, applyCpuMs, childApplyCpuMs, applyAt: [epoch(planned), epoch(lastApplied)] };
}

/** A run's requests to the emulator: its queries (statements), chunk GETs, and of the queries the bulk appends of marks and of outcomes. */
interface EmulatorCounts {
  queries: number;
  chunks: number;
  marks: number;
  outcomes: number;
}

/** Part 3: the same first run of `deliver` on the Snowflake emulator, every request `snowflakeLatencyMs` late. */
async function deliverOnSnowflake(
  app: Child & { url: string; reset(): Promise<AppStats>; stats(): Promise<AppStats> },
  o: Required<DeliveryOptions>,
  log: (line: string) => void,
): Promise<{ run: Awaited<ReturnType<typeof timedRun>>; statements: EmulatorCounts; app: AppStats }> {
  process.env.SF_OCSP_RESPONSE_CACHE_DIR ??= tmpdir();
  log(`delivery on Snowflake: the emulator (child process) with ${o.records} source rows, result chunks of ${SNOWFLAKE_CHUNK_ROWS} rows`);
  const emulator = await Remote.start<EmulatorRequest, EmulatorCounts>(['--emulator', String(o.records)]);
  const dir = await makeProject(app.url, o, emulator.url);
  const engine = await openEngine(await loadProject(dir));
  try {
    await deploySyncs(engine);
    await emulator.ask({ cmd: 'latency', ms: o.snowflakeLatencyMs });
    // A warm-up as in part 1: the driver's code is new to this process, and so are the emulator's statements.
    await app.reset();
    await warmUp(engine, o.records);
    await app.reset();
    // Asked again: it starts the emulator's counts afresh, for the timed run alone.
    await emulator.ask({ cmd: 'latency', ms: o.snowflakeLatencyMs });
    log(`delivery on Snowflake: ebb run of ${o.records} records, ${o.snowflakeLatencyMs} ms added to every request`);
    const run = await timedRun(engine, 'deliver', { label: 'deliver-snowflake', children: [app, emulator] });
    return { run, statements: await emulator.ask({ cmd: 'statements' }), app: await app.stats() };
  } finally {
    await engine.close();
    emulator.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Records of the warm-up sync: a tenth of the default source. */
function warmRecords(records: number): number {
  return Math.min(10_000, records);
}

/** The warm-up sync's source, `warm_contacts`: the first records of the source. */
function warmSourceSql(records: number): string {
  return `CREATE TABLE warm_contacts AS SELECT * FROM ${SOURCE_TABLE} WHERE id <= ${warmRecords(records)}`;
}

/** ebb's warm-up: the `warm` sync, so that the timed run is not also the one that warms up the JIT and the connections. */
async function warmUp(engine: Engine, records: number): Promise<void> {
  const run = await runSync(engine, engine.project.config.syncs.find((s) => s.name === 'warm')!, {});
  if (run.counts.succeeded !== warmRecords(records)) throw new Error(`ebb's warm-up delivered ${run.counts.succeeded} of ${warmRecords(records)} records: ${run.error ?? run.top_error?.error}`);
}

/** Part 2: ebb sends `limited` one request each, under the connection's rate limit. */
async function rateLimited(engine: Engine, app: { reset(): Promise<AppStats>; stats(windowMs?: number): Promise<AppStats> }, o: Required<DeliveryOptions>, log: (line: string) => void): Promise<DeliveryBench['rateLimit']> {
  await app.reset();
  const records = o.rateLimit * o.rateSeconds;
  log(`delivery: ${records} records, one request each, under a limit of ${o.rateLimit} requests per second`);
  const limited = await timedRun(engine, 'limited');
  const ls = await app.stats(1000);
  if (limited.result.counts.succeeded !== records) throw new Error(`the rate-limited run delivered ${limited.result.counts.succeeded} of ${records}`);
  return { limit: o.rateLimit, records, achieved: ((ls.requests - 1) * 1000) / (ls.lastAt - ls.firstAt), maxInOneSecond: ls.maxInWindow, runMs: limited.totalMs };
}

/** Runs the three parts (parts 2 and 3 unless left out); `log` gets a line per step. */
export async function benchDelivery(options: DeliveryOptions = {}, log: (line: string) => void = () => {}): Promise<DeliveryBench> {
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as DeliveryOptions;
  const o: Required<DeliveryOptions> = { records: 100_000, batchSize: 100, concurrency: 8, rateLimit: 50, rateSeconds: 6, snowflakeLatencyMs: 100, passes: 2, rateLimitPart: true, snowflakePart: true, ...given };
  const remote = await Remote.start<AppRequest, AppStats>(['--serve']);
  const app = { url: remote.url, reset: () => remote.ask({ cmd: 'reset' }), stats: (windowMs = 1000) => remote.ask({ cmd: 'stats', windowMs }), cpuMs: () => remote.cpuMs() };
  const dir = await makeProject(app.url, o);
  const engine = await openEngine(await loadProject(dir));
  try {
    log(`delivery: generating ${o.records} source rows`);
    await engine.sql.warehouse.run(createSourceSql(o.records));
    await engine.sql.warehouse.run(warmSourceSql(o.records));
    await engine.sql.warehouse.run(`CREATE TABLE limited_contacts AS SELECT * FROM ${SOURCE_TABLE} WHERE id <= ${o.rateLimit * o.rateSeconds}`);
    await engine.sql.warehouse.run('CHECKPOINT');
    await deploySyncs(engine);

    // Warm up the app, fetch and ebb on a tenth of the records, so that neither side's first
    // timed pass is also its warm-up (the JIT's, the connections').
    log('delivery: warm-up');
    await bare(app.url, Array.from({ length: warmRecords(o.records) }, (_, i) => ({ email: `warm${i}@x.io` })), o.batchSize, o.concurrency);
    await app.reset();
    await warmUp(engine, o.records);
    await app.reset();

    const ebbRuns: DeliveryBench['ebb'] = [];
    const bareMs: number[] = [];
    const bareCpuMs: number[] = [];
    const bareAppCpuMs: number[] = [];
    let bareRequests = 0;
    let records: Array<Record<string, unknown>> = [];
    for (let pass = 1; pass <= o.passes; pass++) {
      await app.reset();
      log(`delivery: ebb run ${pass} of ${o.records} records (batch mode, batches of ${o.batchSize}, concurrency ${o.concurrency})`);
      const run = await timedRun(engine, 'deliver', { fullResync: pass > 1, label: `deliver-${pass}`, children: [app] });
      const afterEbb = await app.stats();
      if (run.result.counts.succeeded !== o.records || afterEbb.created !== o.records || afterEbb.duplicates > 0) {
        throw new Error(`ebb delivered ${run.result.counts.succeeded} of ${o.records} records; the app created ${afterEbb.created}`);
      }
      ebbRuns.push({ totalMs: run.totalMs, planMs: run.planMs, applyMs: run.applyMs, recordMs: run.recordMs, requests: afterEbb.requests, applyCpuMs: run.applyCpuMs, appCpuMs: run.childApplyCpuMs[0] });
      if (pass === 1) records = await sourceRecords(engine);

      await app.reset();
      log(`delivery: bare client, pass ${pass}`);
      globalThis.gc?.();
      const stopProfile = await profile();
      const appCpu = await app.cpuMs();
      const timed = await bare(app.url, records, o.batchSize, o.concurrency);
      bareAppCpuMs.push((await app.cpuMs()) - appCpu);
      bareMs.push(timed.ms);
      bareCpuMs.push(timed.cpuMs);
      await stopProfile(`bare-${pass}`);
      const stats = await app.stats();
      if (stats.created !== o.records) throw new Error(`the bare client delivered ${stats.created} of ${o.records} records`);
      bareRequests = stats.requests;
    }

    const rateLimit = o.rateLimitPart ? await rateLimited(engine, app, o, log) : undefined;

    let snowflake: DeliveryBench['snowflake'];
    if (o.snowflakePart) {
      const sf = await deliverOnSnowflake(app, o, log);
      if (sf.app.created !== o.records) throw new Error(`on Snowflake, ebb delivered ${sf.app.created} of ${o.records} records`);
      const { totalMs, planMs, applyMs, recordMs, applyCpuMs, childApplyCpuMs, applyAt } = sf.run;
      const cpu = { ebb: applyCpuMs, app: childApplyCpuMs[0], emulator: childApplyCpuMs[1] };
      const timeline = { toFirstRequestMs: sf.app.firstAt - applyAt[0], sendsMs: sf.app.lastAt - sf.app.firstAt, afterLastRequestMs: applyAt[1] - sf.app.lastAt };
      snowflake = { totalMs, planMs, applyMs, recordMs, cpuMs: cpu, latencyMs: o.snowflakeLatencyMs, chunkRows: SNOWFLAKE_CHUNK_ROWS, statements: sf.statements, timeline, ratio: Math.min(...bareMs) / applyMs };
    }

    return {
      records: o.records,
      batchSize: o.batchSize,
      concurrency: o.concurrency,
      ebb: ebbRuns,
      bareMs,
      bareCpuMs,
      bareAppCpuMs,
      bareRequests,
      ratio: Math.min(...bareMs) / Math.min(...ebbRuns.map((r) => r.applyMs)),
      rateLimit,
      snowflake,
    };
  } finally {
    await engine.close();
    remote.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The bench's result as lines of text. */
export function formatDelivery(b: DeliveryBench): string[] {
  const rate = (n: number, ms: number) => `${Math.round((n * 1000) / ms).toLocaleString('en-US')} records/s`;
  const bare = Math.min(...b.bareMs);
  const best = b.ebb.reduce((a, c) => (c.applyMs < a.applyMs ? c : a));
  const r = b.rateLimit;
  const sf = b.snowflake;
  return [
    `delivery of ${b.records.toLocaleString('en-US')} records over HTTP (batch mode, batches of ${b.batchSize}, concurrency ${b.concurrency}; app in a child process)`,
    ...b.ebb.map((run, i) => `  ebb run ${i + 1}:    ${ms(run.totalMs)} total = plan ${ms(run.planMs)} + apply ${ms(run.applyMs)} + record ${ms(run.recordMs)}; ${run.requests} requests`),
    `  ebb apply:    ${rate(b.records, best.applyMs)}  (best run; its whole run: ${rate(b.records, best.totalMs)})`,
    `  bare client:  ${rate(b.records, bare)}  (best of ${b.bareMs.map(ms).join(', ')}; ${b.bareRequests} requests)`,
    `  CPU time of this process: ebb apply ${b.ebb.map((r) => ms(r.applyCpuMs)).join(', ')}; bare client ${b.bareCpuMs.map(ms).join(', ')}`,
    `  CPU time of the app (child process): during ebb's apply ${b.ebb.map((r) => ms(r.appCpuMs)).join(', ')}; during the bare client ${b.bareAppCpuMs.map(ms).join(', ')}`,
    `  ratio ebb apply / bare: ${b.ratio.toFixed(2)}  (goal >= 0.80: ${b.ratio >= 0.8 ? 'met' : 'NOT met'})`,
    ...(r
      ? [
          `rate limit of ${r.limit} requests/s, ${r.records} records one request each (${ms(r.runMs)} run)`,
          `  achieved:     ${r.achieved.toFixed(1)} requests/s = ${((r.achieved / r.limit) * 100).toFixed(1)}% of the limit  (goal >= 95%: ${r.achieved >= 0.95 * r.limit ? 'met' : 'NOT met'})`,
          `  busiest 1 s:  ${r.maxInOneSecond} requests  (goal <= ${r.limit}: ${r.maxInOneSecond <= r.limit ? 'met' : 'NOT met'})`,
        ]
      : []),
    ...(sf
      ? [
          `on Snowflake (the wire emulator in a child process, ${sf.latencyMs} ms added to every request, result chunks of ${sf.chunkRows.toLocaleString('en-US')} rows), a first run of the same records:`,
          `  ebb run:      ${ms(sf.totalMs)} total = plan ${ms(sf.planMs)} + apply ${ms(sf.applyMs)} + record ${ms(sf.recordMs)}`,
          `  ebb apply:    ${rate(b.records, sf.applyMs)}; ratio to the bare client ${sf.ratio.toFixed(2)}  (goal >= 0.80: ${sf.ratio >= 0.8 ? 'met' : 'NOT met'})`,
          `  its apply:    ${ms(sf.timeline.toFirstRequestMs)} to the app's first request, ${ms(sf.timeline.sendsMs)} from its first request to its last (the bare client: ${ms(bare)} in all), ${ms(sf.timeline.afterLastRequestMs)} after the last; sends as fast as the bare client's would give a ratio of at most ${latencyCeiling(sf, bare).toFixed(2)}`,
          `  CPU time during its apply: ebb ${ms(sf.cpuMs.ebb)}, the app ${ms(sf.cpuMs.app)}, the emulator ${ms(sf.cpuMs.emulator)}; ${ms(cpuOfApply(sf))} on ${availableParallelism()} cores: no less than ${ms(cpuOfApply(sf) / availableParallelism())} of wall time, a ratio of at most ${cpuCeiling(sf, bare).toFixed(2)}`,
          `  statements:   ${sf.statements.queries} in the whole run (${b.records / b.batchSize} batches), of which ${sf.statements.marks} wrote in-flight marks and ${sf.statements.outcomes} outcomes; ${sf.statements.chunks} chunk GETs`,
        ]
      : []),
  ];
}

type SnowflakePart = NonNullable<DeliveryBench['snowflake']>;

/**
 * The best ratio to the bare client that the Snowflake run's apply could reach if its sends took
 * the bare client's time: before its first send it reads the change set (a round trip), and after
 * its last answer it writes the outcomes (another); the bare client waits for neither.
 */
function latencyCeiling(sf: SnowflakePart, bareMs: number): number {
  return bareMs / (bareMs + sf.timeline.toFirstRequestMs + sf.timeline.afterLastRequestMs);
}

/** CPU time of ebb, the app and the emulator during the Snowflake run's apply: they share this machine's cores. */
function cpuOfApply(sf: SnowflakePart): number {
  return sf.cpuMs.ebb + sf.cpuMs.app + sf.cpuMs.emulator;
}

/** The best ratio to the bare client that the CPU time of the Snowflake run's apply allows on this machine's cores. */
function cpuCeiling(sf: SnowflakePart, bareMs: number): number {
  return bareMs / (cpuOfApply(sf) / availableParallelism());
}

/** The bench's figures for bench/index.ts: goal 5 (delivery), goal 6 (delivery on Snowflake), and the rate limit. */
export function deliveryFigures(b: DeliveryBench): Figure[] {
  const int = (n: number) => Math.round(n).toLocaleString('en-US');
  const best = b.ebb.reduce((a, c) => (c.applyMs < a.applyMs ? c : a));
  const bare = Math.min(...b.bareMs);
  const r = b.rateLimit;
  const sf = b.snowflake;
  if (!r || !sf) throw new Error('the figures of the delivery bench need all three parts');
  const phases = (run: { planMs: number; applyMs: number; recordMs: number }) => [run.planMs, run.applyMs, run.recordMs].map(ms).join(' / ');
  const rate = (records: number, t: number) => (records * 1000) / t;
  return [
    { goal: '5', figure: `ebb apply, ${int(b.records)} records -> HTTP batch endpoint (batches of ${b.batchSize}, concurrency ${b.concurrency}; best of ${b.ebb.length})`, value: rate(b.records, best.applyMs), unit: 'records/s' },
    { goal: '', figure: '  its run: plan / apply / record', value: best.totalMs, unit: 'ms', text: phases(best) },
    { goal: '5', figure: `bare client: p-map + fetch, same bodies and concurrency (best of ${b.bareMs.length})`, value: rate(b.records, bare), unit: 'records/s' },
    { goal: '5', figure: 'ebb apply rate / bare client rate', value: b.ratio, unit: 'ratio', target: { op: '>=', value: 0.8 } },
    { goal: '6', figure: `the same first run on the Snowflake emulator, ${sf.latencyMs} ms added to every request: ebb apply`, value: rate(b.records, sf.applyMs), unit: 'records/s' },
    { goal: '', figure: '  its run: plan / apply / record', value: sf.totalMs, unit: 'ms', text: phases(sf) },
    { goal: '', figure: '  its statements: all / in-flight mark appends / outcome appends', value: sf.statements.queries, unit: 'statements', text: `${sf.statements.queries} / ${sf.statements.marks} / ${sf.statements.outcomes}` },
    { goal: '', figure: "  its apply: to the app's first request / first to last request / after the last", value: sf.applyMs, unit: 'ms', text: [sf.timeline.toFirstRequestMs, sf.timeline.sendsMs, sf.timeline.afterLastRequestMs].map(ms).join(' / ') },
    { goal: '', figure: "  the best ratio its first and last round trips allow (sends as fast as the bare client's)", value: latencyCeiling(sf, bare), unit: 'ratio' },
    { goal: '', figure: '  CPU time during its apply: ebb / the app / the emulator (one machine)', value: cpuOfApply(sf), unit: 'ms', text: [sf.cpuMs.ebb, sf.cpuMs.app, sf.cpuMs.emulator].map(ms).join(' / ') },
    { goal: '', figure: `  the best ratio that CPU time allows on ${availableParallelism()} cores`, value: cpuCeiling(sf, bare), unit: 'ratio' },
    { goal: '6', figure: 'ebb apply rate on Snowflake / bare client rate', value: sf.ratio, unit: 'ratio', target: { op: '>=', value: 0.8 } },
    { goal: 'rl', figure: `rate limit ${r.limit} requests/s, ${r.records} single-record requests: achieved`, value: r.achieved, unit: 'requests/s', target: { op: '>=', value: 0.95 * r.limit } },
    { goal: 'rl', figure: '  most requests within any 1 s (at the app)', value: r.maxInOneSecond, unit: 'requests', target: { op: '<=', value: r.limit } },
  ];
}

function ms(n: number): string {
  return `${Math.round(n)} ms`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (process.argv[2] === '--serve') await serve();
  else if (process.argv[2] === '--emulator') await serveEmulator(Number(process.argv[3]));
  else {
    const args = process.argv.slice(2);
    const records = args[0] && !args[0].startsWith('--') ? Number(args[0]) : undefined;
    const passes = args.includes('--passes') ? Number(args[args.indexOf('--passes') + 1]) : undefined;
    const options = { records, passes, rateLimitPart: !args.includes('--no-rate-limit'), snowflakePart: !args.includes('--no-snowflake') };
    const result = await benchDelivery(options, (line) => process.stderr.write(`${line}\n`));
    process.stdout.write(formatDelivery(result).join('\n') + '\n');
  }
}
