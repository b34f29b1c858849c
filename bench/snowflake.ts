/**
 * The Snowflake path, through the wire emulator: a first run of the bench's `contacts` sync (every
 * record a create) at two source sizes, phase by phase (plan, apply, record), timed and with the
 * round trips that the emulator counted (logins, queries, chunk GETs, …). What it shows: plan and
 * record are set-based SQL, so their round trips do not depend on the number of rows; apply
 * streams the change set in result chunks (one GET per chunk, as the driver fetches them) and
 * writes in bulk, many batches per statement (group commit): outcomes (a row per run of records
 * that succeeded, else per record) and in-flight marks. Its other round trips are constant too.
 *
 * The times are the emulator's (DuckDB underneath, JSON over local HTTP), not Snowflake's; the
 * round trips are what the real driver sends, which is what a real account would see.
 *
 *   node bin/run-ts.js bench/snowflake.ts [rows...]      (default 10000 100000)
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { stringify } from 'yaml';
import { SnowflakeEmulator } from '../test/snowflake/emulator.ts';
import { loadProject } from '../engine/config/load.ts';
import { openEngine, pluginContext } from '../engine/engine.ts';
import { deploySyncs } from '../engine/catalog/deploy.ts';
import { newRunId } from '../engine/run.ts';
import { plan } from '../engine/plan/plan.ts';
import { applyChanges } from '../engine/apply/apply.ts';
import { recordRun } from '../engine/record/record.ts';
import { CONTACTS_SYNC, createSourceSql } from './data.ts';

/** One phase of a run: its wall time and the requests the emulator answered meanwhile. */
export interface SnowflakePhase {
  ms: number;
  /** Requests per endpoint: query, chunk, login, … */
  requests: Record<string, number>;
  roundTrips: number;
  /** Of the queries: the bulk appends of outcomes and in-flight marks (they grow with the records, by design: bulk, never one per record). */
  appends: number;
}

export interface SnowflakeBenchSize {
  rows: number;
  /** The emulator's result chunk size, in rows. */
  chunkRows: number;
  plan: SnowflakePhase;
  apply: SnowflakePhase;
  record: SnowflakePhase;
  planned: Record<string, number>;
}

export interface SnowflakeBench {
  sizes: SnowflakeBenchSize[];
  /** Whether each phase's round trips, without chunk GETs and bulk appends, are the same at every size. */
  flat: { plan: boolean; apply: boolean; record: boolean };
}

/** Round trips that do not depend on the number of rows: all but chunk GETs and bulk appends. */
export const fixedRoundTrips = (p: SnowflakePhase) => p.roundTrips - (p.requests.chunk ?? 0) - p.appends;

