/**
 * Plan step vs bare diff. One DuckDB file holds the source and a state that matches a previous
 * full sync of it; the source then changes (10% changed, 2% removed, 5% new). Measured: ebb's
 * `plan()`, which writes the change set into `ebb.sync_changes`, against a hand-written
 * FULL OUTER JOIN of the source and a (key, md5) snapshot that writes its diff into a table.
 *
 * Alone: `node --expose-gc bin/run-ts.js bench/plan.ts [rows=1000000] [repeats=3]` prints each
 * repeat and the medians (wall and CPU) with their ratios.
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { loadProject } from '../engine/config/load.ts';
import { openEngine, type Engine } from '../engine/engine.ts';
import { deploySyncs } from '../engine/catalog/deploy.ts';
import { plan, sourceContext, type PlanSummary } from '../engine/plan/plan.ts';
import type { SyncConfig } from '../engine/config/schema.ts';
import { FIELDS, SOURCE_TABLE, SYNC, createSourceSql, expectedChanges, makeProject, modifySourceSql } from './data.ts';

/** The figures of the plan bench, in milliseconds. */
export interface PlanBench {
  rows: number;
  duckdbVersion: string;
  plan: Timing[];
  bare: Timing[];
  summary: PlanSummary;
  bareCounts: Record<string, number>;
}

const STATE = 'ebb.sync_record_state';
const json = `json_object(${FIELDS.map((f) => `'${f}', ${f}`).join(', ')})`;

/**
 * Fills the state as a successful first sync of the current source would have left it. The
 * record and its hash come from ebb's own transform statement, hashed as plan.sql.njk hashes:
 * md5 of the JSON text. The caller checks that a plan then finds nothing to do.
 */
async function seedState(engine: Engine, sync: SyncConfig): Promise<void> {
  const transform = engine.sql.render('transform', sourceContext(sync));
  await engine.sql.warehouse.run(
    `INSERT INTO ${STATE} (sync_name, record_key, app_identifier, record_hash, transformed_record, apply_state, apply_reason,
       last_action, failure_count, last_result, last_run_id, first_synced_at, last_synced_at)
     SELECT ?, __ebb_key, __ebb_key, md5((__ebb_record)::VARCHAR), __ebb_record, 'SUCCESS', 'NEW',
       'create', 0, NULL, 'bench-seed', now()::TIMESTAMP, now()::TIMESTAMP
     FROM (${transform.sql}) AS t`,
    [sync.name, ...transform.params],
  );
}

/** What the bare diff compares against: the key and the md5 of the row's JSON, nothing else. */
const snapshotSql = `CREATE OR REPLACE TABLE bench_snapshot AS SELECT id AS key, md5(${json}::VARCHAR) AS hash FROM ${SOURCE_TABLE}`;

/** The bare diff: new, changed and removed keys, with the new record, written into a table. */
const bareDiffSql = `
CREATE OR REPLACE TABLE bench_diff AS
WITH src AS (SELECT id AS key, ${json} AS record FROM ${SOURCE_TABLE}),
hashed AS (SELECT key, record, md5(record::VARCHAR) AS hash FROM src)
SELECT coalesce(h.key, s.key) AS key,
       CASE WHEN s.key IS NULL THEN 'new' WHEN h.key IS NULL THEN 'removed' ELSE 'changed' END AS kind,
       h.record, h.hash
FROM hashed h FULL OUTER JOIN bench_snapshot s ON h.key = s.key
WHERE s.key IS NULL OR h.key IS NULL OR h.hash <> s.hash`;

/** Wall time, and CPU time of the whole process (DuckDB's threads included), in milliseconds. */
export interface Timing {
  wall: number;
  cpu: number;
}

async function timed(job: () => Promise<unknown>): Promise<Timing> {
  globalThis.gc?.();
  const cpu = process.cpuUsage();
  const start = performance.now();
  await job();
  const wall = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return { wall, cpu: (used.user + used.system) / 1000 };
}

