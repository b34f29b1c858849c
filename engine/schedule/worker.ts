/**
 * `ebb worker`: claims the rows of `run_requests` (queued by Snowflake tasks, see tasks.ts, or by
 * anyone with an INSERT) and runs their syncs. Several workers may share a warehouse:
 *
 * - **Claim.** A worker reads a few candidates (the oldest unfinished requests that no worker
 *   holds, of syncs that nobody is running), then claims one with a conditional UPDATE
 *   (`… WHERE request_id = ? AND claimed_by IS NULL`) and checks that it changed exactly one row.
 *   Of several workers that try the same request, one wins; the others try the next candidate.
 *   Snowflake has no SKIP LOCKED, and needs none for this.
 * - **One run of a sync at a time.** Candidates leave out syncs that another worker holds a
 *   request of, or whose run lock is taken; the run lock (run-lock.ts) settles any race left. A
 *   run refused because its sync is already running (an `ebb run` elsewhere, say) gives its
 *   request back to the queue: it runs later ("queued by the worker", SPEC §5).
 * - **Finished.** A request is finished with the run_id of the run that served it, whatever the
 *   run's health. A request that cannot run (its sync is paused, unknown, in ERROR) is finished
 *   without a run_id, and the log says why.
 * - **A worker that dies.** A worker renews its claim while it runs (every third of the claim
 *   TTL); a claim not renewed for the TTL (EBB_LOCK_TTL_SECONDS, 60 s by default, like the run
 *   lock) is taken over by another worker, whose run records the dead one's as interrupted.
 *   Claim times come from the workers' clocks, which must roughly agree (NTP).
 * - **SIGTERM.** The worker claims nothing more; the run under way sends no new batch, lets the
 *   batches in flight finish, and records the records not sent as DELAYED. Its request is
 *   finished with the run's id, and a new request for the same sync is queued so that the next
 *   worker sends the rest first. Nothing is lost.
 *
 * `--once` drains the queue and exits: it stops when no request is left that a worker could claim
 * (those that other workers hold are theirs to finish).
 */
import { changeTokens, IdleLooks } from './idle.ts';
import { envSeconds, resultLine, Sleeper, StepEngine, textLog } from './steps.ts';
import { hostname } from 'node:os';
import { randomBytes, randomUUID } from 'node:crypto';
import type { Project } from '../config/load.ts';
import type { Engine } from '../engine.ts';
import { autoDeploy } from '../catalog/deploy.ts';
import { effectiveSync, readCatalog, type CatalogEntry } from '../catalog/catalog.ts';
import { catalogEntry, checkRunnable } from '../catalog/lifecycle.ts';
import { runSync, type RunResult, type Trigger } from '../run.ts';
import { RunRefusedError } from '../errors.ts';
import { setBusyNotice, WarehouseBusyError } from '../warehouse/duckdb.ts';
import { redact, redactValue } from '../redact.ts';
import { formatDuration } from './due.ts';
import { StaleCheck, STALE_CHECK_MS } from '../alerts/alerts.ts';
import { checkParentsHealthy, parentsQueued } from './dependencies.ts';

const TRIGGERS: Trigger[] = ['manual', 'schedule', 'live', 'task', 'api', 'dbt', 'airflow'];
/** Candidates read at once: enough to get past the requests that other workers win. */
const CANDIDATES = 20;

/** One line of the worker's log. */
export interface WorkerLogEntry {
  level: 'info' | 'warn' | 'error';
  event: 'start' | 'deploy' | 'claim' | 'result' | 'requeued' | 'dropped' | 'followup' | 'busy' | 'error' | 'stop';
  sync?: string;
  request?: string;
  message: string;
  /** For `result`: the run, in the shape of `ebb run --json`. */
  result?: RunResult;
}

