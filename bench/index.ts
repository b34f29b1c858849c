/**
 * `npm run bench`: the goals of ebb's own cost, each a ratio or a rate measured in the same run on
 * the same machine: the plan step against a bare diff (1), the end-to-end rate into the file
 * destination (2), its record phase against its plan phase (3), the peak RSS of a first run at two
 * source sizes (4), and delivery against a bare HTTP client, on DuckDB (5) and on the Snowflake
 * emulator with 100 ms added to every request (6), and the start of the `ebb` command (7). The ratios are what to compare across machines.
 * EBB_BENCH_ROWS sets the source size (default 1,000,000); the smaller RSS run uses a tenth.
 * `npm run bench -- --json` also writes every figure, with its goal, to bench/results.json.
 */
import os from 'node:os';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { benchPlan, type Timing } from './plan.ts';
import { benchE2e, type E2eBench } from './e2e.ts';
import { BATCH_SIZE, CHANGE, E2E_MEMORY_LIMIT } from './data.ts';
import { benchDelivery, deliveryFigures, formatDelivery } from './delivery.ts';
import { figureTable, met, type Figure } from './figures.ts';
import { benchIdle, idleFigures } from './idle.ts';
import { benchStartup, startupFigures } from './startup.ts';

const REPEATS = 3;

const rows = Number(process.env.EBB_BENCH_ROWS ?? 1_000_000);
if (!Number.isInteger(rows) || rows < 1000) {
  process.stderr.write(`EBB_BENCH_ROWS must be a whole number of at least 1000 (got ${process.env.EBB_BENCH_ROWS})\n`);
  process.exit(2);
}
const smallRows = Math.round(rows / 10);

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const mib = (bytes: number) => `${int(bytes / 2 ** 20)} MiB`;
const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const log = (line: string) => process.stderr.write(`${line}\n`);
const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

const started = performance.now();
const loadAtStart = load();
log(`ebb bench: ${int(rows)} rows (progress on stderr, results on stdout)`);

const startup = await benchStartup(5, log);
const planBench = await benchPlan(rows, REPEATS, log);
// The end-to-end runs vary from run to run on a shared machine, peak RSS most (by a third at a
// million records): each size runs REPEATS times, taking turns, and the medians are compared.
const runs: { large: E2eBench[]; small: E2eBench[] } = { large: [], small: [] };
for (let i = 0; i < REPEATS; i++) {
  runs.large.push(await benchE2e(rows, log));
  runs.small.push(await benchE2e(smallRows, log));
}
/** The run of median wall time: goals 2 and 3 take their rate and phases from one run. */
const e2e = [...runs.large].sort((a, b) => a.ms.run - b.ms.run)[Math.floor(REPEATS / 2)];
const largeRss = median(runs.large.map((r) => r.maxRss));
const smallRss = median(runs.small.map((r) => r.maxRss));
const delivery = await benchDelivery({}, log);
const idle = await benchIdle(120, log);

const planMs = median(planBench.plan.map((t: Timing) => t.wall));
const bareMs = median(planBench.bare.map((t: Timing) => t.wall));
const planCpu = median(planBench.plan.map((t: Timing) => t.cpu));
const bareCpu = median(planBench.bare.map((t: Timing) => t.cpu));
const planRatio = planMs / bareMs;
const rate = e2e.rows / (e2e.ms.run / 1000);
const rssRatio = largeRss / smallRss;

