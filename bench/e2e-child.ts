/**
 * One full run of the bench sync, in a process of its own so that its peak RSS is the run's:
 * `node bin/run-ts.js bench/e2e-child.ts <project-dir>`. Prints one JSON line ({@link ChildReport}).
 */
import { performance } from 'node:perf_hooks';
import { loadProject } from '../engine/config/load.ts';
import { openEngine } from '../engine/engine.ts';
import { deploySyncs } from '../engine/catalog/deploy.ts';
import { runSync } from '../engine/run.ts';
import { SYNC } from './data.ts';

/** What the child reports; RSS figures in bytes, times in milliseconds. */
export interface ChildReport {
  health: string;
  planned: Record<string, number>;
  succeeded: number;
  /** Wall time of runSync, and of its plan, apply (until the plugin committed) and record phases. */
  ms: { run: number; plan: number; apply: number; record: number };
  /** RSS after loading the project and opening the warehouse, before the run. */
  baselineRss: number;
  /** The kernel's peak RSS of this process (getrusage ru_maxrss). */
  maxRss: number;
  /** The highest sampled RSS in each phase (sampled every 50 ms). */
  phaseRss: { plan: number; apply: number; record: number };
  /** The highest sampled JS memory (V8 heap plus external buffers): what RSS holds besides DuckDB and code. */
  jsPeak: number;
  error: string | null;
}

const dir = process.argv[2];
if (!dir) throw new Error('usage: e2e-child.ts <project-dir>');

const engine = await openEngine(await loadProject(dir));
const sync = engine.project.config.syncs.find((s) => s.name === SYNC)!;
await deploySyncs(engine);
globalThis.gc?.();
const baselineRss = process.memoryUsage.rss();

type Phase = 'plan' | 'apply' | 'record';
let phase: Phase = 'plan';
const phaseRss = { plan: 0, apply: 0, record: 0 };
let jsPeak = 0;
const sample = () => {
  const memory = process.memoryUsage();
  phaseRss[phase] = Math.max(phaseRss[phase], memory.rss);
  jsPeak = Math.max(jsPeak, memory.heapTotal + memory.external);
};
const sampler = setInterval(sample, 50);
const marks = { start: performance.now(), planned: 0, applied: 0 };

// The phases are the run's own (onPhase): apply ends once the plugin has committed (the file
// plugin writes its file at close), and record then writes history and state. Memory is sampled
// by the timer and at each phase's start, never per batch: that would add to what is timed.
const result = await runSync(engine, sync, {
  onPhase: (next) => {
    sample();
    if (next === 'apply') marks.planned = performance.now();
    if (next === 'record') marks.applied = performance.now();
    phase = next;
  },
});
const end = performance.now();
sample();
clearInterval(sampler);
await engine.close();

const report: ChildReport = {
  health: result.health,
  planned: result.planned,
  succeeded: result.counts.succeeded,
  ms: {
    run: end - marks.start,
    plan: marks.planned - marks.start,
    apply: marks.applied - marks.planned,
    record: end - marks.applied,
  },
  baselineRss,
  // ru_maxrss is in kilobytes on Linux.
  maxRss: process.resourceUsage().maxRSS * 1024,
  phaseRss,
  jsPeak,
  error: result.error,
};
process.stdout.write(`${JSON.stringify(report)}\n`);
