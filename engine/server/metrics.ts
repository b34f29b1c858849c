/** `GET /metrics`: the numbers of ebb's tables in the Prometheus text format, read at each scrape. */
import { Gauge, Registry } from 'prom-client';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { syncMetrics } from '../ops/index.ts';
import type { ServerContext } from './http.ts';

const healths = ['PENDING', 'HEALTHY', 'INCOMPLETE', 'FAILED', 'DELAYED'];

/** The metrics of every sync, as a fresh registry (the tables are the source; nothing is kept between scrapes). */
async function collect(ctx: ServerContext): Promise<Registry> {
  const registry = new Registry();
  const gauge = (name: string, help: string, labelNames: string[]) => new Gauge({ name, help, labelNames, registers: [registry] });
  const runs = gauge('ebb_sync_runs', 'Runs recorded in sync_runs, by sync and status (HEALTHY, INCOMPLETE, FAILED, DELAYED, RUNNING)', ['sync', 'status']);
  const records = gauge('ebb_sync_records', 'Records ebb holds, by sync and apply state (the outcome of their last run)', ['sync', 'apply_state']);
  const failing = gauge('ebb_sync_failing_records', 'Records FAILED, SOURCE_FAILURE or NEEDS_REVIEW now', ['sync']);
  const health = gauge('ebb_sync_health', "1 for the sync's health now, 0 for the others", ['sync', 'health']);
  const paused = gauge('ebb_sync_paused', '1 when the sync is PAUSED', ['sync']);
  const duration = gauge('ebb_sync_last_run_duration_seconds', 'Duration of the last finished run', ['sync']);
  const success = gauge('ebb_sync_last_success_timestamp_seconds', 'When the last HEALTHY run finished (Unix time)', ['sync']);
  for (const m of await ctx.engines.with(syncMetrics)) {
    for (const [status, n] of Object.entries(m.runs)) runs.set({ sync: m.sync, status }, n);
    for (const [state, n] of Object.entries(m.records)) records.set({ sync: m.sync, apply_state: state }, n);
    failing.set({ sync: m.sync }, m.failingRecords);
    for (const h of healths) health.set({ sync: m.sync, health: h }, m.health === h ? 1 : 0);
    paused.set({ sync: m.sync }, m.status === 'PAUSED' ? 1 : 0);
    if (m.lastRunSeconds !== null) duration.set({ sync: m.sync }, m.lastRunSeconds);
    if (m.lastSuccessAt) success.set({ sync: m.sync }, m.lastSuccessAt.getTime() / 1000);
  }
  return registry;
}

export function mountMetrics(app: OpenAPIHono, ctx: ServerContext): void {
  app.get('/metrics', async (c) => {
    const registry = await collect(ctx);
    return c.body(await registry.metrics(), 200, { 'content-type': registry.contentType });
  });
}