async function benchSize(rows: number, chunkRows: number, log: (line: string) => void): Promise<SnowflakeBenchSize> {
  const emulator = await SnowflakeEmulator.start({ chunkRows });
  const dir = await mkdtemp(join(tmpdir(), 'ebb-bench-snowflake-'));
  try {
    log(`snowflake bench: ${rows.toLocaleString('en-US')} rows, emulator at ${emulator.url}`);
    await emulator.sql(createSourceSql(rows));
    await writeFile(
      join(dir, 'ebb.yml'),
      stringify({
        name: 'bench_snowflake',
        warehouse: { type: 'snowflake', account: 'emulated', username: 'bench', password: 'bench', database: 'DB', access_url: emulator.url },
        connections: { out: { plugin: 'file', config: { directory: './out' } } },
        syncs: [CONTACTS_SYNC],
      }),
    );
    const project = await loadProject(dir);
    const engine = await openEngine(project);
    try {
      await deploySyncs(engine);
      const sync = project.config.syncs[0];
      const { sql } = engine;
      const runId = newRunId();
      await sql.run('run_insert', { run_id: runId, sync_name: sync.name, trigger: 'manual' });

      const phase = async (name: string, job: () => Promise<unknown>): Promise<SnowflakePhase> => {
        emulator.resetCounts();
        const start = performance.now();
        await job();
        const ms = performance.now() - start;
        const appends = emulator.statements.filter((s) => /^INSERT INTO "[^"]+"\."SYNC_(OUTCOMES|BATCH_OUTCOMES|INFLIGHT)"/.test(s.sql)).length;
        const result = { ms, requests: { ...emulator.requests }, roundTrips: emulator.roundTrips, appends };
        log(`  ${name}: ${Math.round(ms)} ms, ${result.roundTrips} round trips ${JSON.stringify(result.requests)} (${appends} bulk appends)`);
        return result;
      };

      let planned: Record<string, number> = {};
      let lastSeq = 0;
      const planPhase = await phase('plan', async () => {
        ({ actions: planned, total: lastSeq } = await plan(sql, sync, { runId }));
      });
      const plugin = project.plugins.get('out')!;
      const { connection: _c, ...destination } = sync.destination;
      const applyPhase = await phase('apply', async () => {
        const session = await plugin.open({ ...pluginContext(engine, 'out'), sync: sync.name, strategy: sync.strategy, destination, fields: Object.keys(sync.mapping) });
        await applyChanges({ sql, runId, lastSeq, session, strategy: sync.strategy, batchSize: sync.batch_size, concurrency: 4, retryDelaysMs: [] });
        await session.close(true);
      });
      let health = '';
      const recordPhase = await phase('record', async () => {
        ({ health } = await recordRun(sql, { runId, syncName: sync.name, planned, error: null, idempotentCreate: false }));
      });
      if (health !== 'HEALTHY' || planned.create !== rows) throw new Error(`the bench run was ${health}, planned ${JSON.stringify(planned)}; expected ${rows} creates, HEALTHY`);
      return { rows, chunkRows, plan: planPhase, apply: applyPhase, record: recordPhase, planned };
    } finally {
      await engine.close();
    }
  } finally {
    await emulator.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs the bench at each size (default 10,000 and 100,000 rows). */
export async function benchSnowflake(sizes: number[] = [10_000, 100_000], log: (line: string) => void = () => {}, chunkRows = 1000): Promise<SnowflakeBench> {
  const results: SnowflakeBenchSize[] = [];
  for (const rows of sizes) results.push(await benchSize(rows, chunkRows, log));
  const same = (pick: (s: SnowflakeBenchSize) => SnowflakePhase) => new Set(results.map((s) => fixedRoundTrips(pick(s)))).size === 1;
  return { sizes: results, flat: { plan: same((s) => s.plan), apply: same((s) => s.apply), record: same((s) => s.record) } };
}

/** The bench as a text table: one row per phase and size. */
export function formatSnowflakeBench(bench: SnowflakeBench): string {
  const int = (n: number) => Math.round(n).toLocaleString('en-US');
  const rows: string[][] = [['phase', 'rows', 'time', 'round trips', 'of which chunk GETs', 'bulk appends', 'other (constant?)']];
  for (const name of ['plan', 'apply', 'record'] as const) {
    for (const s of bench.sizes) {
      const p = s[name];
      rows.push([name, int(s.rows), `${int(p.ms)} ms`, int(p.roundTrips), int(p.requests.chunk ?? 0), int(p.appends), `${int(fixedRoundTrips(p))} (${bench.flat[name] ? 'same at every size' : 'GROWS'})`]);
    }
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c])).join(' | ')} |`;
  const chunk = bench.sizes[0]?.chunkRows ?? 0;
  return [
    `Snowflake path through the wire emulator (DuckDB underneath): first run of the contacts sync, every record a create; result chunks of ${int(chunk)} rows`,
    line(rows[0]),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.slice(1).map(line),
    'Round trips are the requests the emulator answered (what the real driver sends); times are the emulator\'s, not Snowflake\'s.',
    '',
  ].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.env.SF_OCSP_RESPONSE_CACHE_DIR ??= await mkdtemp(join(tmpdir(), 'ebb-sf-ocsp-'));
  const sizes = process.argv.slice(2).map(Number).filter((n) => Number.isInteger(n) && n > 0);
  const bench = await benchSnowflake(sizes.length ? sizes : undefined, (l) => process.stderr.write(`${l}\n`));
  process.stdout.write(formatSnowflakeBench(bench));
}
