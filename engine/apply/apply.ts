/**
 * Apply: stream the change set out of the warehouse in batches and send them through the plugin,
 * under the connection's concurrency, with the business and technical retries of SPEC §3.
 * No warehouse commit waits on the path of a batch: each batch is sent only under a durable
 * in-flight mark, but a window of the change set is marked as a whole, in one statement beside
 * the one that reads it, and read ahead of the sends; and the outcomes are written behind the
 * answers, the answers of many batches per statement. After a crash, only the batches on the
 * wire, in a window marked and not yet sent, or answered but not yet written are in doubt. A
 * create that could make a duplicate is marked alone, just before it is sent. */
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import type { Action, Change, Outcome, Session, Strategy } from '../../plugins/plugin.ts';
import type { Sql } from '../warehouse/sql.ts';
import type { Param, Row } from '../warehouse/warehouse.ts';
import { toJson } from '../redact.ts';
import { lazyChange } from '../../plugins/shared/json.ts';
import { LimiterUnavailableError } from './limiter.ts';

/** A change of the change set, with its position in it. */
interface PlannedChange extends Omit<Change, 'record'> {
  seq: number;
  /** The transformed record: the warehouse's JSON text, parsed only if the plugin reads it (see lazyChange). */
  record: string;
  /** This create only learns the record's identifier; the change to make next is this action. */
  then?: Action;
}

export interface ApplyOptions {
  sql: Sql;
  runId: string;
  /** The change set's last seq: plan numbers its rows 1 to this. */
  lastSeq: number;
  /** Rows of the change set read per statement (default: the dialect's changeWindow). */
  seqWindow?: number;
  session: Session;
  strategy: Strategy;
  batchSize: number;
  concurrency: number;
  /** Milliseconds to wait before each technical retry; its length is the number of retries. */
  retryDelaysMs: number[];
  /** The longest wait an app may ask for (`Retry-After`); past it the record is DELAYED to the next run. Default: no cap. */
  maxWaitMs?: number;
  /** A create sent twice cannot make two records: an unanswered create is retried rather than left in doubt. */
  idempotentCreate?: boolean;
  /** Nothing lands in the app before the session commits: outcomes need not be durable batch by batch. */
  atomicRun?: boolean;
  /** Epoch milliseconds after which nothing more is sent (`max_run_seconds`). */
  deadline?: number;
  /** Once aborted, nothing more is sent, as at the deadline (ebb worker on SIGTERM). */
  signal?: AbortSignal;
  /** Why the connection's limiter refused to send (Redis lost), once it did: nothing more is sent, and the run fails. */
  unavailable?: () => Error | undefined;
  /** Called with the number of records that got their final outcome. */
  onProgress?: (applied: number) => void;
}

/** What apply did. Records it did not send (deadline, signal, stopped) have no outcome and are recorded DELAYED. */
export interface ApplyResult {
  applied: number;
  /** Why sending stopped early as a failure of the run (the app unreachable); undefined otherwise. */
  stopped?: string;
  /** Why records were left for the next run (the time limit, a long Retry-After, a signal), if they were. */
  deferred?: string;
}

const OUTCOME_COLUMNS = ['run_id', 'seq', 'action', 'success', 'app_identifier', 'result', 'error_kind', 'recorded_at'];
const INFLIGHT_COLUMNS = ['run_id', 'action', 'seq_lo', 'seq_hi', 'sent_at'];
const BATCH_OUTCOME_COLUMNS = ['run_id', 'seq_lo', 'seq_hi', 'action', 'app_identifiers', 'results', 'recorded_at'];
/** Separates the identifiers, and the results, of a row of sync_batch_outcomes, and the records of a row of stream_changes: JSON text never holds it unescaped. */
const SEPARATOR = '\x1f';
/** The most characters of identifiers and results in one row of sync_batch_outcomes. */
const MAX_BATCH_TEXT = 1_000_000;
/** After this many sends in a row got no answer at all (refused, DNS, reset), the run stops sending. */
const BREAKER_SENDS = 3;
/**
 * How long answered outcomes wait for more before they are written (milliseconds), unless a send
 * waits for them: a DuckDB statement costs about a millisecond of CPU whatever its rows (1.0 ms
 * for one row, 1.4 ms for a hundred), and a fast app answers a batch every millisecond or so. A
 * warehouse whose statements take longer than this groups them anyway, without the wait.
 */
export const OUTCOME_LINGER_MS = 50;
/** The most batches read ahead of the sends, or answered and not yet written, per slot of the connection's concurrency. */
const MAX_LEAD_PER_SLOT = 32;

