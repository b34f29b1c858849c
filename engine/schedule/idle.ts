/**
 * What keeps an idle `ebb worker` or `ebb scheduler` from holding a Snowflake warehouse up: they
 * poll change tokens (SYSTEM$LAST_CHANGE_COMMIT_TIME, which needs no running warehouse) and look
 * at the warehouse itself only when a token moved, or after a wait that doubles while nothing
 * happens, up to a minute. On DuckDB there are no tokens, and every poll looks.
 */
import type { Sql } from '../warehouse/sql.ts';

/** A table or view whose changes a poller watches: one of ebb's tables, or a source's dotted name. */
export type Watched = { own: string } | { parts: string[] };

/** The longest an idle poller goes without looking at the warehouse, in ms: at most one look a minute. */
export const MAX_IDLE_LOOK_MS = 60_000;

/** The tokens of the watched relations, as one string; null where the warehouse has none. */
export async function changeTokens(sql: Sql, relations: Watched[]): Promise<string | null> {
  if (relations.length === 0) return null;
  const [row] = await sql.runAndRead('change_tokens', { relations });
  const values = Object.values(row ?? {});
  return values.length === 0 || values.some((v) => v === null || v === undefined) ? null : values.map(String).join(',');
}

/** When a poller must look at the warehouse: its tokens moved, it just worked, or its idle wait ran out. */
export class IdleLooks {
  private token: string | null = null;
  private waitMs: number;
  private nextLook = 0;

  constructor(
    private readonly firstWaitMs: number,
    private readonly maxWaitMs = MAX_IDLE_LOOK_MS,
  ) {
    this.waitMs = firstWaitMs;
  }

  /** Whether to look now, given the tokens just read (null: always). */
  due(token: string | null, now = Date.now()): boolean {
    const moved = token === null || token !== this.token;
    this.token = token;
    return moved || now >= this.nextLook;
  }

  /** After a look: found work resets the wait; nothing found doubles it, up to the maximum. */
  looked(found: boolean, now = Date.now()): void {
    this.waitMs = found ? this.firstWaitMs : Math.min(this.waitMs * 2, this.maxWaitMs);
    this.nextLook = now + this.waitMs;
  }

  /** Forgets the token, so that the next poll looks (e.g. after an error). */
  reset(): void {
    this.token = null;
    this.nextLook = 0;
  }
}