export interface WorkerOptions {
  /** Drain the queue and stop (`ebb worker --once`). */
  once?: boolean;
  /** How long an idle worker waits before it looks at the queue again, in ms. Default EBB_WORKER_POLL_SECONDS, or 2 s. */
  pollMs?: number;
  /** A claim that its worker stopped renewing for this long is taken over, in ms. Default EBB_LOCK_TTL_SECONDS, or 60 s. */
  claimTtlMs?: number;
  /** The worker's name in `claimed_by`. Default host:pid:random. */
  id?: string;
  log?: (entry: WorkerLogEntry) => void;
  /** The longest an idle worker goes without reading the queue itself, in ms (see idle.ts). Default 60 s. */
  maxIdleLookMs?: number;
  /** How often, at most, `no_success` alerts are evaluated between runs, in ms. Default 10 s. */
  staleCheckMs?: number;
}

/** What a worker did, when it stops. */
export interface WorkerSummary {
  runs: RunResult[];
  /** Requests finished without a run (paused, unknown or ERROR syncs). */
  dropped: number;
  /** Requests given back to the queue because their sync was running elsewhere. */
  requeued: number;
}

export function defaultPollMs(): number {
  return envSeconds('EBB_WORKER_POLL_SECONDS', 2);
}

function defaultClaimTtlMs(): number {
  return envSeconds('EBB_LOCK_TTL_SECONDS', 60);
}



interface Request {
  id: string;
  sync: string;
  trigger: Trigger;
}

export class Worker {
  readonly id: string;
  private readonly once: boolean;
  private readonly pollMs: number;
  private readonly claimTtlMs: number;
  private readonly staleCheckMs: number;
  private readonly log: (entry: WorkerLogEntry) => void;
  /** Aborted on stop: the run under way sends no new batch. */
  private readonly abort = new AbortController();
  private stopping = false;
  private drained = false;
  private finished?: Promise<WorkerSummary>;
  private readonly sleeper = new Sleeper();
  private readonly engines: StepEngine;
  private current: Request | null = null;
  /** Syncs whose request went back to the queue, left alone until then (ms since the epoch). */
  private readonly heldBack = new Map<string, number>();
  /** The catalog as last read, and the change tokens it was read under. */
  private catalogRead: { token: string; catalog: CatalogEntry[] } | null = null;
  /** When `no_success` is next evaluated between runs. */
  private nextStaleCheck = 0;
  /** The no_success check, which keeps what it read while the change tokens stand. */
  private readonly stale = new StaleCheck();
  private readonly summary: WorkerSummary = { runs: [], dropped: 0, requeued: 0 };
  /** When to read the queue itself rather than its change tokens: an idle worker lets the warehouse suspend. */
  private readonly looks: IdleLooks;

  constructor(
    private readonly project: Project,
    options: WorkerOptions = {},
  ) {
    this.id = options.id ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.once = options.once ?? false;
    this.pollMs = options.pollMs ?? defaultPollMs();
    this.claimTtlMs = options.claimTtlMs ?? defaultClaimTtlMs();
    this.staleCheckMs = options.staleCheckMs ?? STALE_CHECK_MS;
    const log = options.log ?? textLog;
    // Every line is masked here, whoever writes it (text, JSON, a test's collector).
    this.log = (entry) => log(redactValue(entry));
    this.engines = new StepEngine(project);
    this.looks = new IdleLooks(this.pollMs, options.maxIdleLookMs);
  }

  /** Starts working; settles when the worker has stopped (after stop(), or with --once when the queue is drained). */
  start(): Promise<WorkerSummary> {
    this.finished ??= this.main();
    return this.finished;
  }