/** A change as a row of stream_changes lists it (its record apart). */
type Listed = [seq: number, key: string, action: Action, appId: string | null, inDoubt: boolean];

/** The changes of a row of stream_changes, a group of them in seq order (see stream_changes.sql.njk). */
function ungroup(row: Row): PlannedChange[] {
  const records = String(row.records).split(SEPARATOR);
  return (JSON.parse(String(row.changes)) as Listed[]).map(([seq, key, action, appId, inDoubt], i): PlannedChange => {
    const change: PlannedChange = { seq, key, action, record: records[i], appId };
    // A record that a stopped create may have put in the app, under an id ebb never learned: to
    // remove it, learn the id first. The create is idempotent here (else the record would be
    // NEEDS_REVIEW), so it answers with the existing record's id, or makes the record that the
    // removal then takes away.
    if (inDoubt && !appId && (action === 'delete' || action === 'clear')) return { ...change, action: 'create', then: action };
    return change;
  });
}

/** Rows of the first window: small, so that the first batch leaves soon; each next window is twice the one before, up to the full window. */
const FIRST_SEQ_WINDOW = 5_000;

/** Changes of the change set, and what their sends wait for: the in-flight marks of their window and of every window before it. */
interface Chunk {
  changes: PlannedChange[];
  marked: Promise<unknown>;
}

/** A batch of changes of one action, and what its send waits for (see Chunk). */
interface Batch {
  changes: PlannedChange[];
  marked: Promise<unknown>;
}

/**
 * The change set in seq order, one statement per window of seqs; `mark(from, to)`, if given,
 * marks each window beside its statement. While one window is read, the statements of the `ahead`
 * windows after it are on their way (see Dialect.changeWindowsAhead).
 */
async function* changeSet(sql: Sql, runId: string, lastSeq: number, window: number, ahead: number, mark?: (from: number, to: number) => Promise<unknown>): AsyncIterable<Chunk> {
  let marked: Promise<unknown> = Promise.resolve();
  let openedTo = 0;
  let size = 0;
  const opened: Array<{ rows: AsyncIterator<Row[]>; first: Promise<IteratorResult<Row[]>>; marked: Promise<unknown> }> = [];
  /** Opens the next windows, each twice the one before (up to `window`), until `ahead` are open and unread. */
  const openAhead = () => {
    while (opened.length < ahead && openedTo < lastSeq) {
      const from = openedTo + 1;
      size = Math.min(window, size === 0 ? FIRST_SEQ_WINDOW : size * 2);
      openedTo = Math.min(from + size - 1, lastSeq);
      if (mark) {
        marked = Promise.all([marked, mark(from, openedTo)]);
        marked.catch(() => undefined);
      }
      const rows = sql.stream('stream_changes', { run_id: runId, seq_from: from, seq_to: openedTo })[Symbol.asyncIterator]();
      const first = rows.next();
      first.catch(() => undefined);
      opened.push({ rows, first, marked });
    }
  };
  openAhead();
  try {
    for (let current = opened.shift(); current; current = opened.shift()) {
      const { rows, first, marked: windowMarked } = current;
      try {
        for (let chunk = await first; !chunk.done; chunk = await rows.next()) {
          // The next windows' statements start once this one answered: they run while this window
          // is sent (a row here holds many changes: a window may come in one piece).
          openAhead();
          // A group at a time: a window's changes are made as they are sent, not all at once.
          for (const row of chunk.value) yield { changes: ungroup(row), marked: windowMarked };
        }
        openAhead();
      } finally {
        await rows.return?.();
      }
    }
  } finally {
    // Sending stopped before the last windows: their statements are ended, not left holding the warehouse.
    for (const left of opened.splice(0)) await left.first.then(() => left.rows.return?.(), () => undefined);
  }
}

/** Groups the change set into batches of one action; stops reading once `stop()` says so. */
async function* batches(chunks: AsyncIterable<Chunk>, size: number, stop: () => unknown): AsyncIterable<Batch> {
  let batch: PlannedChange[] = [];
  // The marks that its last change waits for, and so the ones before (see Chunk).
  let marked: Promise<unknown> = Promise.resolve();
  for await (const chunk of chunks) {
    for (const change of chunk.changes) {
      if (batch.length > 0 && (batch.length >= size || batch[0].action !== change.action)) {
        if (stop()) return;
        yield { changes: batch, marked };
        batch = [];
      }
      batch.push(change);
      marked = chunk.marked;
    }
  }
  if (batch.length > 0) yield { changes: batch, marked };
}

