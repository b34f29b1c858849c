/** What the long-running processes (`ebb scheduler`, `ebb worker`) share: the warehouse per step, and a sleep that a stop cuts short. */
import type { Project } from '../config/load.ts';
import { openEngine, type Engine } from '../engine.ts';

/**
 * The engine for one step. A DuckDB file is opened for the step and closed after, so that other
 * processes get it between steps; Snowflake, or DuckDB in memory, stays open.
 */
export class StepEngine {
  private kept?: Engine;

  constructor(private readonly project: Project) {}

  async with<T>(body: (engine: Engine) => Promise<T>): Promise<T> {
    const { warehouse } = this.project.config;
    if (warehouse.type !== 'duckdb' || warehouse.path === ':memory:') {
      this.kept ??= await openEngine(this.project);
      try {
        return await body(this.kept);
      } catch (e) {
        // A lost Snowflake session is opened again at the next step (a memory database is kept: closing it would lose it).
        if (warehouse.type !== 'duckdb') await this.close();
        throw e;
      }
    }
    const engine = await openEngine(this.project);
    try {
      return await body(engine);
    } finally {
      // Only the warehouse: engine.close() would also drop the limiters, which must outlive a run.
      await engine.sql.warehouse.close();
    }
  }

  /** Closes the warehouse kept between steps, if any. */
  async close(): Promise<void> {
    const kept = this.kept;
    this.kept = undefined;
    await kept?.sql.warehouse.close().catch(() => undefined);
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