/** Runs the plan bench on a fresh project; `repeats` timings of each, interleaved. */
export async function benchPlan(rows: number, repeats = 3, log: (line: string) => void = () => {}): Promise<PlanBench> {
  const project = await makeProject('plan');
  const engine = await openEngine(await loadProject(project.dir));
  try {
    const sync = engine.project.config.syncs.find((s) => s.name === SYNC)!;
    await deploySyncs(engine);
    const wh = engine.sql.warehouse;
    log(`plan bench: generating ${rows} source rows and the state of a first sync`);
    await wh.run(createSourceSql(rows));
    await seedState(engine, sync);
    await wh.run(snapshotSql);
    await wh.run('CHECKPOINT');

    // The state must describe the source exactly, or every figure below is wrong.
    const check = await plan(engine.sql, sync, { runId: 'bench-check' });
    if (check.total !== 0) throw new Error(`the seeded state does not match the source: a plan finds ${JSON.stringify(check.actions)}`);

    for (const statement of modifySourceSql(rows)) await wh.run(statement);
    await wh.run('CHECKPOINT');

    const expected = expectedChanges(rows);
    const planTimes: Timing[] = [];
    const bareTimes: Timing[] = [];
    let summary: PlanSummary = { actions: {}, reasons: {}, total: 0 };
    // One untimed pass of each first, so that both start from the same warm caches.
    for (let i = -1; i < repeats; i++) {
      const runId = `bench-plan-${i + 1}`;
      // Each starts with an empty WAL, and pays for the checkpoint its own writes cause.
      await wh.run('CHECKPOINT');
      const p = await timed(async () => {
        summary = await plan(engine.sql, sync, { runId });
      });
      await engine.sql.run('clear_run', { table: 'sync_changes', run_id: runId });
      await wh.run('CHECKPOINT');
      const b = await timed(() => wh.run(bareDiffSql));
      if (i >= 0) {
        planTimes.push(p);
        bareTimes.push(b);
        log(`  repeat ${i + 1}: plan ${ms(p.wall)} (cpu ${ms(p.cpu)}), bare diff ${ms(b.wall)} (cpu ${ms(b.cpu)})`);
      }
    }
    for (const [action, n] of Object.entries(expected)) {
      if (summary.actions[action] !== n) throw new Error(`plan found ${JSON.stringify(summary.actions)}, expected ${JSON.stringify(expected)}`);
    }
    const bareCounts = Object.fromEntries((await wh.runAndRead('SELECT kind, count(*) AS n FROM bench_diff GROUP BY kind')).map((r) => [String(r.kind), Number(r.n)]));
    if (bareCounts.new !== expected.create || bareCounts.changed !== expected.update || bareCounts.removed !== expected.delete) {
      throw new Error(`the bare diff found ${JSON.stringify(bareCounts)}, expected ${JSON.stringify(expected)}`);
    }
    const [{ v }] = await wh.runAndRead('SELECT version() AS v');
    return { rows, duckdbVersion: String(v), plan: planTimes, bare: bareTimes, summary, bareCounts };
  } finally {
    await engine.close();
    await project.remove();
  }
}

/** Milliseconds as text: `1234 ms`. */
export function ms(n: number): string {
  return `${Math.round(n)} ms`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = Number(process.argv[2] ?? 1_000_000);
  const bench = await benchPlan(rows, Number(process.argv[3] ?? 3), (l) => process.stderr.write(`${l}\n`));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const [pw, bw] = [median(bench.plan.map((t) => t.wall)), median(bench.bare.map((t) => t.wall))];
  const [pc, bc] = [median(bench.plan.map((t) => t.cpu)), median(bench.bare.map((t) => t.cpu))];
  process.stdout.write(
    `${rows} rows, DuckDB ${bench.duckdbVersion}: plan ${ms(pw)} (cpu ${ms(pc)}), bare diff ${ms(bw)} (cpu ${ms(bc)}); ` +
      `plan/bare ${(pw / bw).toFixed(2)} wall, ${(pc / bc).toFixed(2)} cpu\n`,
  );
}