/**
 * Group commit: rows added while a write is under way go together in the next write, so batches
 * answered at once share one statement; so do the rows added in one turn of the event loop, as a
 * write starts only after that turn, and once the first of its rows waited `linger()`
 * milliseconds (now() starts it at once, or as soon as the write under way ends). Each add()
 * resolves when its rows are written.
 */
class GroupAppend {
  private pending: Array<{ rows: Param[][]; done: (error?: unknown) => void }> = [];
  /** When the first of the pending rows was added; -Infinity once now() asked for them. */
  private since = 0;
  private writing = false;
  /** Cancels the write that is set to start, if one is. */
  private cancel: (() => void) | undefined;

  constructor(
    private readonly write: (rows: Param[][]) => Promise<void>,
    private readonly linger: () => number = () => 0,
  ) {}

  add(rows: Param[][]): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.pending.length === 0) this.since = performance.now();
      this.pending.push({ rows, done: (error) => (error === undefined ? resolve() : reject(error as Error)) });
      this.schedule();
    });
  }

  /** Starts a write of every pending row now, or as soon as the write under way ends. */
  now(): void {
    this.cancel?.();
    this.cancel = undefined;
    if (this.pending.length === 0) return;
    if (this.writing) {
      this.since = -Infinity;
      return;
    }
    const group = this.pending;
    this.pending = [];
    this.writing = true;
    void this.write(group.flatMap((g) => g.rows))
      .then(() => undefined, (e: unknown) => e ?? new Error('write failed'))
      .then((error) => {
        this.writing = false;
        for (const g of group) g.done(error);
        this.schedule();
      });
  }

  /** Sets the next write to start once the first pending rows waited `linger()` (after this turn at the least). */
  private schedule(): void {
    if (this.cancel || this.pending.length === 0 || this.writing) return;
    const wait = this.since + this.linger() - performance.now();
    if (wait > 0) {
      const timer = setTimeout(() => this.now(), wait);
      this.cancel = () => clearTimeout(timer);
    } else {
      const immediate = setImmediate(() => this.now());
      this.cancel = () => clearImmediate(immediate);
    }
  }
}

/** An exponentially weighted mean: recent samples count most. */
class Mean {
  value: number | undefined;
  add(sample: number): void {
    this.value = this.value === undefined ? sample : (this.value + sample) / 2;
  }
}

/**
 * How far the reads run ahead of the sends, and the outcomes behind the answers, measured as the
 * run goes: while one statement is written, `concurrency × statement time / send time` batches
 * start. Four times that many are read ahead, on top of those on the wire, and at least one batch
 * per slot, so that a read or a statement slower than the ones before does not hold up the
 * sends, however fast the warehouse is next to the app. Answered batches may wait for their
 * outcomes to be written up to `max`, not the lead (see applyChanges).
 */
class Pace {
  readonly statementMs = new Mean();
  readonly sendMs = new Mean();

  constructor(
    private readonly concurrency: number,
    /** The most batches read ahead, or answered and not yet written. */
    readonly max: number,
  ) {}

  /** Batches that may be read ahead of the sends. */
  lead(): number {
    const { value: statement } = this.statementMs;
    const { value: send } = this.sendMs;
    const during = statement === undefined || send === undefined ? 0 : Math.floor((this.concurrency * statement) / Math.max(send, 0.01));
    return Math.min(this.max, Math.max(this.concurrency, 4 * during));
  }

  /** Times a send, or a warehouse write, for the lead. */
  async time<T>(write: Promise<T>, into: Mean): Promise<T> {
    const started = performance.now();
    const result = await write;
    into.add(performance.now() - started);
    return result;
  }
}

/**
 * The batches to send, read up to `pace.lead()` ahead of the sends, in the background, so that
 * the sends never wait for a read while the lead holds. A batch is taken once the marks that it
 * waits for are durable (see Chunk).
 */
class ReadAhead {
  /** Batches read and not yet taken, in order. */
  private readonly queue: Batch[] = [];
  private readonly source: AsyncIterator<Batch>;
  /** The read under way, if one is. */
  private reading: Promise<void> | undefined;
  private ended = false;
  private failure: { error: unknown } | undefined;
  /** Wakes a taker that waits for a batch to be read. */
  private wake: (() => void) | undefined;

  constructor(
    source: AsyncIterable<Batch>,
    private readonly pace: Pace,
  ) {
    this.source = source[Symbol.asyncIterator]();
  }

