/**
 * `ebb scheduler`: a long-running process that runs the syncs of the catalog on their schedules
 * (`every`, `cron`, `once`, `live`).
 *
 * DuckDB lets one process hold a warehouse file at a time, so the scheduler holds it only for a
 * look: open, read the catalog, poll the live sources, start at most one run, close. Between looks
 * every other command (`status`, `history`, `run`) can open the file; while a run goes on, they
 * wait for it (see DuckdbWarehouse.open). One run per look leaves a window between two runs, so
 * that a waiting command gets in rather than racing the scheduler's next open. The scheduler
 * wakes every tick (1 s), but opens the file only when a run may be due, a live source is to be
 * polled, or its view of the catalog is older than `refreshMs` (10 s): an idle scheduler holds the
 * file for a few milliseconds every ten seconds, not every second. A change an admin makes (a
 * pause) is therefore seen within `refreshMs`, and always before a run: every run re-reads it.
 * A warehouse that many processes share (Snowflake) or that lives in memory stays open instead.
 *
 * Ticks run one after another and a run happens inside a tick, so this process never runs two
 * syncs at once, and never one sync twice; the run lock (run-lock.ts) refuses a run that another
 * process has going.
 */
import { changeTokens, IdleLooks, type Watched } from './idle.ts';
import { envSeconds, resultLine, Sleeper, StepEngine, textLog } from './steps.ts';
import type { Project } from '../config/load.ts';
import type { SyncConfig } from '../config/schema.ts';
import type { Engine } from '../engine.ts';
import { autoDeploy } from '../catalog/deploy.ts';
import { effectiveSync, readCatalog, type CatalogEntry } from '../catalog/catalog.ts';
import { newRunId, runSync, type RunOptions, type RunResult, type Trigger } from '../run.ts';
import { RunRefusedError } from '../errors.ts';
import { setBusyNotice, WarehouseBusyError } from '../warehouse/duckdb.ts';
import { redact, redactValue } from '../redact.ts';
import { decide, formatDuration, formatTime } from './due.ts';
import { sourceFingerprint, type Fingerprint } from './fingerprint.ts';
import { StaleCheck, STALE_CHECK_MS } from '../alerts/alerts.ts';
import { relationParts } from '../plan/plan.ts';
import { timestampMs } from '../warehouse/timestamp.ts';

/** One line of the scheduler's log: a decision, a run and its result, or a problem. */
export interface LogEntry {
  level: 'info' | 'warn' | 'error';
  event: 'start' | 'deploy' | 'decision' | 'run' | 'result' | 'refused' | 'busy' | 'error' | 'stop';
  sync?: string;
  trigger?: Trigger;
  message: string;
  /** For `result`: the run, in the shape of `ebb run --json`. */
  result?: RunResult;
}

export interface SchedulerOptions {
  /** How often the scheduler wakes to see whether something is due, in ms. Default 1000. */
  tickMs?: number;
  /** How old the scheduler's view of the catalog may get before it reads it again, in ms. Default 10000. */
  refreshMs?: number;
  /** How often the sources of live syncs are fingerprinted, in ms. Default EBB_LIVE_POLL_SECONDS, or 2 s. */
  livePollMs?: number;
  /** Where the log goes. Default: text lines on stderr. */
  log?: (entry: LogEntry) => void;
  /** The warehouse to share with the rest of the process (`ebb serve`); one of its own without. */
  engines?: StepEngine;
  /** The longest an idle scheduler goes without reading the catalog itself, in ms (see idle.ts). Default 5 minutes. */
  maxIdleLookMs?: number;
  /** Follows the runs (`ebb serve` shows their phase and progress, and can stop them). */
  watcher?: RunWatcher;
}

/** Follows runs as they go: the hooks it gives a run report its phase and progress, and its signal stops it. */
export interface RunWatcher {
  /** Called as a run starts; `end` once it has ended. */
  track(run: { runId: string; sync: string }): { hooks: Pick<RunOptions, 'signal' | 'onPhase' | 'onProgress'>; end(): void };
}

/** An idle scheduler whose tables and live sources all have change tokens reads the catalog at least this often. */
const MAX_IDLE_LOOK_MS = 5 * 60_000;

/** A run to start, with why. */
interface Due {
  sync: SyncConfig;
  trigger: Trigger;
  reason: string;
  /** Since when it is due: the most overdue runs first. */
  since: number;
  /** For a live run: the source's fingerprint before it, the next baseline once the run is done. */
  fingerprint?: Fingerprint;
}

/** What the scheduler saw of a live sync's source. `fingerprint` is null until a run went through. */
interface LiveState {
  fingerprint: Fingerprint | null;
  polledAt: number;
}

/** The default poll interval of live syncs: EBB_LIVE_POLL_SECONDS, or 2 s. */
export function defaultLivePollMs(): number {
  return envSeconds('EBB_LIVE_POLL_SECONDS', 2);
}



