/** Syncs that run after others (`schedule: { after: [...] }`): the checks of the graph, and the order to run in. */
import type { SyncConfig } from '../config/schema.ts';
import type { Sql } from '../warehouse/sql.ts';
import { timestampMs } from '../warehouse/timestamp.ts';
import { RunRefusedError, type ConfigIssue } from '../errors.ts';

/** The syncs a sync runs after (none unless its schedule is `after`). */
export function parentsOf(sync: Pick<SyncConfig, 'schedule'>): string[] {
  return typeof sync.schedule === 'object' && 'after' in sync.schedule ? sync.schedule.after : [];
}

/** A cycle through the syncs' `after` lists, as the names along it (first = last), or null. */
export function findCycle(syncs: readonly Pick<SyncConfig, 'name' | 'schedule'>[]): string[] | null {
  const byName = new Map(syncs.map((s) => [s.name, s]));
  const state = new Map<string, 'visiting' | 'done'>();
  const path: string[] = [];
  const visit = (name: string): string[] | null => {
    if (state.get(name) === 'done' || !byName.has(name)) return null;
    if (state.get(name) === 'visiting') return [...path.slice(path.indexOf(name)), name];
    state.set(name, 'visiting');
    path.push(name);
    for (const parent of parentsOf(byName.get(name)!)) {
      const cycle = visit(parent);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(name, 'done');
    return null;
  };
  for (const s of syncs) {
    const cycle = visit(s.name);
    if (cycle) return cycle;
  }
  return null;
}

/** The config problems of the `after` lists: unknown syncs, a sync after itself, cycles. */
export function dependencyIssues(syncs: readonly SyncConfig[]): ConfigIssue[] {
  const names = new Set(syncs.map((s) => s.name));
  const issues: ConfigIssue[] = [];
  syncs.forEach((sync, i) => {
    for (const parent of parentsOf(sync)) {
      if (parent === sync.name) issues.push({ path: `syncs[${i}].schedule.after`, message: `a sync cannot run after itself` });
      else if (!names.has(parent)) issues.push({ path: `syncs[${i}].schedule.after`, message: `unknown sync "${parent}"; the syncs in ebb.yml are: ${[...names].join(', ')}` });
    }
  });
  const cycle = issues.length === 0 ? findCycle(syncs) : null;
  if (cycle) {
    const at = syncs.findIndex((s) => s.name === cycle[0]);
    issues.push({ path: `syncs[${at}].schedule.after`, message: `the syncs run after each other in a cycle (${cycle.join(' → ')}), so none of them would ever run; break the cycle` });
  }
  return issues;
}

/**
 * The syncs in an order where each comes after the syncs it depends on (among those given), and
 * otherwise in the order given. A cycle (an admin's override can make one) keeps the given order
 * for the syncs on it.
 */
export function inDependencyOrder<T extends Pick<SyncConfig, 'name' | 'schedule'>>(syncs: readonly T[]): T[] {
  const byName = new Map(syncs.map((s) => [s.name, s]));
  const placed = new Set<string>();
  const visiting = new Set<string>();
  const order: T[] = [];
  const place = (sync: T) => {
    if (placed.has(sync.name) || visiting.has(sync.name)) return;
    visiting.add(sync.name);
    for (const parent of parentsOf(sync)) {
      const p = byName.get(parent);
      if (p) place(p);
    }
    visiting.delete(sync.name);
    placed.add(sync.name);
    order.push(sync);
  };
  syncs.forEach(place);
  return order;
}

/** The syncs among `parents` that have not finished a HEALTHY run since `lastRunAt` (ever, when null). */
export function notHealthySince(parents: string[], lastRunAt: number | null, lastHealthy: ReadonlyMap<string, number | null>): string[] {
  return parents.filter((p) => {
    const at = lastHealthy.get(p) ?? null;
    return at === null || (lastRunAt !== null && at <= lastRunAt);
  });
}

/** True while a sync's parents have run requests queued no later than this one, still unfinished (a worker runs them first). */
export async function parentsQueued(sql: Sql, sync: SyncConfig, requestId: string): Promise<boolean> {
  const parents = parentsOf(sync);
  if (parents.length === 0) return false;
  const [{ n }] = await sql.runAndRead('requests_open_before', { names: parents, request_id: requestId });
  return Number(n) > 0;
}

/** Refuses the run of a sync whose parents have not all completed HEALTHY since its last run (a task graph's request). */
export async function checkParentsHealthy(sql: Sql, sync: SyncConfig): Promise<void> {
  const parents = parentsOf(sync);
  if (parents.length === 0) return;
  const rows = await sql.runAndRead('schedule_runs');
  const lastHealthy = new Map(rows.map((r) => [String(r.sync_name), timestampMs(r.last_healthy_at)]));
  const last = timestampMs(rows.find((r) => r.sync_name === sync.name)?.last_started_at);
  const waiting = notHealthySince(parents, last, lastHealthy);
  if (waiting.length > 0) {
    throw new RunRefusedError('dependency_unhealthy', `sync ${sync.name} runs after ${waiting.join(', ')}, which did not complete HEALTHY since its last run; not run`);
  }
}
