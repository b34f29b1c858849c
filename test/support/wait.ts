/** Waiting in tests: for a condition, never for a fixed time. */
import { setTimeout as sleep } from 'node:timers/promises';

/** How long `until` waits at most, and how often it looks. */
export interface UntilOptions {
  /** Gives up after this long (30 s unless told). */
  timeoutMs?: number;
  /** Looks again after this long (20 ms unless told; more where a look is costly, such as opening a DuckDB file another process needs). */
  intervalMs?: number;
}

/**
 * Calls `check` until it returns something truthy, and returns that. Fails after `timeoutMs`
 * with an error that names `what` (a function is called then, so that it can describe the state
 * at the end, such as a log so far).
 */
export async function until<T>(what: string | (() => string), check: () => Promise<T> | T, { timeoutMs = 30_000, intervalMs = 20 }: UntilOptions = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${typeof what === 'function' ? what() : what}`);
    await sleep(intervalMs);
  }
}