  /** Whether fewer batches than the lead are read and not taken. */
  private short(): boolean {
    return !this.ended && this.queue.length < Math.max(1, this.pace.lead());
  }

  /** Starts reading batches, unless a read is under way, until the lead is full or the change set ends. */
  read(): void {
    if (this.reading || !this.short()) return;
    this.reading = this.readUntilFull().finally(() => {
      this.reading = undefined;
      this.wake?.();
    });
  }

  private async readUntilFull(): Promise<void> {
    try {
      while (this.short()) {
        const next = await this.source.next();
        if (next.done) this.ended = true;
        else this.queue.push(next.value);
        this.wake?.();
      }
    } catch (error) {
      this.failure = { error };
      this.ended = true;
    }
  }

  /** The next batch, once the marks it waits for are durable; undefined at the end of the change set. */
  async next(): Promise<PlannedChange[] | undefined> {
    // Woken by each batch read, and when a read ends (a read that was ending when this began could not start again).
    for (this.read(); this.queue.length === 0 && !this.ended; this.read()) await new Promise<void>((resolve) => (this.wake = resolve));
    this.wake = undefined;
    const head = this.queue.shift();
    this.read();
    if (!head) {
      if (this.failure) throw this.failure.error;
      return undefined;
    }
    await head.marked;
    return head.changes;
  }

  /** Stops reading: the batches read and not taken are never sent. */
  async stop(): Promise<void> {
    this.ended = true;
    await this.reading;
    this.queue.length = 0;
  }
}

/** Sends changes of possibly different actions: one plugin call per action. */
async function send(session: Session, changes: PlannedChange[]): Promise<Array<[PlannedChange, Outcome]>> {
  const byAction = new Map<Action, PlannedChange[]>();
  if (changes.every((c) => c.action === changes[0].action)) byAction.set(changes[0].action, changes);
  else {
    for (const c of changes) {
      const group = byAction.get(c.action);
      if (group) group.push(c);
      else byAction.set(c.action, [c]);
    }
  }
  const pairs: Array<[PlannedChange, Outcome]> = [];
  for (const group of byAction.values()) {
    let outcomes: Outcome[];
    try {
      // A record is parsed (losslessly: the app gets the warehouse's digits, plugins/shared/json.ts) only if the plugin reads it.
      outcomes = await session.apply(group.map(({ key, action, record, appId }) => lazyChange({ key, action, appId }, record)));
    } catch (e) {
      // A plugin that throws fails the batch, not the run: each record keeps a definite outcome. A
      // full or read-only disk, an app that cannot be reached, or a limiter that is gone (Redis
      // lost: the run then fails) leaves nothing half done.
      const message = (e as Error).message;
      const code = (e as NodeJS.ErrnoException).code;
      const noAnswer = e instanceof LimiterUnavailableError || (code !== undefined && unreachable.has(code)) ? ('connect' as const) : undefined;
      outcomes = group.map((c) => ({ key: c.key, success: false, error: { kind: 'transient', message, ...(noAnswer && { noAnswer }) } }));
    }
    // Outcomes in the order of the changes (as plugins return them) need no lookup by key.
    const inOrder = outcomes.length === group.length && outcomes.every((o, i) => o.key === group[i].key);
    const byKey = inOrder ? undefined : new Map(outcomes.map((o) => [o.key, o]));
    for (let i = 0; i < group.length; i++) {
      const change = group[i];
      pairs.push([change, (byKey ? byKey.get(change.key) : outcomes[i]) ?? { key: change.key, success: false, error: { kind: 'rejected', message: 'the plugin returned no outcome for this record' } }]);
    }
  }
  return pairs;
}

/**
 * The outcomes of records that succeeded at their first send, in seq order, as rows of
 * sync_batch_outcomes where they can be: one row for each run of consecutive seqs of one action
 * whose results are all absent or all present, and whose identifiers are all the ones the change
 * set holds (or, for a record without one, its key) or can all be listed; the rest one by one.
 * A row per record was most of what apply cost the warehouse (and Snowflake, a statement per
 * few thousand records).
 */
