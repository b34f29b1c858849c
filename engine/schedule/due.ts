/**
 * When a sync is due: pure functions of its schedule, its status, its last run and a clock, so
 * that they can be tested with a fake one. `ebb scheduler` (scheduler.ts) calls them on each tick.
 */
import { Cron } from 'croner';
import type { SyncConfig } from '../config/schema.ts';
import type { Status } from '../catalog/catalog.ts';
import { notHealthySince } from './dependencies.ts';

export type Schedule = SyncConfig['schedule'];

/** What the scheduler knows of a sync when it decides. Times are milliseconds since the epoch. */
export interface DueInput {
  schedule: Schedule;
  status: Status;
  /** When its last run started, whatever started it; null when it never ran. */
  lastRunAt: number | null;
  /** The health of its last run (PENDING when it never ran). */
  health?: string;
  /** When the scheduler started: what an interval or a cron counts from when the sync never ran. */
  startedAt: number;
  now: number;
  /** For `after`: when each sync it depends on last finished a HEALTHY run (null: never). */
  parents?: ReadonlyMap<string, number | null>;
}

/**
 * A decision. `run`: start a run now. `wait`: not yet, `next` says when. `skip`: the scheduler
 * leaves the sync alone (paused, manual, completed, a bad cron). `live`: the source decides, see
 * the fingerprint in scheduler.ts.
 */
export type Decision =
  | { action: 'run'; reason: string; /** When it became due. */ since: number }
  | { action: 'wait'; reason: string; /** Null: when the syncs it runs after are done. */ next: number | null }
  | { action: 'skip'; reason: string }
  | { action: 'live'; reason: string };

const units: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `15m` → 900000. The schema (config/schema.ts) already checked the shape. */
export function parseInterval(text: string): number {
  const m = /^(\d+)\s*(s|m|h|d)$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not an interval like 30s, 15m, 2h or 1d`);
  return Number(m[1]) * units[m[2]];
}

/** A duration as people read it in a log: `850ms`, `4.2s`, `15m02s`, `2h05m`, `3d04h`. */
export function formatDuration(ms: number): string {
  const abs = Math.max(0, Math.round(ms));
  if (abs < 1000) return `${abs}ms`;
  if (abs < 10_000) return `${(abs / 1000).toFixed(1)}s`;
  const s = Math.floor(abs / 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d${pad(Math.floor((s % 86_400) / 3600))}h`;
}

/** A time in the log: UTC, to the second, like the warehouse's timestamps. */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

/** A schedule as ebb.yml writes it: `every 15m`, `cron "0 * * * *"`, `live`. */
export function describeSchedule(schedule: Schedule): string {
  if (typeof schedule === 'string') return schedule;
  if ('after' in schedule) return `after ${schedule.after.join(', ')}`;
  return 'every' in schedule ? `every ${schedule.every}` : `cron "${schedule.cron}"`;
}

const crons = new Map<string, Cron>();

/**
 * The parsed cron of a pattern. Five fields, or six with seconds first; in UTC, like every
 * timestamp of ebb. Throws on a bad pattern with croner's reason.
 */
export function cronOf(pattern: string): Cron {
  let cron = crons.get(pattern);
  if (!cron) {
    // No function: croner starts no timer, it only computes the next times.
    cron = new Cron(pattern, { timezone: 'UTC', paused: true });
    crons.set(pattern, cron);
  }
  return cron;
}

/** The first time after `base` that the schedule fires (every or cron), or null when it never will. */
export function nextTime(schedule: { every: string } | { cron: string }, base: number): number | null {
  if ('every' in schedule) return base + parseInterval(schedule.every);
  return cronOf(schedule.cron).nextRun(new Date(base))?.getTime() ?? null;
}

/** Decides what to do with a sync now. A run that is late runs once, however many times it was missed. */
export function decide(input: DueInput): Decision {
  const { schedule, status, lastRunAt, now } = input;
  if (schedule === 'manual') return { action: 'skip', reason: 'manual schedule, not run by the scheduler' };
  if (status !== 'ACTIVE') {
    const why = status === 'COMPLETED' ? 'its `once` run is done' : status === 'ERROR' ? 'its last runs failed; `ebb resume` after fixing the cause' : '`ebb resume` to schedule it again';
    return { action: 'skip', reason: `${status} (${why})` };
  }
  if (schedule === 'live') return { action: 'live', reason: 'live' };
  if (schedule === 'once') {
    if (lastRunAt === null) return { action: 'run', reason: 'once, never ran', since: input.startedAt };
    return { action: 'skip', reason: `once, already ran (${input.health ?? 'unknown health'}) and not HEALTHY; \`ebb run\` it by hand to try again` };
  }
  const what = describeSchedule(schedule);
  if ('after' in schedule) return decideAfter(schedule.after, input, what);
  const base = lastRunAt ?? input.startedAt;
  let next: number | null;
  try {
    next = nextTime(schedule, base);
  } catch (e) {
    return { action: 'skip', reason: `invalid ${what}: ${(e as Error).message}` };
  }
  if (next === null) return { action: 'skip', reason: `${what} never fires again` };
  const since = lastRunAt === null ? `never ran, scheduler started ${formatDuration(now - input.startedAt)} ago` : `last run ${formatDuration(now - lastRunAt)} ago`;
  if (now >= next) return { action: 'run', reason: `${what}, ${since}`, since: next };
  return { action: 'wait', reason: what, next };
}

/**
 * A sync that runs after others: due once every one of them has finished a HEALTHY run since this
 * sync's last run started (any time, when it never ran). A parent that failed holds it back.
 */
function decideAfter(parents: string[], input: DueInput, what: string): Decision {
  const lastHealthy = input.parents ?? new Map<string, number | null>();
  const waiting = notHealthySince(parents, input.lastRunAt, lastHealthy);
  if (waiting.length > 0) {
    const since = input.lastRunAt === null ? 'yet' : 'since its last run';
    return { action: 'wait', reason: `${what}: ${waiting.join(', ')} not HEALTHY ${since}`, next: null };
  }
  return { action: 'run', reason: `${what}: all HEALTHY since its last run`, since: Math.max(...parents.map((p) => lastHealthy.get(p)!)) };
}
