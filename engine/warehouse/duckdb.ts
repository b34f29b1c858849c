/** The DuckDB warehouse, on @duckdb/node-api. */
import { DuckDBInstance, DuckDBTypeId, JSDuckDBValueConverter, type DuckDBConnection, type DuckDBDataChunk, type DuckDBPreparedStatement, type DuckDBResult, type DuckDBValue } from '@duckdb/node-api';
import { dirname, resolve } from 'node:path';
import { mkdir, stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { EbbError } from '../errors.ts';
import type { DuckdbConfig } from '../config/schema.ts';
import { normaliseValue, type Column, type Dialect, type Param, type Row, type Warehouse } from './warehouse.ts';

export const duckdbDialect: Dialect = {
  name: 'duckdb',
  quote: (id) => `"${id.replaceAll('"', '""')}"`,
  catchesRowErrors: true,
  // A window's rows arrive in one piece (a row holds a group of changes: see
  // stream_changes.sql.njk). A 1M first run's JS heap peaked at 105 to 132 MB with windows of
  // 20,000, at 160 to 245 MB with 50,000; windows of 10,000 took about a second more of DuckDB's
  // CPU (a statement's own cost, a hundred times).
  changeWindow: 20_000,
  // In process, a statement answers at once: one window ahead keeps DuckDB's memory to two windows.
  changeWindowsAhead: 1,
};

/** The warehouse file is held by another process (DuckDB allows one writer per file). */
export class WarehouseBusyError extends EbbError {
  constructor(
    message: string,
    /** The process that holds the file, when DuckDB names it. */
    readonly pid?: number,
  ) {
    super(message);
  }
}

/**
 * Where the note that a command waits for a busy file goes: a person at a terminal is told why
 * nothing happens yet; logs and scripts get only the outcome. The scheduler takes it for its log.
 */
let busyNotice = (message: string): void => {
  if (process.stderr.isTTY) process.stderr.write(`${message}\n`);
};

/** Sends the "busy, waiting" notes of DuckdbWarehouse.open somewhere else than stderr. */
export function setBusyNotice(notice: (message: string) => void): void {
  busyNotice = notice;
}

/** How long opening a busy file waits for it: EBB_BUSY_WAIT_SECONDS, default 10. */
function busyWaitMs(): number {
  const seconds = Number(process.env.EBB_BUSY_WAIT_SECONDS ?? 10);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 10_000;
}

/** DuckDB's answer when another process holds the file: "Could not set lock on file ... (PID n)". */
function isLockError(message: string): boolean {
  return /could not set lock|conflicting lock/i.test(message);
}

/** The command line of a process, where the system shows it (Linux), e.g. `: ebb scheduler`. */
function commandOf(pid: string): string {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    // `node …/bin/ebb.js scheduler` reads better as `ebb scheduler`.
    const ebb = argv.findIndex((a) => /(^|\/)ebb(\.js)?$/.test(a));
    const shown = (ebb >= 0 ? ['ebb', ...argv.slice(ebb + 1)] : argv).join(' ').replace(/\s+/g, ' ');
    return shown ? `: ${shown.length > 120 ? `${shown.slice(0, 119)}…` : shown}` : '';
  } catch {
    return '';
  }
}