function batchOutcomes(runId: string, succeeded: Array<[PlannedChange, Outcome]>, at: Date): { single: Array<[PlannedChange, Outcome]>; batches: Param[][] } {
  const single: Array<[PlannedChange, Outcome]> = [];
  const batches: Param[][] = [];
  let run: Array<[PlannedChange, Outcome]> = [];
  let ids: Array<string | null> = [];
  let results: string[] = [];
  let keyed = true;
  let listed = true;
  let size = 0;
  const end = () => {
    if (run.length === 1) single.push(run[0]);
    else if (run.length > 1) {
      const [first] = run[0];
      const [last] = run[run.length - 1];
      batches.push([runId, first.seq, last.seq, first.action, keyed ? null : ids.join(SEPARATOR), results.length > 0 ? results.join(SEPARATOR) : null, at]);
    }
    run = [];
    ids = [];
    results = [];
    keyed = listed = true;
    size = 0;
  };
  for (const pair of succeeded) {
    const [change, outcome] = pair;
    const id = outcome.appId ?? change.appId ?? null;
    const result = outcome.result === undefined || outcome.result === null ? null : toJson(outcome.result);
    const isKeyed = id === (change.appId ?? change.key);
    const isListed = typeof id === 'string' && id !== '' && !id.includes(SEPARATOR);
    const previous = run.at(-1)?.[0];
    const fits =
      previous !== undefined &&
      change.seq === previous.seq + 1 &&
      change.action === previous.action &&
      (result === null) === (results.length === 0) &&
      ((keyed && isKeyed) || (listed && isListed)) &&
      size + (id?.length ?? 0) + (result?.length ?? 0) + 2 <= MAX_BATCH_TEXT;
    if (!fits) end();
    run.push(pair);
    ids.push(id);
    if (result !== null) results.push(result);
    keyed &&= isKeyed;
    listed &&= isListed;
    size += (id?.length ?? 0) + (result?.length ?? 0) + 2;
  }
  end();
  return { single, batches };
}

/** Error codes of a plugin failure that reached nothing: no disk space, no connection. */
const unreachable = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/** How a record that got no final answer in this run is recorded: DELAYED (not applied) or NEEDS_REVIEW (may be applied). */
type Deferral = 'delayed' | 'in_doubt';

