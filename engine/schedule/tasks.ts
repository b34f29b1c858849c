/**
 * `ebb deploy` on Snowflake: one task per sync with an `every`, `cron` or `live` schedule. A task
 * cannot call ebb (Snowflake's procedures cannot reach the network), so it queues a run: it inserts
 * a row into `run_requests`, and `ebb worker` claims the row and runs the sync (worker.ts).
 *
 * - `every 15m` → `SCHEDULE = '15 MINUTES'`; Snowflake schedules in whole minutes (at least 1, at
 *   most 11,520), so seconds round up to minutes, and an interval under a minute is refused.
 * - `cron "0 * * * *"` → `SCHEDULE = 'USING CRON 0 * * * * UTC'` (ebb's crons are UTC).
 * - `live` → a stream on the source table, `EBB_<SYNC>_STREAM`, and a task that checks it every
 *   minute (`WHEN SYSTEM$STREAM_HAS_DATA`, evaluated without a warehouse) and whose INSERT reads
 *   the stream, which consumes it. A `query:` source has no table to stream: refused.
 * - `after: [a, b]` → a task with no schedule, `AFTER` the tasks of a and b, in their graph
 *   (task-graph.ts); the worker runs it after their runs.
 *
 * Which tasks are ebb's: those whose COMMENT is `ebb:<project>:<sync>`, found with SHOW TASKS in the
 * state schema. Snowflake itself is the registry, not a table of ebb's: DDL commits on its own on
 * Snowflake, so a registry row could disagree with the tasks that exist (a deploy that failed
 * between the two, a task that an admin dropped); SHOW TASKS cannot. A task that exists and matches
 * (schedule, condition, statement, warehouse, comment, state) is left alone, so that a deploy
 * without changes runs no DDL.
 */
import { createHash } from 'node:crypto';
import type { Engine } from '../engine.ts';
import type { SyncConfig } from '../config/schema.ts';
import type { Row } from '../warehouse/warehouse.ts';
import type { Statement } from '../warehouse/sql.ts';
import { readCatalog, effectiveSync, type CatalogEntry } from '../catalog/catalog.ts';
import { relationParts } from '../plan/plan.ts';
import { ConfigError, WarehouseError, type ConfigIssue } from '../errors.ts';
import { redact } from '../redact.ts';
import { quoteSnowflake } from '../warehouse/snowflake.ts';
import { cronOf, describeSchedule, parseInterval } from './due.ts';
import { afterSpecs, orderGraphSteps, predecessorsOf } from './task-graph.ts';

/** How often a live sync's task checks its stream. The check needs no warehouse; only a firing does. */
export const LIVE_SCHEDULE = '1 MINUTE';
/** Snowflake's longest interval schedule, in minutes (8 days). */
const MAX_MINUTES = 11_520;

/** The task that a sync should have. */
export interface TaskSpec {
  sync: string;
  /** EBB_<SYNC>: see taskName(). */
  name: string;
  /** Snowflake's SCHEDULE text. */
  schedule: string;
  /** `ebb:<project>:<sync>`: how deploy knows its tasks. */
  comment: string;
  /** The virtual warehouse (`warehouse:` in ebb.yml), or null for a serverless task. */
  warehouse: string | null;
  /** The trigger of the runs it queues: `task`, or `live` for a stream's task. */
  trigger: 'task' | 'live';
  /** For a live sync: its stream, and the table, view or dynamic table it watches. */
  stream: string | null;
  table: string | null;
  /** False for a paused sync: its task exists, suspended. */
  resume: boolean;
  /** What ebb.yml says, for messages: `every 15m`, `cron "0 * * * *"`, `live`. */
  source: string;
  /** For `after`: the tasks it runs after (AFTER, no SCHEDULE); empty otherwise. See task-graph.ts. */
  after: string[];
  /** The root task of its graph: itself unless it runs after others. */
  root: string;
  /** E.g. that an interval was rounded up to whole minutes. */
  note?: string;
}

