/**
 * `npm run bench`: the plan step against a bare diff, the end-to-end rate into the file
 * destination, and the peak RSS of a first run at two source sizes. Every baseline is measured
 * in the same run on the same machine, so the ratios are what to compare across machines.
 * EBB_BENCH_ROWS sets the source size (default 1,000,000); the smaller RSS run uses a tenth.
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { benchPlan, type Timing } from './plan.ts';
import { benchE2e, type E2eBench } from './e2e.ts';
import { BATCH_SIZE, CHANGE, E2E_MEMORY_LIMIT } from './data.ts';
import { benchDelivery, deliveryTable, formatDelivery } from './delivery.ts';

/** The goals this bench checks. */
const GOALS = {
  /** The plan step may cost at most this much more than a bare diff of the same data. */
  planRatio: 1.5,
  /** "Memory use stays flat as the source grows" (SPEC §2): peak RSS at 10× the rows, at most this much higher. */
  rssRatio: 1.25,
};
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
const ratio = (n: number) => `${n.toFixed(2)}×`;
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

const planBench = await benchPlan(rows, REPEATS, log);
const e2e: E2eBench = await benchE2e(rows, log);
const small: E2eBench = await benchE2e(smallRows, log);
const delivery = await benchDelivery({}, log);

const planMs = median(planBench.plan.map((t: Timing) => t.wall));
const bareMs = median(planBench.bare.map((t: Timing) => t.wall));
const planCpu = median(planBench.plan.map((t: Timing) => t.cpu));
const bareCpu = median(planBench.bare.map((t: Timing) => t.cpu));
const planRatio = planMs / bareMs;
const rate = e2e.rows / (e2e.ms.run / 1000);
const rssRatio = e2e.maxRss / small.maxRss;

const met = (ok: boolean) => (ok ? 'yes' : 'NO');
const table: string[][] = [
  ['#', 'figure', 'value', 'goal', 'met'],
  ['1', `plan step: ebb plan() into ebb.sync_changes (median of ${REPEATS})`, `${int(planMs)} ms`, '', ''],
  ['1', `bare diff: FULL OUTER JOIN on a (key, md5) snapshot (median of ${REPEATS})`, `${int(bareMs)} ms`, '', ''],
  ['1', 'plan step / bare diff, wall time', ratio(planRatio), `<= ${ratio(GOALS.planRatio)}`, met(planRatio <= GOALS.planRatio)],
  ['1', 'plan step / bare diff, CPU time (less sensitive to a busy machine)', ratio(planCpu / bareCpu), '(info)', ''],
  ['2', `end-to-end first run, ${int(e2e.rows)} records -> JSONL file`, `${int(rate)} records/s`, '(none set)', ''],
  ['2', '  its phases: plan / apply / record', [e2e.ms.plan, e2e.ms.apply, e2e.ms.record].map(seconds).join(' / '), '', ''],
  ['3', `peak RSS, first run of ${int(small.rows)} records`, mib(small.maxRss), '', ''],
  ['3', `peak RSS, first run of ${int(e2e.rows)} records`, mib(e2e.maxRss), '', ''],
  ['3', `peak RSS ratio, ${int(e2e.rows)} / ${int(small.rows)}`, ratio(rssRatio), `<= ${ratio(GOALS.rssRatio)} (flat)`, met(rssRatio <= GOALS.rssRatio)],
  ...deliveryTable(delivery),
];
const widths = table[0].map((_, c) => Math.max(...table.map((r) => r[c].length)));
const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c])).join(' | ')} |`;

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
  line(table[0]),
  line(widths.map((w) => '-'.repeat(w))),
  ...table.slice(1).map(line),
  '',
  `plan runs (wall / cpu ms): ${planBench.plan.map((t) => `${int(t.wall)} / ${int(t.cpu)}`).join(', ')}`,
  `bare runs (wall / cpu ms): ${planBench.bare.map((t) => `${int(t.wall)} / ${int(t.cpu)}`).join(', ')}`,
  `change set: ${JSON.stringify(planBench.summary.actions)} (the bare diff found ${JSON.stringify(planBench.bareCounts)})`,
  `peak RSS by phase, ${int(e2e.rows)}: ${phases(e2e)}`,
  `peak RSS by phase, ${int(small.rows)}: ${phases(small)}`,
  'peak RSS is the kernel\'s ru_maxrss of a child process that runs loadProject + openEngine + runSync.',
  '',
  ...formatDelivery(delivery),
  '',
];
process.stdout.write(out.join('\n'));
