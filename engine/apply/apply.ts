/**
 * Apply: stream the change set out of the warehouse in batches and send them through the plugin,
 * under the connection's concurrency, with the business and technical retries of SPEC §3.
 * Outcomes go back to the warehouse in bulk as they arrive, so memory stays flat.
 */
import pMap from 'p-map';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Action, Change, Outcome, Session, Strategy } from '../../plugins/plugin.ts';
import type { Sql } from '../warehouse/sql.ts';
import type { Param, Row } from '../warehouse/warehouse.ts';
import { toJson } from '../redact.ts';
import { LimiterUnavailableError } from './limiter.ts';

/** A change of the change set, with its position in it. */
interface PlannedChange extends Change {
  seq: number;
  /** A create of this record was in flight when a run stopped: the app may hold it, id unknown. */
  inDoubt?: boolean;
  /** This create only learns the record's identifier; the change to make next is this action. */
  then?: Action;
}

export interface ApplyOptions {
  sql: Sql;
  runId: string;
  session: Session;
  strategy: Strategy;
  batchSize: number;
  concurrency: number;
  /** Milliseconds to wait before each technical retry; its length is the number of retries. */
  retryDelaysMs: number[];
  /** Epoch milliseconds after which no new batch starts (`max_run_seconds`). */
  deadline?: number;
  /** Once aborted, no new batch starts, as at the deadline (ebb worker on SIGTERM). */
  signal?: AbortSignal;
  /** Called with the number of records that got their final outcome. */
  onProgress?: (applied: number) => void;
}

/** What apply did. Records it did not reach (deadline) have no outcome and are recorded DELAYED. */
export interface ApplyResult {
  applied: number;
}

const OUTCOME_COLUMNS = ['run_id', 'seq', 'action', 'success', 'app_identifier', 'result', 'error_kind', 'recorded_at'];
const INFLIGHT_COLUMNS = ['run_id', 'action', 'seq_lo', 'seq_hi', 'sent_at'];
const FLUSH_EVERY = 2000;
const FLUSH_MS = 1000;

function toChange(row: Row): PlannedChange {
  const record = typeof row.record === 'string' ? (JSON.parse(row.record) as Record<string, unknown>) : ((row.record ?? {}) as Record<string, unknown>);
  const change: PlannedChange = { seq: Number(row.seq), key: String(row.record_key), action: row.action as Action, record, appId: (row.app_identifier as string | null) ?? null };
  // To remove a record that may be in the app under an unknown id, learn the id first: the
  // create is idempotent here (else the record would be NEEDS_REVIEW), so it answers with the
  // existing record's id, or makes the record that the removal then takes away.
  if (row.in_doubt === true && !change.appId && (change.action === 'delete' || change.action === 'clear')) return { ...change, action: 'create', then: change.action };
  return change;
}

async function* batches(rows: AsyncIterable<Row[]>, size: number, deadline?: number, signal?: AbortSignal): AsyncIterable<PlannedChange[]> {
  const over = () => (deadline !== undefined && Date.now() >= deadline) || signal?.aborted === true;
  let batch: PlannedChange[] = [];
  for await (const chunk of rows) {
    for (const row of chunk) {
      const change = toChange(row);
      if (batch.length > 0 && (batch.length >= size || batch[0].action !== change.action)) {
        if (over()) return;
        yield batch;
        batch = [];
      }
      batch.push(change);
    }
  }
  if (batch.length > 0 && !over()) yield batch;
}

/** Maps the items of an async iterable. */
async function* mapAsync<T, U>(source: AsyncIterable<T>, f: (item: T) => U): AsyncIterable<U> {
  for await (const item of source) yield f(item);
}

/** Reads up to `depth` items ahead of the consumer. */
async function* readAhead<T>(source: AsyncIterable<T>, depth: number): AsyncIterable<T> {
  const it = source[Symbol.asyncIterator]();
  // A read that fails while it waits in the queue is reported when its turn comes, not before.
  const pull = () => {
    const next = it.next();
    next.catch(() => undefined);
    return next;
  };
  const queue = Array.from({ length: depth }, pull);
  for (;;) {
    const next = await queue.shift()!;
    if (next.done) return;
    queue.push(pull());
    yield next.value;
  }
}

/**
 * Group commit: rows added while a write is under way go together in the next write, so batches
 * sent at once share one statement. Each add() resolves when its row is written.
 */
class GroupAppend {
  private pending: Array<{ row: Param[]; done: (error?: unknown) => void }> = [];
  private writing = false;

  constructor(private readonly write: (rows: Param[][]) => Promise<void>) {}

  add(row: Param[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ row, done: (error) => (error === undefined ? resolve() : reject(error as Error)) });
      if (!this.writing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
    while (this.pending.length > 0) {
      const group = this.pending;
      this.pending = [];
      const error = await this.write(group.map((g) => g.row)).then(() => undefined, (e: unknown) => e ?? new Error('write failed'));
      for (const g of group) g.done(error);
    }
    this.writing = false;
  }
}

/** Sends changes of possibly different actions: one plugin call per action. */
async function send(session: Session, changes: PlannedChange[]): Promise<Array<[PlannedChange, Outcome]>> {
  const byAction = new Map<Action, PlannedChange[]>();
  for (const c of changes) {
    const group = byAction.get(c.action);
    if (group) group.push(c);
    else byAction.set(c.action, [c]);
  }
  const pairs: Array<[PlannedChange, Outcome]> = [];
  for (const group of byAction.values()) {
    let outcomes: Outcome[];
    try {
      outcomes = await session.apply(group.map(({ key, action, record, appId }) => ({ key, action, record, appId })));
    } catch (e) {
      // Without its rate limiter (Redis gone) nothing can be sent: that fails the run, not records.
      if (e instanceof LimiterUnavailableError) throw e;
      // A plugin that throws fails the batch, not the run: each record keeps a definite outcome.
      const message = (e as Error).message;
      outcomes = group.map((c) => ({ key: c.key, success: false, error: { kind: 'transient', message } }));
    }
    const byKey = new Map(outcomes.map((o) => [o.key, o]));
    for (const change of group) {
      pairs.push([change, byKey.get(change.key) ?? { key: change.key, success: false, error: { kind: 'rejected', message: 'the plugin returned no outcome for this record' } }]);
    }
  }
  return pairs;
}