export class Scheduler {
  private readonly tickMs: number;
  private readonly refreshMs: number;
  private readonly livePollMs: number;
  private readonly log: (entry: LogEntry) => void;
  private stopping = false;
  private startedAt = 0;
  private finished?: Promise<void>;
  private readonly sleeper = new Sleeper();
  private readonly engines: StepEngine;
  private readonly watcher?: RunWatcher;
  private inRun: string | null = null;
  /** When the next look at the warehouse is needed (ms since the epoch): 0 for at the next tick. */
  private nextLook = 0;
  private readonly live = new Map<string, LiveState>();
  /** Live syncs whose change was seen, waiting for their turn (one run per tick). */
  private readonly liveDue = new Map<string, Due>();
  /**
   * Syncs whose last attempt was refused (running elsewhere, a lock left by a killed process) or
   * broke, held back until the time given, so that one of them does not take every tick.
   */
  private readonly heldBack = new Map<string, number>();
  /** When `no_success` is next evaluated between runs. */
  private nextStaleCheck = 0;
  /** The no_success check, which keeps what it read while the change tokens stand. */
  private readonly stale = new StaleCheck();
  /** The last thing said about each sync (and '' for the scheduler): a decision is logged when it changes. */
  private readonly said = new Map<string, string>();
  /**
   * What an idle scheduler watches instead of reading the catalog, the runs and the live sources
   * (see idle.ts): their change tokens; null when one of them has none (a live `query:` source).
   */
  private watched: Watched[] | null = null;
  private readonly looks: IdleLooks;
  /** The earliest time-based run (every, cron) found at the last look: then it looks whatever the tokens say. */
  private timedDue = 0;
  /** How often an idle scheduler reads the tokens: the live poll interval when there are live syncs. */
  private pollEvery: number;

  constructor(
    private readonly project: Project,
    options: SchedulerOptions = {},
  ) {
    this.tickMs = options.tickMs ?? 1000;
    this.refreshMs = Math.max(options.refreshMs ?? 10_000, this.tickMs);
    this.livePollMs = options.livePollMs ?? defaultLivePollMs();
    const log = options.log ?? textLog;
    // Every line is masked here, whoever writes it (text, JSON, a test's collector).
    this.log = (entry) => log(redactValue(entry));
    this.engines = options.engines ?? new StepEngine(project);
    this.watcher = options.watcher;
    this.looks = new IdleLooks(this.refreshMs, options.maxIdleLookMs ?? MAX_IDLE_LOOK_MS);
    this.pollEvery = this.refreshMs;
  }

  /**
   * Starts scheduling. The promise settles when the scheduler has stopped (after `stop()`), or
   * rejects when it cannot start (the catalog cannot be deployed).
   */
  start(): Promise<void> {
    this.finished ??= this.main();
    return this.finished;
  }