function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))}s`;
}

/** The WAL size at which a run's end checkpoints (DuckDB's own default threshold). */
const CHECKPOINT_AFTER = 16 * 1024 * 1024;
/** DuckDB's automatic checkpoint threshold while ebb has the file open (see open()). */
const AUTO_CHECKPOINT = '1GB';

/** Types whose DuckDB value is already the JS value of a row (JSON is a VARCHAR). */
const PLAIN_TYPES = new Set([DuckDBTypeId.VARCHAR, DuckDBTypeId.BOOLEAN, DuckDBTypeId.TINYINT, DuckDBTypeId.SMALLINT, DuckDBTypeId.INTEGER, DuckDBTypeId.FLOAT, DuckDBTypeId.DOUBLE]);

/**
 * The rows of a chunk, read a column at a time: each column's vector and type are looked up once,
 * not once a cell (the change set streams millions of rows). A value is the JS value of DuckDB's
 * JS converter, with normaliseValue's numbers; `names` are the result's column names in lower case.
 */
function chunkRows(chunk: DuckDBDataChunk, names: string[]): Row[] {
  const count = chunk.rowCount;
  const rows: Row[] = [];
  for (let r = 0; r < count; r++) rows.push({});
  for (let c = 0; c < names.length; c++) {
    const name = names[c];
    const vector = chunk.getColumnVector(c);
    const type = vector.type;
    const plain = PLAIN_TYPES.has(type.typeId);
    for (let r = 0; r < count; r++) {
      const value = vector.getItem(r);
      rows[r][name] = plain || value === null ? value : normaliseValue(JSDuckDBValueConverter(value, type, JSDuckDBValueConverter));
    }
  }
  return rows;
}

/** The column names of a result, as rows hold them. */
function lowerCaseNames(result: DuckDBResult): string[] {
  return result.deduplicatedColumnNames().map((name) => name.toLowerCase());
}

/** A timestamp as the UTC text that a TIMESTAMP column takes. */
export function utcText(d: Date): string {
  return d.toISOString().replace('T', ' ').replace('Z', '');
}

/** The last timestamp written as text: the rows of one append mostly share theirs. */
let lastDate: Date | undefined;
let lastText = '';

/** A row of append()'s JSON: a timestamp as UTC text, a bigint as its digits. */
function cells(row: Param[]): unknown[] {
  return row.map((cell) => {
    if (cell instanceof Date) {
      if (cell !== lastDate) {
        lastDate = cell;
        lastText = utcText(cell);
      }
      return lastText;
    }
    return typeof cell === 'bigint' ? (cell as bigint).toString() : cell;
  });
}

function bind(params: Param[]): DuckDBValue[] {
  return params.map((p) => (p instanceof Date ? utcText(p) : p)) as DuckDBValue[];
}

/** Reads a result to its end (at once, once interrupted). */
async function drain(result: DuckDBResult): Promise<void> {
  while ((await result.fetchChunk())?.rowCount) {
    // nothing to keep
  }
}

/** The connection that appends to one table, its queue, and its prepared inserts (by column list). */
interface Writer {
  conn: DuckDBConnection;
  queue: Queue;
  inserts: Map<string, DuckDBPreparedStatement>;
}

/** Serialises the statements of one connection: DuckDB runs one at a time per connection. */
class Queue {
  private tail: Promise<unknown> = Promise.resolve();
  constructor(private readonly explain: (e: unknown) => unknown) {}
  push<T>(job: () => Promise<T>): Promise<T> {
    const next = this.tail.then(job, job).catch((e: unknown) => Promise.reject(this.explain(e)));
    this.tail = next.catch(() => undefined);
    return next;
  }
}

/**
 * DuckDB's advice when it runs out of memory under its cap names its own SET statement; ebb's
 * cap is ebb.yml's `warehouse.memory_limit`, and the statement that failed (often the recording
 * of a large run, which the next run retries with the same memory) needs it raised.
 */
function memoryHint(memoryLimit: string | undefined): (e: unknown) => unknown {
  return (e) => {
    if (memoryLimit && e instanceof Error && e.message.startsWith('Out of Memory Error')) {
      e.message += `\nebb caps DuckDB at warehouse.memory_limit (${memoryLimit} in ebb.yml): raise it, or remove it to let DuckDB use up to 80% of RAM (see the README on what the cap must leave room for).`;
    }
    return e;
  };
}

export class DuckdbWarehouse implements Warehouse {
  readonly dialect = duckdbDialect;
  private readonly queue: Queue;
  private readonly columnTypesOf = new Map<string, Map<string, string>>();
  private readonly writers = new Map<string, Promise<Writer>>();
  /** What a statement's error becomes: DuckDB's, with ebb's word on its memory cap where that ran out. */
  private readonly explain: (e: unknown) => unknown;

  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
    /** The file's write-ahead log; null for a read-only or in-memory warehouse. */
    private readonly walPath: string | null,
    memoryLimit: string | undefined,
  ) {
    this.explain = memoryHint(memoryLimit);
    this.queue = new Queue(this.explain);
  }

  /**
   * Opens the DuckDB file named in ebb.yml (relative to the project directory). DuckDB lets one
   * process hold a file at a time; when another one holds it (a run, the scheduler between two
   * polls), this waits for it with a short backoff, up to `busyWaitMs` (EBB_BUSY_WAIT_SECONDS,
   * default 10 s), and then says which process holds it. `readOnly` opens an existing file in
   * DuckDB's READ_ONLY mode: it writes nothing, and several readers may share the file.
   */
  static async open(config: Pick<DuckdbConfig, 'path' | 'memory_limit'>, projectDir: string, options: { busyWaitMs?: number; readOnly?: boolean } = {}): Promise<DuckdbWarehouse> {
    const path = config.path === ':memory:' ? ':memory:' : resolve(projectDir, config.path);
    if (path !== ':memory:' && !options.readOnly) await mkdir(dirname(path), { recursive: true });
    const waitMs = options.busyWaitMs ?? busyWaitMs();
    const deadline = Date.now() + waitMs;
    let delay = 25;
    let told = false;
    let instance: DuckDBInstance;
    for (;;) {
      try {
        instance = await DuckDBInstance.create(path, options.readOnly ? { access_mode: 'READ_ONLY' } : undefined);
        break;
      } catch (e) {
        const message = (e as Error).message;
        if (!isLockError(message)) throw new EbbError(`cannot open the DuckDB warehouse ${config.path}: ${message}`);
        const pid = /PID (\d+)/.exec(message)?.[1];
        const holder = `another process${pid ? ` (PID ${pid}${commandOf(pid)})` : ''}`;
        const remaining = deadline - Date.now();
        if (remaining <= 0) {
          throw new WarehouseBusyError(
            `the warehouse ${config.path} is busy: ${holder} holds it${waitMs > 0 ? `, and still did after ${formatSeconds(waitMs)}` : ''}. ` +
              'DuckDB lets one process write to a file at a time; wait for that process to finish and try again ' +
              '(or set EBB_BUSY_WAIT_SECONDS to wait longer).',
            pid === undefined ? undefined : Number(pid),
          );
        }
        if (!told) busyNotice(`the warehouse ${config.path} is busy: ${holder} holds it; waiting up to ${formatSeconds(waitMs)}`);
        told = true;
        await sleep(Math.min(delay, remaining));
        delay = Math.min(delay * 2, 500);
      }
    }
    const conn = await instance.connect();
    // ebb's timestamps are UTC (SPEC §4), whatever the machine's time zone.
    await conn.run("SET TimeZone = 'UTC'");
    // Caps DuckDB's own memory, the bulk of a large run's footprint (validated by the config schema).
    if (config.memory_limit) await conn.run(`SET memory_limit = '${config.memory_limit}'`);
    // What DuckDB frees goes back to the system, by a thread of its allocator: after each task
    // that took more than 16 MB, not 128 MB, it keeps no cache of freed memory. A first run of a
    // million records peaked at 467 to 550 MiB (median 489) instead of 483 to 639 (median 556).
    // And when a statement frees more than 16 MB at once (a hash table of the plan or of the
    // record phase), every thread's cache is emptied then, not at 512 MB: median 500 MiB instead
    // of 523 over six runs each.
    await conn.run("SET allocator_flush_threshold = '16MB'");
    await conn.run("SET allocator_bulk_deallocation_flush_threshold = '16MB'");
    await conn.run('SET allocator_background_threads = true');
    const writable = path !== ':memory:' && !options.readOnly;
    // DuckDB checkpoints at the first commit after its WAL passed 16 MB: in a run, that is the
    // commit of an in-flight mark, and every send then waited for the plan's change set to be
    // compressed and written. ebb checkpoints at the end of a run instead (checkpoint()); the
    // higher threshold is left for what writes outside runs.
    if (writable) await conn.run(`SET checkpoint_threshold = '${AUTO_CHECKPOINT}'`);
    return new DuckdbWarehouse(instance, conn, writable ? `${path}.wal` : null, config.memory_limit);
  }

  run(sql: string, params: Param[] = []): Promise<number> {
    return this.queue.push(async () => (await this.conn.run(sql, bind(params))).rowsChanged);
  }

  runAndRead(sql: string, params: Param[] = []): Promise<Row[]> {
    return this.queue.push(async () => {
      const result = await this.conn.run(sql, bind(params));
      const names = lowerCaseNames(result);
      const rows: Row[] = [];
      for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) rows.push(...chunkRows(chunk, names));
      return rows;
    });
  }

  async *stream(sql: string, params: Param[] = []): AsyncIterable<Row[]> {
    // A connection of its own, so that writes can go on while the stream is read.
    const conn = await this.instance.connect();
    let result: DuckDBResult | undefined;
    let read = false;
    try {
      result = await conn.stream(sql, bind(params));
      const names = lowerCaseNames(result);
      for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) yield chunkRows(chunk, names);
      read = true;
    } catch (e) {
      throw this.explain(e) as Error;
    } finally {
      // A result left half read (a run that stopped sending) keeps the database, and the file's
      // lock, until it is garbage collected: interrupt it and let it end before closing.
      if (result && !read) {
        conn.interrupt();
        await drain(result).catch(() => undefined);
      }
      conn.closeSync();
    }
  }

  append(schema: string, table: string, columns: string[], rows: Param[][]): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    // Each table appends on a connection of its own: the small in-flight marks that hold up a
    // batch never wait behind a large flush of outcomes (appends do not conflict in DuckDB).
    // The rows travel as one JSON text that DuckDB unpacks: the event loop only stringifies them
    // (about a microsecond a row), and the insert and its commit run on DuckDB's threads, while
    // the next batches are sent. (The appender would convert and flush every cell on the loop.)
    const text = JSON.stringify(rows.map(cells));
    return this.writerFor(`${schema}.${table}`).then((writer) =>
      writer.queue.push(async () => {
        // Prepared once per table and columns: a run appends to the same table many times.
        const key = columns.join(',');
        let insert = writer.inserts.get(key);
        if (!insert) {
          const types = await this.columnTypes(writer.conn, schema, table);
          const cells = columns.map((c, i) => `r[${i + 1}]::${types.get(c) ?? 'VARCHAR'}`).join(', ');
          const target = `${duckdbDialect.quote(schema)}.${duckdbDialect.quote(table)} (${columns.map(duckdbDialect.quote).join(', ')})`;
          insert = await writer.conn.prepare(`INSERT INTO ${target} SELECT ${cells} FROM (SELECT unnest(from_json($1::JSON, '[["VARCHAR"]]')) AS r)`);
          writer.inserts.set(key, insert);
        }
        insert.bindVarchar(1, text);
        await insert.run();
      }),
    );
  }

  async prepareAppend(schema: string, table: string): Promise<void> {
    const writer = await this.writerFor(`${schema}.${table}`);
    await writer.queue.push(() => this.columnTypes(writer.conn, schema, table));
  }

  private writerFor(key: string): Promise<Writer> {
    let writer = this.writers.get(key);
    if (!writer) {
      writer = this.instance.connect().then((conn) => ({ conn, queue: new Queue(this.explain), inserts: new Map() }));
      this.writers.set(key, writer);
    }
    return writer;
  }

  /** The type of each column of a table (cached: ebb's own tables, which do not change under a run). */
  private async columnTypes(conn: DuckDBConnection, schema: string, table: string): Promise<Map<string, string>> {
    const key = `${schema}.${table}`;
    let types = this.columnTypesOf.get(key);
    if (!types) {
      const described = await conn.runAndReadAll(`select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ?`, [schema, table]);
      types = new Map(described.getRows().map((r) => [String(r[0]), String(r[1])]));
      this.columnTypesOf.set(key, types);
    }
    return types;
  }

  describe(sql: string): Promise<Column[]> {
    return this.queue.push(async () => {
      const reader = await this.conn.runAndReadAll(`describe ${sql}`);
      return reader.getRowObjectsJS().map((r) => ({ name: String(r.column_name), type: String(r.column_type) }));
    });
  }

  /** DuckDB has no query tags: a local file's cost is the process's. */
  tagRun(): void {}

  /**
   * Folds the WAL into the database file once it holds {@link CHECKPOINT_AFTER} or more. A
   * checkpoint that cannot run now (another connection's transaction) is left to the next run's
   * end, or to close().
   */
  async checkpoint(): Promise<void> {
    const walPath = this.walPath;
    if (!walPath || (await stat(walPath).then((s) => s.size, () => 0)) < CHECKPOINT_AFTER) return;
    await this.queue.push(() => this.conn.run('CHECKPOINT')).catch(() => undefined);
  }

  async close(): Promise<void> {
    for (const writer of this.writers.values()) {
      const { conn, queue } = await writer;
      await queue.push(async () => conn.closeSync());
    }
    await this.queue.push(async () => {
      // closeSync() checkpoints the file on the event loop (tens of ms after a small run, seconds
      // after a large one): `ebb serve` and the scheduler would stall meanwhile. CHECKPOINT runs on
      // DuckDB's threads, and leaves closeSync() nothing to write. Where it cannot run (a read-only
      // file), closeSync() does what is left.
      await this.conn.run('CHECKPOINT').catch(() => undefined);
      this.conn.closeSync();
      this.instance.closeSync();
    });
  }
}