/** One change that deploy makes (or would make) to the tasks and streams. */
export interface TaskStep {
  object: 'task' | 'stream';
  name: string;
  /** The sync it serves; for a removal, the sync named in its comment. */
  sync: string;
  kind: 'create' | 'update' | 'replace' | 'resume' | 'suspend' | 'unchanged' | 'remove';
  /** What it is or why it changes, for people. */
  detail: string;
  /** The DDL, in order. */
  statements: Statement[];
}

export interface TaskPlan {
  /** The schema of the tasks and streams: the state schema. */
  schema: string;
  steps: TaskStep[];
}

/**
 * The task's name: EBB_ and the sync's name, upper-cased, with anything but letters, digits and _
 * as _. A name that does not map one to one (upper case, other characters, very long) gets a
 * short hash of the exact name, so that two syncs never share a task.
 */
export function taskName(sync: string): string {
  const base = sync.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
  const exact = /^[a-z0-9_]+$/.test(sync) && base.length <= 200;
  return `EBB_${base.slice(0, 200)}${exact ? '' : `_${createHash('sha256').update(sync).digest('hex').slice(0, 6).toUpperCase()}`}`;
}

/** The stream of a live sync. */
export function streamName(sync: string): string {
  return `${taskName(sync)}_STREAM`;
}

/** Cron nicknames that croner takes and Snowflake does not. */
const NICKNAMES: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

/** Snowflake's SCHEDULE for an `every` or `cron` schedule; throws a message when Snowflake cannot run it. */
export function snowflakeSchedule(schedule: SyncConfig['schedule']): { schedule: string; note?: string } {
  if (typeof schedule === 'string' || 'after' in schedule) throw new Error(`a ${describeSchedule(schedule)} schedule has no schedule of its own`);
  if ('every' in schedule) {
    const ms = parseInterval(schedule.every);
    if (ms < 60_000) {
      throw new Error(`every ${schedule.every} is shorter than a minute, the shortest schedule of a Snowflake task; use every 1m or more (or \`ebb scheduler\`, which runs seconds)`);
    }
    const minutes = Math.ceil(ms / 60_000);
    if (minutes > MAX_MINUTES) throw new Error(`every ${schedule.every} is longer than 8 days (11520 minutes), the longest interval of a Snowflake task; use a cron schedule`);
    return {
      schedule: `${minutes} MINUTE${minutes === 1 ? '' : 'S'}`,
      ...(ms % 60_000 !== 0 && { note: `every ${schedule.every} rounded up to ${minutes} minutes: Snowflake schedules in whole minutes` }),
    };
  }
  const pattern = NICKNAMES[schedule.cron.trim().toLowerCase()] ?? schedule.cron.trim();
  try {
    cronOf(pattern);
  } catch (e) {
    throw new Error(`cron "${schedule.cron}" is not a valid cron: ${(e as Error).message}`, { cause: e });
  }
  const fields = pattern.split(/\s+/);
  if (fields.length === 6) {
    if (fields[0] !== '0') throw new Error(`cron "${schedule.cron}" has a seconds field; a Snowflake task's cron has five fields (minute hour day month weekday)`);
    fields.shift();
  }
  if (fields.length !== 5) throw new Error(`cron "${schedule.cron}": a Snowflake task's cron has five fields (minute hour day month weekday)`);
  return { schedule: `USING CRON ${fields.join(' ')} UTC` };
}

/**
 * The tasks that the syncs should have once the deploy is committed: each sync of the code (with
 * the catalog's admin overrides on top, e.g. a schedule changed in the warehouse; an admin's own
 * definition where the catalog keeps it), and each sync that an admin created in the catalog. A
 * sync of the code's past (orphaned: paused or deleted by the deploy) has none. Throws a
 * ConfigError (exit 3) naming every schedule that Snowflake cannot run.
 */
