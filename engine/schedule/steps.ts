/** What the long-running processes (`ebb scheduler`, `ebb worker`) share: the warehouse per step, and a sleep that a stop cuts short. */
import type { Project } from '../config/load.ts';
import { openEngine, type Engine } from '../engine.ts';
import { Limiters } from '../apply/limiter.ts';
import type { RunResult } from '../run.ts';
import { formatDuration, formatTime } from './due.ts';

/**
 * The engine for one step. A DuckDB file is opened for the step and closed after, so that other
 * processes get it between steps; Snowflake, or DuckDB in memory, stays open. Steps that overlap
 * in one process (the server's requests and runs, its in-process scheduler) share one open file:
 * DuckDB must not open a file twice in a process, and the last step to finish closes it.
 */
export class StepEngine {
  private kept?: Promise<Engine>;
  private shared?: { engine: Promise<Engine>; steps: number };
  /** The close of the last shared engine: the next open waits for it (one instance per file). */
  private closing: Promise<void> = Promise.resolve();
  /** The limiters live across steps, so that a connection's spacing holds from one run to the next. */
  private readonly limiters = new Limiters();

  constructor(private readonly project: Project) {}

  async with<T>(body: (engine: Engine) => Promise<T>): Promise<T> {
    const { warehouse } = this.project.config;
    if (warehouse.type !== 'duckdb' || warehouse.path === ':memory:') {
      // One open for the steps that start together; a failed open is tried again at the next step.
      const kept = (this.kept ??= openEngine(this.project, { limiters: this.limiters }).catch((e: unknown) => {
        this.kept = undefined;
        throw e;
      }));
      try {
        return await body(await kept);
      } catch (e) {
        // A lost Snowflake session is opened again at the next step (a memory database is kept: closing it would lose it).
        if (warehouse.type !== 'duckdb') await this.close();
        throw e;
      }
    }
    const shared = (this.shared ??= { engine: this.closing.then(() => openEngine(this.project, { limiters: this.limiters })), steps: 0 });
    shared.steps += 1;
    try {
      return await body(await shared.engine);
    } finally {
      shared.steps -= 1;
      if (shared.steps === 0) {
        this.shared = undefined;
        // The warehouse only: the engine leaves the limiters it was given open.
        this.closing = shared.engine.then((engine) => engine.close()).catch(() => undefined);
        await this.closing;
      }
    }
  }

  /** Closes the warehouse kept between steps, if any. */
  async close(): Promise<void> {
    const kept = this.kept;
    this.kept = undefined;
    await kept?.then((engine) => engine.close()).catch(() => undefined);
  }

  /** Closes the warehouse and the limiters (with their connection to Redis): the process's work is over. */
  async stop(): Promise<void> {
    try {
      await this.close();
    } finally {
      await this.limiters.close();
    }
  }
}

/** A sleep that `wake()` cuts short. */
export class Sleeper {
  private wakeUp?: () => void;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }

  wake(): void {
    this.wakeUp?.();
  }
}

/** A number of seconds from the environment, in milliseconds; the fallback when unset or invalid. */
export function envSeconds(name: string, fallbackSeconds: number): number {
  const seconds = Number(process.env[name] ?? fallbackSeconds);
  return (Number.isFinite(seconds) && seconds > 0 ? seconds : fallbackSeconds) * 1000;
}

/** The log as text lines on stderr: `2026-11-22T21:05:01Z customers: due (every 15m, …) → run`. */
export function textLog(entry: { level: string; message: string }): void {
  process.stderr.write(`${formatTime(Date.now())} ${entry.level === 'info' ? '' : `${entry.level}: `}${entry.message}\n`);
}

/** The line that ends a run in the log: its health, duration and counts. */
export function resultLine(r: RunResult): string {
  const c = r.counts;
  const planned = Object.entries(r.planned)
    .map(([action, n]) => `${n} ${action}`)
    .join(', ');
  return (
    `${r.sync}: ${r.health} in ${formatDuration(r.duration_ms)} (run ${r.run_id}): planned ${planned || 'nothing'}; ` +
    `${c.succeeded} succeeded, ${c.failed} failed, ${c.delayed} delayed, ${c.source_failures} source failures` +
    (r.error ? `; error: ${r.error}` : '') +
    (r.note ? `; note: ${r.note}` : '')
  );
}