const recordRatio = e2e.ms.record / e2e.ms.plan;
const figures: Figure[] = [
  { goal: '', figure: `plan step: ebb plan() into ebb.sync_changes (median of ${REPEATS})`, value: planMs, unit: 'ms' },
  { goal: '', figure: `bare diff: FULL OUTER JOIN on a (key, md5) snapshot (median of ${REPEATS})`, value: bareMs, unit: 'ms' },
  { goal: '1', figure: 'plan step / bare diff, wall time', value: planRatio, unit: 'ratio', target: { op: '<=', value: 1.5 } },
  { goal: '', figure: 'plan step / bare diff, CPU time (less sensitive to a busy machine)', value: planCpu / bareCpu, unit: 'ratio' },
  { goal: '2', figure: `end-to-end first run, ${int(e2e.rows)} records -> JSONL file (median of ${REPEATS})`, value: rate, unit: 'records/s', target: { op: '>=', value: 100_000 } },
  { goal: '', figure: '  its phases: plan / apply / record', value: e2e.ms.run, unit: 'ms', text: [e2e.ms.plan, e2e.ms.apply, e2e.ms.record].map(seconds).join(' / ') },
  { goal: '3', figure: '  its record phase / its plan phase', value: recordRatio, unit: 'ratio', target: { op: '<=', value: 1 } },
  { goal: '', figure: `peak RSS, first run of ${int(smallRows)} records (median of ${REPEATS})`, value: smallRss / 2 ** 20, unit: 'MiB' },
  { goal: '', figure: `peak RSS, first run of ${int(rows)} records (median of ${REPEATS})`, value: largeRss / 2 ** 20, unit: 'MiB' },
  { goal: '4', figure: `peak RSS ratio, ${int(rows)} / ${int(smallRows)}`, value: rssRatio, unit: 'ratio', target: { op: '<=', value: 1.25 } },
  ...deliveryFigures(delivery),
  ...idleFigures(idle),
  ...startupFigures(startup),
];

const cpus = os.cpus();
const phases = (b: E2eBench) =>
  `plan ${mib(b.phaseRss.plan)}, apply ${mib(b.phaseRss.apply)}, record ${mib(b.phaseRss.record)}; before the run ${mib(b.baselineRss)}; ` +
  `JS heap + external at most ${mib(b.jsPeak)}`;
const out = [
  '',
  `ebb bench on ${os.type()} ${os.arch()}, ${cpus.length} cores (${cpus[0]?.model.trim() ?? 'unknown CPU'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, node ${process.version}, DuckDB ${planBench.duckdbVersion}`,
  `load average (1/5/15 min) at start ${loadAtStart}, at end ${load()}; total bench time ${seconds(performance.now() - started)}`,
  `source: ${int(rows)} rows; change: ${CHANGE.changed * 100}% changed, ${CHANGE.removed * 100}% removed, ${CHANGE.added * 100}% new; ` +
    `sync: upsert, on_remove delete, batch_size ${BATCH_SIZE}, file destination (JSONL); end-to-end runs with DuckDB memory_limit ${E2E_MEMORY_LIMIT}`,
  '',
  ...figureTable(figures),
  '',
  `plan runs (wall / cpu ms): ${planBench.plan.map((t) => `${int(t.wall)} / ${int(t.cpu)}`).join(', ')}`,
  `bare runs (wall / cpu ms): ${planBench.bare.map((t) => `${int(t.wall)} / ${int(t.cpu)}`).join(', ')}`,
  `change set: ${JSON.stringify(planBench.summary.actions)} (the bare diff found ${JSON.stringify(planBench.bareCounts)})`,
  ...(['large', 'small'] as const).map((size) => `end-to-end runs of ${int(size === 'large' ? rows : smallRows)} records (run = plan + apply + record, peak RSS): ` +
    runs[size].map((r) => `${seconds(r.ms.run)} = ${[r.ms.plan, r.ms.apply, r.ms.record].map(seconds).join(' + ')}, ${mib(r.maxRss)}`).join('; ')),
  `peak RSS by phase, ${int(rows)} (the median run): ${phases(e2e)}`,
  'peak RSS is the kernel\'s ru_maxrss of a child process that runs loadProject + openEngine + runSync.',
  '',
  ...formatDelivery(delivery),
  '',
];
process.stdout.write(out.join('\n'));
if (process.argv.includes('--json')) {
  const path = fileURLToPath(new URL('results.json', import.meta.url));
  const machine = { os: `${os.type()} ${os.arch()}`, cores: cpus.length, cpu: cpus[0]?.model.trim() ?? 'unknown', memoryGiB: os.totalmem() / 2 ** 30, node: process.version, duckdb: planBench.duckdbVersion };
  const results = {
    at: new Date().toISOString(),
    rows,
    machine,
    loadAverage: { start: loadAtStart, end: load() },
    figures: figures.map((f) => ({ goal: f.goal, figure: f.figure.trim(), value: f.value, unit: f.unit, ...(f.target && { target: f.target, met: met(f) }) })),
  };
  await writeFile(path, `${JSON.stringify(results, null, 2)}\n`);
  log(`figures written to ${path}`);
}