export function desiredTasks(project: Engine['project'], catalog: CatalogEntry[]): TaskSpec[] {
  const { config } = project;
  const byName = new Map(catalog.map((e) => [e.name, e]));
  const warehouse = config.warehouse.type === 'snowflake' ? (config.warehouse.warehouse ?? null) : null;
  const chosen: Array<{ sync: SyncConfig; status: string; path: string }> = [];
  const inCode = new Set<string>();
  config.syncs.forEach((sync, i) => {
    inCode.add(sync.name);
    const entry = byName.get(sync.name) ?? (sync.renamed_from ? byName.get(sync.renamed_from) : undefined);
    const effective = entry?.origin === 'admin' ? effectiveSync(entry) : entry ? effectiveSync({ ...entry, definition: sync }) : sync;
    if (effective) chosen.push({ sync: effective, status: entry?.status ?? 'ACTIVE', path: `syncs[${i}].schedule` });
  });
  for (const entry of catalog) {
    if (entry.origin !== 'admin' || inCode.has(entry.name)) continue;
    const effective = effectiveSync(entry);
    if (effective) chosen.push({ sync: effective, status: entry.status, path: `catalog sync ${entry.name} (created by an admin): schedule` });
  }
  const issues: ConfigIssue[] = [];
  const specs: TaskSpec[] = [];
  const children: Array<{ sync: SyncConfig; path: string }> = [];
  const statusOf = new Map(chosen.map((c) => [c.sync.name, c.status]));
  const commonOf = (sync: SyncConfig) => {
    const name = taskName(sync.name);
    return { sync: sync.name, name, comment: `ebb:${config.name}:${sync.name}`, warehouse, resume: statusOf.get(sync.name) !== 'PAUSED', source: describeSchedule(sync.schedule), after: [], root: name };
  };
  for (const { sync, path } of chosen) {
    const { schedule } = sync;
    if (schedule === 'manual' || schedule === 'once') continue;
    if (typeof schedule === 'object' && 'after' in schedule) {
      children.push({ sync, path });
      continue;
    }
    const common = commonOf(sync);
    if (schedule === 'live') {
      if (!sync.source.table) {
        issues.push({ path, message: `live: a Snowflake stream needs a table, and sync ${sync.name} reads a query; give source.table, or use every/cron` });
        continue;
      }
      specs.push({ ...common, schedule: LIVE_SCHEDULE, trigger: 'live', stream: streamName(sync.name), table: sync.source.table });
      continue;
    }
    try {
      const { schedule: text, note } = snowflakeSchedule(schedule);
      specs.push({ ...common, schedule: text, trigger: 'task', stream: null, table: null, ...(note && { note }) });
    } catch (e) {
      issues.push({ path, message: (e as Error).message });
    }
  }
  const make = (sync: SyncConfig, parents: TaskSpec[]): TaskSpec => ({ ...commonOf(sync), schedule: '', trigger: 'task', stream: null, table: null, after: parents.map((p) => p.name), root: parents[0].root });
  specs.push(...afterSpecs(children, specs, make, issues));
  if (issues.length > 0) throw new ConfigError(issues);
  return specs;
}

/** The template context of a task or stream statement. */
function contextOf(spec: TaskSpec, replaceStream = false, source?: SourceObject): Record<string, unknown> {
  return {
    task: {
      name: spec.name,
      sync_name: spec.sync,
      comment: spec.comment,
      schedule: spec.schedule,
      warehouse: spec.warehouse,
      trigger: spec.trigger,
      stream: spec.stream,
      replace_stream: replaceStream,
      source_kind: source?.kind ?? 'TABLE',
      after: spec.after,
    },
    source: { table: spec.table ? relationParts(spec.table) : null, query: null },
  };
}

const squash = (s: unknown) => String(s ?? '').replace(/\s+/g, ' ').trim();