  /** Stops scheduling new runs, lets the current run finish, and lets go of the warehouse. `cause` is logged (`SIGTERM`). */
  async stop(cause = 'stop requested'): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.log({ level: 'info', event: 'stop', message: `${cause}: stopping, no new runs${this.inRun ? `; waiting for the run of ${this.inRun} to finish` : ''}` });
    }
    this.sleeper.wake();
    await this.finished?.catch(() => undefined);
  }

  private async main(): Promise<void> {
    this.startedAt = Date.now();
    setBusyNotice((message) => this.note('', 'busy', { level: 'warn', event: 'busy', message }));
    const { config } = this.project;
    this.log({
      level: 'info',
      event: 'start',
      message:
        `scheduler started for project ${config.name} (PID ${process.pid}); it reads the catalog every ${formatDuration(this.refreshMs)} and when a run is due, ` +
        `polls live sources every ${formatDuration(this.livePollMs)}, and holds the warehouse only while it looks or runs`,
    });
    try {
      await this.deploy();
      while (!this.stopping) {
        if (Date.now() >= this.nextLook) await this.tick();
        if (!this.stopping) await this.sleeper.sleep(this.tickMs);
      }
    } finally {
      await this.engines.stop();
      this.log({ level: 'info', event: 'stop', message: 'scheduler stopped' });
    }
  }

  /** Deploys the code into the catalog once, as `run` does; waits while the warehouse is busy. */
  private async deploy(): Promise<void> {
    while (!this.stopping) {
      try {
        await this.engines.with((engine) =>
          autoDeploy(engine, (message) => this.log({ level: 'warn', event: 'deploy', message })),
        );
        return;
      } catch (e) {
        if (!(e instanceof WarehouseBusyError)) throw e;
        this.note('', 'busy', { level: 'warn', event: 'busy', message: `${e.message} Trying again.` });
        await this.sleeper.sleep(this.tickMs);
      }
    }
  }

  /** One look: open, decide, start at most one run, close. A problem is logged, and the next tick tries again. */
  private async tick(): Promise<void> {
    try {
      await this.engines.with(async (engine) => {
        const now = Date.now();
        const watched = now < this.timedDue ? this.watched : null;
        const token = watched ? await changeTokens(engine.sql, watched) : null;
        if (watched && !this.looks.due(token, now)) {
          // Nothing moved: no statement that needs a running warehouse.
          this.nextLook = Math.min(this.timedDue, now + this.pollEvery);
          return;
        }
        const due = await this.decideAll(engine, token);
        this.looks.looked(due !== undefined);
        if (due && !this.stopping) {
          await this.runDue(engine, due);
          // The run changed what is due (and others may be waiting): look again at the next tick.
          this.nextLook = 0;
        }
      });
      this.said.delete('');
    } catch (e) {
      this.nextLook = 0;
      this.looks.reset();
      const message = redact(e instanceof Error ? e.message : String(e));
      if (e instanceof WarehouseBusyError) this.note('', 'busy', { level: 'warn', event: 'busy', message: `${message} Trying again.` });
      else this.note('', `error:${message}`, { level: 'error', event: 'error', message: `${message} (trying again every ${formatDuration(this.tickMs)})` });
    }
  }

  /** Reads the catalog and the runs, logs each decision that changed, and returns the most overdue run. */
  private async decideAll(engine: Engine, token: string | null): Promise<Due | undefined> {
    const now = Date.now();
    const catalog = await readCatalog(engine.sql);
    const lastRun = new Map<string, number>();
    const lastHealthy = new Map<string, number | null>();
    for (const row of await engine.sql.runAndRead('schedule_runs')) {
      if (row.last_started_at !== null) lastRun.set(String(row.sync_name), timestampMs(row.last_started_at)!);
      lastHealthy.set(String(row.sync_name), timestampMs(row.last_healthy_at));
    }
    for (const name of [...this.live.keys()]) {
      if (!catalog.some((e) => e.name === name)) this.forgetLive(name);
    }
    const candidates: Due[] = [];
    this.nextLook = now + this.refreshMs;
    let timedDue = Infinity;
    const watched: Array<Watched | null> = [{ own: 'syncs' }, { own: 'sync_runs' }];
    for (const entry of catalog) {
      const sync = effectiveSync(entry);
      if (!sync) {
        this.note(entry.name, 'invalid', { level: 'warn', event: 'decision', sync: entry.name, message: `${entry.name}: skipped, its definition in the catalog is not valid` });
        continue;
      }
      // A renamed sync keeps its runs under its former names.
      const times = [entry.name, ...entry.formerNames].map((n) => lastRun.get(n)).filter((t): t is number => t !== undefined);
      const decision = decide({
        schedule: sync.schedule,
        status: entry.status,
        lastRunAt: times.length ? Math.max(...times) : null,
        health: entry.health,
        startedAt: this.startedAt,
        now,
        parents: lastHealthy,
      });
      if (decision.action !== 'live') this.forgetLive(entry.name);
      const heldUntil = this.heldBack.get(entry.name) ?? 0;
      if (heldUntil > now && (decision.action === 'run' || decision.action === 'live')) {
        this.nextLook = Math.min(this.nextLook, heldUntil);
        timedDue = Math.min(timedDue, heldUntil);
        continue;
      }
      this.heldBack.delete(entry.name);
      if (decision.action === 'skip') {
        this.note(entry.name, `skip:${decision.reason}`, { level: 'info', event: 'decision', sync: entry.name, message: `${entry.name}: skipped, ${decision.reason}` });
      } else if (decision.action === 'wait') {
        if (decision.next !== null) {
          this.nextLook = Math.min(this.nextLook, decision.next);
          timedDue = Math.min(timedDue, decision.next);
        }
        this.note(entry.name, `wait:${decision.next ?? decision.reason}`, {
          level: 'info',
          event: 'decision',
          sync: entry.name,
          message: decision.next === null ? `${entry.name}: waiting (${decision.reason})` : `${entry.name}: next run at ${formatTime(decision.next)} (${decision.reason})`,
        });
      } else if (decision.action === 'run') {
        candidates.push({ sync, trigger: 'schedule', reason: decision.reason, since: decision.since });
      } else {
        watched.push(sync.source.table ? { parts: relationParts(sync.source.table) } : null);
        const due = await this.pollLive(engine, entry, sync, now);
        if (due) candidates.push(due);
      }
    }
    if (now >= this.nextStaleCheck) {
      this.nextStaleCheck = now + Math.min(STALE_CHECK_MS, this.refreshMs);
      await this.stale.check(engine, token, catalog);
    }
    // The alerts' no_success check runs in looks: an idle scheduler on Snowflake makes it at least every five minutes.
    this.timedDue = timedDue;
    this.watched = watched.every((w) => w !== null) ? (watched as Watched[]) : null;
    this.pollEvery = watched.length > 2 ? this.livePollMs : this.refreshMs;
    candidates.sort((a, b) => a.since - b.since);
    for (const waiting of this.stopping ? [] : candidates.slice(1)) {
      this.note(waiting.sync.name, 'queued', { level: 'info', event: 'decision', sync: waiting.sync.name, message: `${waiting.sync.name}: due, waiting for ${candidates[0].sync.name} to run first` });
    }
    return candidates[0];
  }

  /** A live sync: fingerprints its source every poll interval and says whether it changed. */
  private async pollLive(engine: Engine, entry: CatalogEntry, sync: SyncConfig, now: number): Promise<Due | undefined> {
    const name = entry.name;
    const pending = this.liveDue.get(name);
    if (pending) return { ...pending, sync };
    const state = this.live.get(name);
    if (state && now - state.polledAt < this.livePollMs) {
      this.nextLook = Math.min(this.nextLook, state.polledAt + this.livePollMs);
      return undefined;
    }
    let fingerprint: Fingerprint;
    try {
      fingerprint = await sourceFingerprint(engine.sql, sync);
    } catch (e) {
      const message = redact((e as Error).message);
      this.note(name, `fingerprint:${message}`, { level: 'error', event: 'error', sync: name, message: `live ${name}: cannot fingerprint its source: ${message}` });
      return undefined;
    }
    this.live.set(name, { fingerprint: state?.fingerprint ?? null, polledAt: now });
    this.nextLook = Math.min(this.nextLook, now + this.livePollMs);
    let reason: string | undefined;
    if (!state?.fingerprint) reason = 'first look at its source (a run catches up on what changed while no scheduler watched it)';
    else if (state.fingerprint.value !== fingerprint.value) reason = `fingerprint changed (${state.fingerprint.rows} → ${fingerprint.rows} rows)`;
    else if (entry.health === 'DELAYED') reason = 'its last run delayed records';
    if (!reason) {
      this.note(name, 'watching', {
        level: 'info',
        event: 'decision',
        sync: name,
        message: `live ${name}: watching its source (${fingerprint.rows} rows), polled every ${formatDuration(this.livePollMs)}`,
      });
      return undefined;
    }
    const due: Due = { sync, trigger: 'live', reason, since: now, fingerprint };
    this.liveDue.set(name, due);
    return due;
  }

  private forgetLive(name: string): void {
    this.live.delete(name);
    this.liveDue.delete(name);
  }

  /** Runs one sync, logs the decision and the result; a refusal (paused meanwhile, running elsewhere) or a broken run is logged. */
  private async runDue(engine: Engine, due: Due): Promise<void> {
    const name = due.sync.name;
    this.log({
      level: 'info',
      event: 'run',
      sync: name,
      trigger: due.trigger,
      message: due.trigger === 'live' ? `live ${name}: ${due.reason} → run` : `${name}: due (${due.reason}) → run`,
    });
    this.inRun = name;
    this.liveDue.delete(name);
    // Whatever comes next about this sync is news.
    this.said.delete(name);
    try {
      const runId = newRunId();
      const tracked = this.watcher?.track({ runId, sync: name });
      const result = await runSync(engine, due.sync, { trigger: due.trigger, runId, ...tracked?.hooks }).finally(() => tracked?.end());
      // The new baseline is the source as the run saw it (or later): a change during the run is seen at the next poll.
      if (due.fingerprint) this.live.set(name, { fingerprint: due.fingerprint, polledAt: this.live.get(name)?.polledAt ?? Date.now() });
      this.log({ level: result.health === 'HEALTHY' ? 'info' : 'warn', event: 'result', sync: name, trigger: due.trigger, result, message: resultLine(result) });
    } catch (e) {
      // Refused (running elsewhere) or broken: the next attempt waits for the next refresh.
      this.heldBack.set(name, Date.now() + this.refreshMs);
      const message = redact(e instanceof Error ? e.message : String(e));
      const again = `trying again in ${formatDuration(this.refreshMs)}`;
      if (e instanceof RunRefusedError) this.log({ level: 'warn', event: 'refused', sync: name, trigger: due.trigger, message: `${name}: refused: ${message}; ${again}` });
      else this.log({ level: 'error', event: 'error', sync: name, trigger: due.trigger, message: `${name}: the run broke: ${message}; ${again}` });
    } finally {
      this.inRun = null;
    }
  }

  /** Logs an entry unless the same thing (`key`) was the last said about `subject`. */
  private note(subject: string, key: string, entry: LogEntry): void {
    if (this.said.get(subject) === key) return;
    this.said.set(subject, key);
    this.log(entry);
  }
}