  /** Claims nothing more; the run under way stops after its current batches. `cause` is logged (`SIGTERM`). */
  async stop(cause = 'stop requested'): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.abort.abort();
      this.log({
        level: 'info',
        event: 'stop',
        message: `${cause}: stopping, claiming no more requests${this.current ? `; the run of ${this.current.sync} sends no new batch, and what it did not send goes back to the queue` : ''}`,
      });
    }
    this.sleeper.wake();
    await this.finished?.catch(() => undefined);
  }

  private async main(): Promise<WorkerSummary> {
    setBusyNotice((message) => this.log({ level: 'warn', event: 'busy', message }));
    this.log({
      level: 'info',
      event: 'start',
      message: `worker ${this.id} started for project ${this.project.config.name}${this.once ? ' (--once: until the queue is drained)' : `; it looks at run_requests every ${formatDuration(this.pollMs)} when idle`}`,
    });
    try {
      await this.deploy();
      while (!this.stopping && !this.drained) {
        let worked = false;
        try {
          worked = await this.engines.with((engine) => this.step(engine));
        } catch (e) {
          this.looks.reset();
          const message = redact(e instanceof Error ? e.message : String(e));
          if (e instanceof WarehouseBusyError) this.log({ level: 'warn', event: 'busy', message: `${message} Trying again.` });
          else {
            this.log({ level: 'error', event: 'error', message: `${message}${this.once ? '' : ` (trying again in ${formatDuration(this.pollMs)})`}` });
            if (this.once) throw e;
          }
        }
        if (!worked && !this.stopping && !this.drained) await this.sleeper.sleep(this.pollMs);
      }
    } finally {
      await this.engines.stop();
      const { runs, dropped, requeued } = this.summary;
      this.log({ level: 'info', event: 'stop', message: `worker ${this.id} stopped: ${runs.length} runs, ${dropped} requests dropped, ${requeued} given back to the queue` });
    }
    return this.summary;
  }

  /** Deploys the code into the catalog once, as `run` does; waits while the warehouse is busy. */
  private async deploy(): Promise<void> {
    while (!this.stopping) {
      try {
        await this.engines.with((engine) => autoDeploy(engine, (message) => this.log({ level: 'warn', event: 'deploy', message })));
        return;
      } catch (e) {
        if (!(e instanceof WarehouseBusyError)) throw e;
        this.log({ level: 'warn', event: 'busy', message: `${e.message} Trying again.` });
        await this.sleeper.sleep(this.pollMs);
      }
    }
  }

  /**
   * Claims one request and serves it; returns whether it did. With --once, notes when nothing is
   * left to claim. Idle, it reads the queue only when the change tokens of run_requests or syncs
   * (a run lock released) moved, or its idle wait ran out (see idle.ts).
   */
  private async step(engine: Engine): Promise<boolean> {
    const { sql } = engine;
    const token = this.once ? null : await changeTokens(sql, [{ own: 'run_requests' }, { own: 'syncs' }]);
    if (!this.once && !this.looks.due(token)) return false;
    const served = await this.claimAndServe(engine, token);
    this.looks.looked(served);
    return served;
  }

  private async claimAndServe(engine: Engine, token: string | null): Promise<boolean> {
    const { sql } = engine;
    const now = Date.now();
    if (now >= this.nextStaleCheck) {
      this.nextStaleCheck = now + this.staleCheckMs;
      await this.stale.check(engine, token, await this.catalog(sql, token));
    }
    const staleBefore = new Date(now - this.claimTtlMs);
    /** The catalog, read at most once per look and only when a request of a task graph asks for it. */
    let catalog: Promise<CatalogEntry[]> | undefined;
    for (const row of await sql.runAndRead('request_candidates', { stale_before: staleBefore, limit: CANDIDATES })) {
      if (this.stopping) return false;
      const request: Request = {
        id: String(row.request_id),
        sync: String(row.sync_name),
        trigger: TRIGGERS.includes(row.trigger as Trigger) ? (row.trigger as Trigger) : 'task',
      };
      if ((this.heldBack.get(request.sync) ?? 0) > now) continue;
      // A task graph queues a sync right after the syncs it runs after: their runs go first.
      if (request.trigger === 'task' && (await this.waitsForParents(sql, request, (catalog ??= this.catalog(sql, token))))) continue;
      const claimed = await sql.run('request_claim', { holder: this.id, request_id: request.id, claimed_at: new Date(), stale_before: staleBefore });
      // Another worker won this one: try the next.
      if (claimed !== 1) continue;
      await this.serve(engine, request);
      return true;
    }
    if (this.once) {
      const [{ n }] = await sql.runAndRead('request_pending', { stale_before: staleBefore });
      if (Number(n) === 0) this.drained = true;
    }
    return false;
  }

  /**
   * The catalog, read again only when the change tokens of run_requests and syncs moved since it
   * was read (null tokens: every time). With StaleCheck, an idle worker's look is one statement.
   */
  private async catalog(sql: Engine['sql'], token: string | null): Promise<CatalogEntry[]> {
    if (token !== null && this.catalogRead?.token === token) return this.catalogRead.catalog;
    const catalog = await readCatalog(sql);
    this.catalogRead = token === null ? null : { token, catalog };
    return catalog;
  }

  /** Whether a sync's request waits for requests of the syncs it runs after, queued no later. */
  private async waitsForParents(sql: Engine['sql'], request: Request, catalog: Promise<CatalogEntry[]>): Promise<boolean> {
    const entry = (await catalog).find((e) => e.name === request.sync);
    const sync = entry ? effectiveSync(entry) : null;
    return sync !== null && (await parentsQueued(sql, sync, request.id));
  }

  /** Finishes a request that cannot run, without a run, and says why. */
  private async drop(sql: Engine['sql'], request: Request, e: RunRefusedError): Promise<void> {
    await sql.run('request_finish', { request_id: request.id, holder: this.id, run_id: null });
    this.summary.dropped += 1;
    this.log({ level: 'warn', event: 'dropped', sync: request.sync, request: request.id, message: `request ${request.id}: not run, ${e.message}` });
  }

  /** Runs a claimed request's sync and finishes the request; gives it back when the sync is running elsewhere. */
  private async serve(engine: Engine, request: Request): Promise<void> {
    const { sql } = engine;
    const ids = { request_id: request.id, holder: this.id };
    const entry = await catalogEntry(sql, request.sync);
    const sync = entry ? effectiveSync(entry) : null;
    try {
      checkRunnable(entry, request.sync, request.trigger);
      if (!sync) throw new RunRefusedError('not_deployed', `sync ${request.sync}: its definition in the catalog is not valid; deploy it again`);
      if (request.trigger === 'task') await checkParentsHealthy(sql, sync);
    } catch (e) {
      if (!(e instanceof RunRefusedError)) throw e;
      return this.drop(sql, request, e);
    }
    this.current = request;
    const renew = setInterval(() => {
      sql.run('request_renew', { ...ids, claimed_at: new Date() }).catch(() => undefined);
    }, this.claimTtlMs / 3);
    renew.unref();
    try {
      this.log({ level: 'info', event: 'claim', sync: request.sync, request: request.id, message: `request ${request.id} (${request.trigger}) → run ${request.sync}` });
      let result: RunResult;
      try {
        result = await runSync(engine, sync, { trigger: request.trigger, signal: this.abort.signal });
      } catch (e) {
        if (!(e instanceof RunRefusedError)) throw e;
        // A refusal that waiting cannot cure (say, its connection is gone from ebb.yml) finishes the request.
        if (e.reason !== 'locked') return await this.drop(sql, request, e);
        // Already running (elsewhere, or a race with a status change): back in the queue, for later.
        await sql.run('request_release', ids);
        this.heldBack.set(request.sync, Date.now() + this.pollMs);
        this.summary.requeued += 1;
        this.log({ level: 'warn', event: 'requeued', sync: request.sync, request: request.id, message: `request ${request.id}: ${e.message}; back in the queue` });
        return;
      }
      const finished = await sql.run('request_finish', { ...ids, run_id: result.run_id });
      this.summary.runs.push(result);
      this.log({ level: result.health === 'HEALTHY' ? 'info' : 'warn', event: 'result', sync: request.sync, request: request.id, result, message: resultLine(result) });
      if (finished !== 1) {
        this.log({ level: 'warn', event: 'error', sync: request.sync, request: request.id, message: `request ${request.id}: its claim was taken over while it ran (not renewed for ${formatDuration(this.claimTtlMs)})` });
      }
      if (this.abort.signal.aborted && result.counts.delayed > 0) {
        const next = randomUUID();
        await sql.run('request_insert', { request_id: next, sync_name: request.sync, trigger: request.trigger });
        this.log({ level: 'info', event: 'followup', sync: request.sync, request: next, message: `${request.sync}: stopped after its current batches; ${result.counts.delayed} records DELAYED, queued again as request ${next}` });
      }
    } catch (e) {
      // The warehouse broke: the request goes back to the queue (or is taken over once the claim expires).
      await sql.run('request_release', ids).catch(() => undefined);
      throw e;
    } finally {
      clearInterval(renew);
      this.current = null;
    }
  }
}