/** A name as Snowflake stores it: a lower-case word upper-cased, anything else exactly (quoteSnowflake's rule). */
const stored = (name: string) => quoteSnowflake(name).slice(1, -1).replaceAll('""', '"');

/** Whether a stream's table (SHOW STREAMS: DB.SCHEMA.TABLE) is the source table as ebb.yml names it. */
function sameTable(shown: unknown, table: string): boolean {
  const want = relationParts(table).map(stored);
  const have = String(shown ?? '').split('.');
  return want.length <= have.length && want.every((part, i) => have[have.length - want.length + i] === part);
}

/** The fields of a task that SHOW TASKS reports, as the CREATE statement of a spec sets them. */
function expected(statement: Statement, spec: TaskSpec) {
  const m = /\n(?:WHEN (.*)\n)?AS ([\s\S]*)$/.exec(statement.sql);
  return { condition: squash(m?.[1]), definition: squash(m?.[2]), warehouse: spec.warehouse === null ? '' : stored(spec.warehouse) };
}

const UNIT_SECONDS: Record<string, number> = { SECOND: 1, SECONDS: 1, S: 1, MINUTE: 60, MINUTES: 60, M: 60, HOUR: 3600, HOURS: 3600, H: 3600 };

/**
 * A schedule as a comparable value, however SHOW TASKS spells it: `15 MINUTES`, `15 minute` and
 * `15M` are one schedule (in seconds), and a cron compares without case or extra spaces.
 */
export function scheduleKey(schedule: unknown): string {
  const text = squash(schedule).toUpperCase();
  const interval = /^(\d+)\s*([A-Z]+)$/.exec(text);
  const unit = interval && UNIT_SECONDS[interval[2]];
  return interval && unit ? `${Number(interval[1]) * unit}S` : text;
}

/** Which fields of an existing task differ from the spec's. */
function differences(row: Row, statement: Statement, spec: TaskSpec): string[] {
  const want = expected(statement, spec);
  const changed: string[] = [];
  if (scheduleKey(row.schedule) !== scheduleKey(spec.schedule)) changed.push('schedule');
  if (squash(row.condition) !== want.condition) changed.push('condition');
  if (squash(row.definition) !== want.definition) changed.push('statement');
  if (squash(row.warehouse) !== want.warehouse) changed.push('warehouse');
  if (String(row.comment ?? '') !== spec.comment) changed.push('comment');
  if (predecessorsOf(row).sort().join() !== [...spec.after].sort().join()) changed.push('after');
  return changed;
}

/** What a live sync's source is, as SHOW reports it: what its stream is ON. */
export interface SourceObject {
  kind: 'TABLE' | 'VIEW' | 'DYNAMIC TABLE';
  changeTracking: boolean;
}

/** SHOW STREAMS' source_type for each kind of source. */
const SOURCE_TYPES: Record<SourceObject['kind'], string> = { TABLE: 'Table', VIEW: 'View', 'DYNAMIC TABLE': 'Dynamic Table' };

/**
 * What the source of each live sync is (a dbt model may be a table, a view or a dynamic table),
 * with SHOW VIEWS, SHOW DYNAMIC TABLES and SHOW TABLES, which need no warehouse. Throws a
 * ConfigError (exit 3) for a source that is none of them, and for a dynamic table that refreshes
 * fully, on which Snowflake has no stream.
 */