/** Applies the run's change set; returns when every sent record has its outcome in the warehouse. */
export async function applyChanges(options: ApplyOptions): Promise<ApplyResult> {
  const { sql, runId, session, strategy, retryDelaysMs } = options;
  let buffer: Param[][] = [];
  let applied = 0;
  const flushes: Promise<void>[] = [];
  let lastFlush = Date.now();
  const flush = () => {
    lastFlush = Date.now();
    if (buffer.length === 0) return;
    const rows = buffer;
    buffer = [];
    flushes.push(sql.warehouse.append(sql.stateSchema, 'sync_outcomes', OUTCOME_COLUMNS, rows));
  };
  const settle = (change: PlannedChange, outcome: Outcome) => {
    const result = outcome.success ? (outcome.result ?? null) : { error: outcome.error, response: outcome.result };
    const json = result === null || result === undefined ? null : toJson(result);
    buffer.push([runId, change.seq, change.action, outcome.success, outcome.appId ?? change.appId ?? null, json, outcome.error?.kind ?? null, new Date()]);
    applied += 1;
    // Often enough that a killed run leaves few outcomes unwritten, rarely enough to stay bulk.
    if (buffer.length >= FLUSH_EVERY || Date.now() - lastFlush >= FLUSH_MS) flush();
  };

  // A batch that the app refused as a whole is split in half until the bad records are isolated.
  const sendSplitting = async (changes: PlannedChange[]): Promise<Array<[PlannedChange, Outcome]>> => {
    const pairs = await send(session, changes);
    if (changes.length > 1 && pairs.every(([, o]) => !o.success && o.error?.kind === 'rejected' && o.error.wholeBatch)) {
      const half = Math.ceil(changes.length / 2);
      return [...(await sendSplitting(changes.slice(0, half))), ...(await sendSplitting(changes.slice(half)))];
    }
    return pairs;
  };

  const deliver = async ({ batch, marked }: { batch: PlannedChange[]; marked: Promise<void> }) => {
    // Marked in flight before it is sent: if the process dies now, the next run knows these
    // records may have reached the app (see record_history.sql.njk).
    await marked;
    let pending = batch;
    let attempt = 0;
    const reshaped = new Set<number>();
    while (pending.length > 0) {
      const retryNow: PlannedChange[] = [];
      const retryLater: PlannedChange[] = [];
      let wait = 0;
      for (const [change, outcome] of await sendSplitting(pending)) {
        const error = outcome.error;
        const learned = outcome.success ? outcome.appId : error?.kind === 'conflict' ? error.existingAppId : undefined;
        if (change.then && learned) retryNow.push({ ...change, action: change.then, appId: learned, then: undefined });
        else if (outcome.success) settle(change, outcome);
        else if (error?.kind === 'not_found' && (change.action === 'delete' || change.action === 'clear')) {
          // Already gone from the app: there is nothing left to delete or clear.
          settle(change, { ...outcome, success: true, result: { note: 'not found in the app; nothing to do', response: outcome.result } });
        } else if (error?.kind === 'not_found' && change.action === 'update' && (strategy === 'upsert' || strategy === 'mirror') && !reshaped.has(change.seq)) {
          reshaped.add(change.seq);
          retryNow.push({ ...change, action: 'create', appId: null });
        } else if (error?.kind === 'conflict' && change.action === 'create' && error.existingAppId && strategy !== 'create' && strategy !== 'send' && !reshaped.has(change.seq)) {
          reshaped.add(change.seq);
          retryNow.push({ ...change, action: 'update', appId: error.existingAppId });
        } else if ((error?.kind === 'transient' || error?.kind === 'rate_limited') && attempt < retryDelaysMs.length) {
          retryLater.push(change);
          wait = Math.max(wait, retryDelaysMs[attempt], error.retryAfterMs ?? 0);
        } else settle(change, outcome);
      }
      if (retryLater.length > 0) {
        attempt += 1;
        await sleep(wait);
      }
      pending = [...retryNow, ...retryLater];
    }
    options.onProgress?.(applied);
  };

  const marks = new GroupAppend((rows) => sql.warehouse.append(sql.stateSchema, 'sync_inflight', INFLIGHT_COLUMNS, rows));
  const rows = sql.stream('stream_changes', { run_id: runId });
  try {
    // Each batch is marked as soon as it is read, and up to `concurrency` batches are read ahead,
    // so the marks are written while earlier batches are sent. A mark may thus cover a batch that
    // a killed run had not sent yet: the next run treats it as maybe sent, the safe side.
    const mark = (batch: PlannedChange[]) => {
      const marked = marks.add([runId, batch[0].then ?? batch[0].action, batch[0].seq, batch[batch.length - 1].seq, new Date()]);
      marked.catch(() => undefined); // reported by deliver(), which awaits it before sending
      return { batch, marked };
    };
    const ready = readAhead(mapAsync(batches(rows, options.batchSize, options.deadline, options.signal), mark), options.concurrency);
    await pMap(ready, deliver, { concurrency: options.concurrency });
  } finally {
    // Even when the run breaks, what the app already answered must reach the warehouse.
    flush();
    await Promise.all(flushes);
  }
  return { applied };
}