/** Applies the run's change set; returns when every sent record has its outcome in the warehouse. */
export async function applyChanges(options: ApplyOptions): Promise<ApplyResult> {
  const { sql, runId, session, strategy, retryDelaysMs, deadline, signal } = options;
  const maxWaitMs = options.maxWaitMs ?? Infinity;
  let applied = 0;

  // Why nothing more is sent: a failure of the run (breaker, an error), the signal or the deadline.
  let stopped: string | undefined;
  let failure: unknown;
  const halt = new AbortController();
  const stopRun = (reason: string) => {
    stopped ??= reason;
    halt.abort();
  };
  const onAbort = () => halt.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  let deferred: string | undefined;
  const stopReason = (): string | undefined => {
    if (stopped) return stopped;
    if (failure !== undefined) return 'the run failed';
    if (signal?.aborted) return 'the run was asked to stop';
    if (deadline !== undefined && Date.now() >= deadline) return 'the time limit (max_run_seconds) was reached';
    return undefined;
  };
  /** Waits before a retry; returns why the retry must not happen, if it must not. */
  const pause = async (ms: number): Promise<string | undefined> => {
    const before = stopReason();
    if (before) return before;
    // A wait never runs past the deadline: the records go to the next run at once instead.
    if (deadline !== undefined && Date.now() + ms > deadline) return `the time limit (max_run_seconds) comes before a retry, ${Math.round(ms / 100) / 10} s later`;
    await sleep(ms, undefined, { signal: halt.signal }).catch(() => undefined);
    return stopReason();
  };

  // Circuit breaker: sends that got no answer at all, in a row, across batches.
  let unanswered = 0;
  const observe = (pairs: Array<[PlannedChange, Outcome]>) => {
    const noAnswer = pairs.filter(([, o]) => o.error?.noAnswer);
    if (noAnswer.length < pairs.length) unanswered = 0;
    else if (++unanswered >= BREAKER_SENDS) stopRun(`stopped after ${unanswered} batches in a row got no answer from the app: ${noAnswer[0][1].error!.message}`);
  };

  const rowOf = (change: PlannedChange, outcome: Outcome, deferral?: Deferral, note?: string, at = new Date()): Param[] => {
    const result = outcome.success ? (outcome.result ?? null) : { ...(note && { note }), error: outcome.error, response: outcome.result };
    const json = result === null || result === undefined ? null : toJson(result);
    return [runId, change.seq, change.action, outcome.success, outcome.appId ?? change.appId ?? null, json, deferral ?? outcome.error?.kind ?? null, at];
  };
  const pace = new Pace(options.concurrency, MAX_LEAD_PER_SLOT * options.concurrency);
  // Each statement is timed for the lead; what waits for it to start is not.
  const appender = (table: string, columns: string[], linger?: () => number) =>
    new GroupAppend((rows) => pace.time(sql.warehouse.append(sql.stateSchema, table, columns, rows), pace.statementMs), linger);
  // Outcomes linger (OUTCOME_LINGER_MS), unless a send waits for them (see the loop below) or the
  // run is ending.
  let ending = false;
  const linger = () => (ending ? 0 : OUTCOME_LINGER_MS);
  const outcomes = appender('sync_outcomes', OUTCOME_COLUMNS, linger);
  const batchRows = appender('sync_batch_outcomes', BATCH_OUTCOME_COLUMNS, linger);
  const writeOutcomes = () => {
    outcomes.now();
    batchRows.now();
  };
  // The marks of the batches that their senders mark (creates that could duplicate, an atomic plugin's).
  const marks = appender('sync_inflight', INFLIGHT_COLUMNS);
  // What the appends need of their tables is looked up while the change set's first rows are
  // read, not on the path of the first batch (a round trip on Snowflake). An error shows in the append.
  const prepared = Promise.all(['sync_inflight', 'sync_outcomes', 'sync_batch_outcomes'].map((table) => sql.warehouse.prepareAppend(sql.stateSchema, table))).catch(() => undefined);
  // Outcomes are written behind the answers: a batch does not wait for its outcomes to be durable
  // to free its slot (see `settling` for how far behind they may be). A failed write fails the run.
  const write = (rows: Param[][], batches: Param[][] = []): Promise<void> => {
    const records = batches.reduce((n, b) => n + Number(b[2]) - Number(b[1]) + 1, rows.length);
    if (records === 0) return Promise.resolve();
    const added = [rows.length > 0 && outcomes.add(rows), batches.length > 0 && batchRows.add(batches)];
    return Promise.all(added).then(
      () => {
        applied += records;
        options.onProgress?.(applied);
      },
      (e: unknown) => {
        failure ??= e;
        halt.abort();
      },
    );
  };
  const markAction = (batch: PlannedChange[]) => batch[0].then ?? batch[0].action;
  const markRow = (batch: PlannedChange[]): Param[] => [runId, markAction(batch), batch[0].seq, batch[batch.length - 1].seq, new Date()];
  // A batch in doubt after a crash is sent again by the next run, except creates that could make
  // a duplicate (NEEDS_REVIEW): those are in doubt only if they were on the wire, so they are
  // neither marked ahead nor sent while earlier outcomes are still being written.
  const resendable = (batch: PlannedChange[]) => options.idempotentCreate || !['create', 'send'].includes(markAction(batch));
  // For an atomic plugin one mark says "begun, not committed"; elsewhere each batch is marked.
  let atomicMark: Promise<void> | undefined;
  const markAtomic = (batch: PlannedChange[]) => (atomicMark ??= marks.add([markRow(batch)]));
  /** Records marked in flight that will not be sent: DELAYED and not in doubt, as if never marked (no result). */
  const unsent = (batch: PlannedChange[]): Param[][] => batch.map((c) => [runId, c.seq, c.action, false, c.appId ?? null, null, 'delayed', new Date()]);
  const mayDuplicate = (change: PlannedChange) => !options.idempotentCreate && (change.action === 'create' || change.action === 'send');

  // A batch that the app refused as a whole is split in half until the bad records are isolated.
  const sendSplitting = async (changes: PlannedChange[]): Promise<Array<[PlannedChange, Outcome]>> => {
    const pairs = await send(session, changes);
    if (changes.length > 1 && pairs.every(([, o]) => !o.success && o.error?.kind === 'rejected' && o.error.wholeBatch)) {
      const half = Math.ceil(changes.length / 2);
      return [...(await sendSplitting(changes.slice(0, half))), ...(await sendSplitting(changes.slice(half)))];
    }
    return pairs;
  };

  /** Sends a batch to its end; returns the writes of its outcomes. */
  const deliver = async (batch: PlannedChange[]): Promise<Array<Promise<void>>> => {
    const writes: Array<Promise<void>> = [];
    // Checked now, when the batch is about to be sent: a batch never sent is recorded DELAYED.
    const stop = stopReason();
    if (stop) {
      deferred ??= stop;
      return options.atomicRun ? [] : [write(unsent(batch))];
    }
    // Marked in flight before it is sent: if the process dies now, the next run knows these
    // records may have reached the app (see record_history.sql.njk). Other batches were marked with their window.
    if (options.atomicRun) await markAtomic(batch);
    else if (!resendable(batch)) await marks.add([markRow(batch)]);
    let pending = batch;
    // The last answer of each record that waits for a retry, kept for its history if it is not retried.
    const last = new Map<number, Outcome>();
    // Records that wait for a technical retry which will not come in this run: DELAYED, with their last answer.
    const notRetried = (changes: PlannedChange[], reason: string) => changes.map((c) => rowOf(c, last.get(c.seq)!, 'delayed', `not tried again in this run: ${reason}`));
    let attempt = 0;
    const reshaped = new Set<number>();
    const remarks: PlannedChange[] = [];
    while (pending.length > 0) {
      const retryNow: PlannedChange[] = [];
      let retryLater: PlannedChange[] = [];
      const done: Param[][] = [];
      // Records that succeeded at the batch's first send (each as the change set holds it): written
      // a run of seqs per row where they can be.
      const firstSend = pending === batch;
      const succeeded: Array<[PlannedChange, Outcome]> = [];
      let wait = 0;
      // An update answered "not found" goes again as a create: marked as one before it is sent.
      if (remarks.length > 0) await marks.add(remarks.splice(0).map((c) => [runId, c.action, c.seq, c.seq, new Date()]));
      const pairs = await pace.time(sendSplitting(pending), pace.sendMs);
      // The lead may have grown with the send's time: read on now, not when the next batch is taken.
      ahead.read();
      observe(pairs);
      // Without its rate limiter nothing more can be sent: that fails the run, not the records.
      const lost = options.unavailable?.();
      if (lost) stopRun(lost.message);
      const at = new Date();
      for (const [change, outcome] of pairs) {
        const error = outcome.error;
        const learned = outcome.success ? outcome.appId : error?.kind === 'conflict' ? error.existingAppId : undefined;
        if (change.then && learned) retryNow.push({ ...change, action: change.then, appId: learned, then: undefined });
        else if (outcome.success) {
          if (firstSend) succeeded.push([change, outcome]);
          else done.push(rowOf(change, outcome, undefined, undefined, at));
        } else if (lost && error?.noAnswer === 'connect') done.push(rowOf(change, outcome, 'delayed', `not sent in this run: ${lost.message}`));
        else if (error?.kind === 'not_found' && (change.action === 'delete' || change.action === 'clear')) {
          // Already gone from the app: there is nothing left to delete or clear.
          done.push(rowOf(change, { ...outcome, success: true, result: { note: 'not found in the app; nothing to do', response: outcome.result } }));
        } else if (error?.kind === 'not_found' && change.action === 'update' && (strategy === 'upsert' || strategy === 'mirror') && !reshaped.has(change.seq)) {
          reshaped.add(change.seq);
          const create: PlannedChange = { ...change, action: 'create', appId: null };
          retryNow.push(create);
          if (mayDuplicate(create)) remarks.push(create);
        } else if (error?.kind === 'conflict' && change.action === 'create' && error.existingAppId && strategy !== 'create' && strategy !== 'send' && !reshaped.has(change.seq)) {
          reshaped.add(change.seq);
          retryNow.push({ ...change, action: 'update', appId: error.existingAppId });
        } else if (error?.noAnswer === 'sent' && mayDuplicate(change)) {
          // Sent, and no answer: the app may have made the record. Sending it again could make a
          // second one, so a lookup or a person decides (NEEDS_REVIEW).
          done.push(rowOf(change, outcome, 'in_doubt', 'sent, but ebb did not learn the outcome and the identifier: the app may hold the record'));
        } else if ((error?.kind === 'transient' || error?.kind === 'rate_limited') && attempt < retryDelaysMs.length) {
          const asked = error.retryAfterMs ?? 0;
          if (asked > maxWaitMs) {
            const reason = `the app asked to wait ${Math.round(asked / 1000)} s (Retry-After), more than retry.max_wait_seconds (${maxWaitMs / 1000})`;
            deferred ??= reason;
            done.push(rowOf(change, outcome, 'delayed', `${reason}; it goes first in the next run`));
          } else {
            retryLater.push(change);
            last.set(change.seq, outcome);
            wait = Math.max(wait, retryDelaysMs[attempt], asked);
          }
        } else done.push(rowOf(change, outcome, undefined, undefined, at));
      }
      const { single, batches } = batchOutcomes(runId, succeeded, at);
      for (const [change, outcome] of single) done.push(rowOf(change, outcome, undefined, undefined, at));
      writes.push(write(done, batches));
      if (retryLater.length > 0) {
        attempt += 1;
        const reason = await pause(wait);
        if (reason) {
          deferred ??= reason;
          writes.push(write(notRetried(retryLater, reason)));
          retryLater = [];
        }
      }
      pending = [...retryNow, ...retryLater];
      // A business retry is sent at once, unless sending has stopped meanwhile.
      const reason = pending.length > 0 ? stopReason() : undefined;
      if (reason) {
        deferred ??= reason;
        writes.push(
          write([
          ...retryNow.map((c) => rowOf(c, { key: c.key, success: false, appId: c.appId, error: { kind: 'transient', message: reason } }, 'delayed', `not sent in this run: ${reason}`)),
          ...notRetried(retryLater, reason),
          ]),
        );
        pending = [];
      }
    }
    return writes;
  };

  // Up to `concurrency` batches on the wire, and up to `concurrency + pace.max` from their mark
  // until their outcomes are written: what a crash would leave in doubt. Every batch that started is
  // seen to its end, even when another one fails, so that no outcome is written after the run
  // was recorded.
  const running = new Set<Promise<unknown>>();
  const settling = new Set<Promise<unknown>>();
  /** Wakes the loop below when a batch leaves either set: one callback per batch, where a race of both sets would add one to each member at every turn. */
  let wake: (() => void) | undefined;
  const track = (set: Set<Promise<unknown>>, promise: Promise<unknown>) => {
    set.add(promise);
    void promise.finally(() => {
      set.delete(promise);
      wake?.();
    });
  };
  const start = (batch: PlannedChange[]) => {
    const delivered = deliver(batch).catch((e: unknown) => {
      failure ??= e;
      halt.abort();
      return [];
    });
    track(running, delivered);
    track(settling, delivered.then((writes) => Promise.all(writes)));
  };
  // Each window of the change set is marked in flight as a whole, beside the statement that reads
  // it (not for an atomic plugin: its one mark says "begun, not committed"). The records marked
  // and not sent when sending stops are recorded DELAYED, not in doubt.
  let markedTo = 0;
  let sentTo = 0;
  const markWindow = (from: number, to: number) => {
    markedTo = to;
    return sql.run('mark_window', { run_id: runId, seq_from: from, seq_to: to, idempotent_create: options.idempotentCreate ?? false });
  };
  const delayMarked = async () => {
    if (sentTo >= markedTo) return;
    const records = await sql.run('outcomes_delayed', { run_id: runId, seq_from: sentTo + 1, seq_to: markedTo });
    applied += records;
    options.onProgress?.(applied);
  };
  const { changeWindow, changeWindowsAhead } = sql.warehouse.dialect;
  const chunks = changeSet(sql, runId, options.lastSeq, options.seqWindow ?? changeWindow, changeWindowsAhead, options.atomicRun ? undefined : markWindow);
  const ahead = new ReadAhead(batches(chunks, options.batchSize, stopReason), pace);
  try {
    for (let batch = await ahead.next(); batch; batch = await ahead.next()) {
      // Outcomes may fall behind the answers by pace.max batches, no further: held unwritten, they
      // would grow with the change set (an atomic plugin's too, though they count only once it
      // commits). Not by the measured lead: an outcome statement is written while the answers of
      // the one before wait for it, and one slower than the mean (every few statements on a
      // distant warehouse) then stopped every send until it ended. Such batches can be sent again.
      const behind = options.atomicRun || resendable(batch) ? pace.max : 0;
      while (running.size >= options.concurrency || settling.size >= options.concurrency + behind) {
        if (settling.size >= options.concurrency + behind) writeOutcomes();
        await new Promise<void>((resolve) => (wake = resolve));
      }
      sentTo = batch[batch.length - 1].seq;
      start(batch);
    }
  } catch (e) {
    // The change set could not be read, or a mark not written: nothing more is sent.
    failure ??= e;
    halt.abort();
  } finally {
    // Records marked ahead of a stop were never sent: DELAYED, not in doubt.
    if (stopReason()) {
      track(
        settling,
        ahead.stop().then(delayMarked).catch((e: unknown) => {
          failure ??= e;
        }),
      );
    }
    signal?.removeEventListener('abort', onAbort);
    ending = true;
    writeOutcomes();
    while (settling.size > 0) await Promise.all(settling);
    await prepared;
  }
  if (failure !== undefined) throw failure;
  return { applied, stopped, deferred: deferred ?? stopReason() };
}