async function sourceObjects(engine: Engine, specs: TaskSpec[]): Promise<Map<string, SourceObject>> {
  const found = new Map<string, SourceObject>();
  const issues: ConfigIssue[] = [];
  for (const spec of specs) {
    if (!spec.table) continue;
    const parts = relationParts(spec.table);
    const name = stored(parts[parts.length - 1]);
    const context = { name, scope: parts.slice(0, -1) };
    const path = `syncs[${Math.max(0, engine.project.config.syncs.findIndex((s) => s.name === spec.sync))}].schedule`;
    let object: (SourceObject & { refreshMode?: string }) | undefined;
    for (const [what, kind] of [['VIEWS', 'VIEW'], ['DYNAMIC TABLES', 'DYNAMIC TABLE'], ['TABLES', 'TABLE']] as const) {
      const row = (await engine.sql.runAndRead('source_object_list', { ...context, what })).find((r) => r.name === name && (kind !== 'TABLE' || r.is_dynamic !== 'Y'));
      if (!row) continue;
      object = { kind, changeTracking: String(row.change_tracking ?? '').toUpperCase() === 'ON', refreshMode: String(row.refresh_mode ?? '').toUpperCase() };
      break;
    }
    if (!object) {
      issues.push({ path, message: `live: the source ${spec.table} of sync ${spec.sync} is not a table, view or dynamic table that ebb's role can see; a stream needs one` });
    } else if (object.kind === 'DYNAMIC TABLE' && object.refreshMode === 'FULL') {
      issues.push({ path, message: `live: ${spec.table} is a dynamic table that refreshes fully (REFRESH_MODE = FULL), and Snowflake has streams only on dynamic tables that refresh incrementally; make it incremental, or use every/cron` });
    } else found.set(spec.sync, { kind: object.kind, changeTracking: object.changeTracking });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return found;
}

/**
 * Compares the tasks and streams that the syncs should have with those in the state schema;
 * changes nothing. Throws a ConfigError for a schedule that Snowflake cannot run, or a live
 * source that cannot have a stream.
 */
export async function planTasks(engine: Engine): Promise<TaskPlan> {
  const { sql, project } = engine;
  const specs = desiredTasks(project, await readCatalog(sql));
  const sources = await sourceObjects(engine, specs);
  const prefix = `ebb:${project.config.name}:`;
  const tasks = await sql.runAndRead('task_list');
  const streams = await sql.runAndRead('task_stream_list');
  const render = (name: string, spec: TaskSpec, replace = false) => sql.render(name, contextOf(spec, replace, sources.get(spec.sync)));
  const steps: TaskStep[] = [];
  const where = (spec: TaskSpec) => `${spec.source} → ${spec.after.length ? `AFTER ${spec.after.join(', ')}` : `SCHEDULE '${spec.schedule}'`}${spec.stream ? ` WHEN ${spec.stream} has data` : ''}, ${spec.warehouse ? `warehouse ${stored(spec.warehouse)}` : 'serverless'}${spec.note ? ` (${spec.note})` : ''}`;
  for (const spec of specs) {
    const source = sources.get(spec.sync);
    if (spec.stream && spec.table && source) {
      const existing = streams.find((s) => s.name === spec.stream);
      const on = `on ${source.kind === 'TABLE' ? '' : `${source.kind.toLowerCase()} `}${spec.table}`;
      // Creating the stream turns change tracking on, which takes the source's owner (a view's base tables too).
      const tracking = source.changeTracking ? '' : `; change tracking is off on ${spec.table}: the stream turns it on, which needs ownership of it (or, as its owner: ALTER ${source.kind} … SET CHANGE_TRACKING = TRUE)`;
      if (!existing) steps.push({ object: 'stream', name: spec.stream, sync: spec.sync, kind: 'create', detail: on + tracking, statements: [render('task_stream_create', spec)] });
      else if (!sameTable(existing.table_name, spec.table) || String(existing.source_type ?? 'Table') !== SOURCE_TYPES[source.kind]) {
        steps.push({ object: 'stream', name: spec.stream, sync: spec.sync, kind: 'replace', detail: `${on} (it watched ${String(existing.source_type ?? 'Table').toLowerCase()} ${String(existing.table_name)})${tracking}`, statements: [render('task_stream_create', spec, true)] });
      } else if (String(existing.stale).toLowerCase() === 'true') {
        // A stale stream cannot be read; the run it triggers compares the whole source, so recreating it misses no change.
        steps.push({ object: 'stream', name: spec.stream, sync: spec.sync, kind: 'replace', detail: `${on} (it was stale: not read within the source's retention period; recreated)`, statements: [render('task_stream_create', spec, true)] });
      } else steps.push({ object: 'stream', name: spec.stream, sync: spec.sync, kind: 'unchanged', detail: on, statements: [] });
    }
    const create = render('task_create', spec);
    const state = render(spec.resume ? 'task_resume' : 'task_suspend', spec);
    const existing = tasks.find((t) => t.name === spec.name);
    const paused = spec.resume ? '' : '; suspended: the sync is paused';
    if (!existing) {
      steps.push({ object: 'task', name: spec.name, sync: spec.sync, kind: 'create', detail: where(spec) + paused, statements: spec.resume ? [create, state] : [create] });
      continue;
    }
    const changed = differences(existing, create, spec);
    const started = existing.state === 'started';
    if (changed.length > 0) steps.push({ object: 'task', name: spec.name, sync: spec.sync, kind: 'update', detail: `${changed.join(', ')} changed: ${where(spec)}${paused}`, statements: spec.resume ? [create, state] : [create] });
    else if (started !== spec.resume) steps.push({ object: 'task', name: spec.name, sync: spec.sync, kind: spec.resume ? 'resume' : 'suspend', detail: spec.resume ? 'resumed' : 'suspended: the sync is paused', statements: [state] });
    else steps.push({ object: 'task', name: spec.name, sync: spec.sync, kind: 'unchanged', detail: `${where(spec)}${spec.resume ? '' : '; suspended'}`, statements: [] });
  }
  const wanted = new Set(specs.map((s) => s.name));
  const wantedStreams = new Set(specs.map((s) => s.stream).filter(Boolean));
  for (const row of tasks) {
    const comment = String(row.comment ?? '');
    if (!comment.startsWith(prefix) || wanted.has(String(row.name))) continue;
    const sync = comment.slice(prefix.length);
    const task = { name: String(row.name) };
    steps.push({ object: 'task', name: task.name, sync, kind: 'remove', detail: `sync ${sync} is gone, or no longer on an every, cron or live schedule`, statements: [sql.render('task_drop', { task })] });
  }
  for (const row of streams) {
    const comment = String(row.comment ?? '');
    if (!comment.startsWith(prefix) || wantedStreams.has(String(row.name))) continue;
    const sync = comment.slice(prefix.length);
    steps.push({ object: 'stream', name: String(row.name), sync, kind: 'remove', detail: `sync ${sync} is gone, or no longer live`, statements: [sql.render('task_stream_drop', { task: { stream: String(row.name) } })] });
  }
  // Streams before the tasks that read them; removed tasks before their streams.
  const order = (s: TaskStep) => (s.kind === 'remove' ? (s.object === 'task' ? 2 : 3) : s.object === 'stream' ? 0 : 1);
  steps.sort((a, b) => order(a) - order(b));
  return { schema: project.config.warehouse.state_schema, steps: orderGraphSteps(steps, specs, tasks, (name, spec) => render(name, spec as TaskSpec)) };
}

/** Runs the DDL of a task plan, step by step. */
export async function applyTasks(engine: Engine, plan: TaskPlan): Promise<void> {
  for (const step of plan.steps) {
    for (const statement of step.statements) {
      try {
        await engine.sql.warehouse.run(statement.sql, statement.params);
      } catch (e) {
        throw new WarehouseError(`${step.object} ${step.name}: ${redact((e as Error).message)}`, statement.name);
      }
    }
  }
}

/** The syncs whose schedule a task would run, for the note that DuckDB has no tasks. */
export function scheduledSyncs(project: Engine['project']): string[] {
  return project.config.syncs.filter((s) => typeof s.schedule !== 'string' || s.schedule === 'live').map((s) => s.name);
}
