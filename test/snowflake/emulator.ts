/**
 * A Snowflake wire emulator: a local HTTP server that answers the endpoints that snowflake-sdk
 * calls (see shared/notes/snowflake.md) and runs the SQL on DuckDB, after the small translation
 * of ./translate.ts. It lets the real driver's code path run offline: login (password or key
 * pair), binds and array binds, type decoding, row counts, errors, chunked results, async
 * queries and session close. It tests the plumbing, not Snowflake's semantics: tests that use it
 * are labelled "emulated".
 *
 * Strict where that is cheap: it refuses RETURNING, ON CONFLICT, NOT MATCHED BY SOURCE, DuckDB-only
 * types and functions, semi-structured constructors in INSERT … VALUES, array binds on anything
 * but INSERT … VALUES, several statements in one request, and a MERGE whose source matches a
 * target row twice; and it upper-cases unquoted identifiers, so results name columns as
 * Snowflake does.
 *
 * Tasks and streams, which DuckDB does not have, live in the emulator's memory: CREATE [OR REPLACE]
 * TASK (with AFTER: task graphs, changed only while their root is suspended), ALTER TASK … RESUME|SUSPEND, DROP TASK, EXECUTE TASK, SHOW TASKS, CREATE [OR REPLACE]
 * STREAM … ON TABLE, DROP STREAM and SHOW STREAMS. Nothing fires on a schedule: a test fires a task
 * (executeTask, fireTasks), which runs its statement if its WHEN holds. A stream is a DuckDB view of
 * its whole table; it "has data" when the table's fingerprint differs from the one taken when a DML
 * statement last read the stream (which consumes it, as on Snowflake).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash, createPublicKey, randomBytes, randomUUID, verify } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DuckDBInstance, DuckDBTypeId, type DuckDBConnection, type DuckDBType, type DuckDBValue } from '@duckdb/node-api';
import {
  check,
  identifierOf,
  likePattern,
  mergeDuplicateCheck,
  nameParts,
  parseObjectStatement,
  significant,
  SnowflakeRejection,
  snowflakeString,
  splitValues,
  statementType,
  text,
  tokenize,
  translate,
  boundValues,
  type ObjectStatement,
  type Token,
} from './translate.ts';

export interface EmulatorOptions {
  /** Rows per result chunk: a larger result has its first chunk inline and the rest as chunk URLs. */
  chunkRows?: number;
  /** Accepted users, by login name: a password, or an RSA public key (PEM) for key-pair login. Default: any user with a non-empty password. */
  users?: Record<string, { password?: string; publicKey?: string }>;
  /** A directory for the databases (one DuckDB file each); default: in memory. */
  dataDir?: string;
  /** The port to listen on (default: any free one), on 127.0.0.1. */
  port?: number;
  /** Milliseconds added to every request before it is handled, as a distant warehouse would take (default 0). */
  latencyMs?: number;
}

interface Session {
  id: number;
  database: string;
  schema: string;
  conn: DuckDBConnection;
  /** What ALTER SESSION SET set, by parameter name. */
  parameters?: Record<string, string>;
}

/** What a query answered, kept for async fetches and chunk GETs. */
interface Stored {
  body: unknown;
  chunks: string[];
  session: string;
}

/** One statement that the emulator executed, as received: what tests and the bench inspect. */
export interface LoggedStatement {
  sql: string;
  /** Rows of bound values: 1 for plain binds, n for array binds, 0 without binds. */
  bindRows: number;
  describeOnly: boolean;
  /** The statement's QUERY_TAG (a statement parameter), if it had one. */
  queryTag?: string;
  /** When it ran (performance.now() of the emulator's process): statements run one at a time. */
  at: number;
  /** When its request arrived, before latencyMs; absent for the emulator's own statements. */
  arrivedAt?: number;
}

/**
 * Whether a statement needs a running virtual warehouse on Snowflake, and so keeps one from
 * suspending: anything but SHOW, DESCRIBE, ALTER SESSION, a describe-only request, and a SELECT of
 * the system functions answered from metadata (SYSTEM$LAST_CHANGE_COMMIT_TIME, SYSTEM$STREAM_HAS_DATA).
 */
export function needsWarehouse(statement: LoggedStatement): boolean {
  if (statement.describeOnly) return false;
  const sql = statement.sql.trim();
  if (/^(SHOW|DESCRIBE|DESC|ALTER\s+SESSION)\b/i.test(sql)) return false;
  return !/^SELECT\s+(SYSTEM\$(LAST_CHANGE_COMMIT_TIME|STREAM_HAS_DATA)\(\?\)\s+AS\s+\w+\s*,?\s*)+$/i.test(sql);
}

/** A task that CREATE TASK made, as SHOW TASKS reports it. Tests fire it with executeTask() or fireTasks(). */
export interface EmulatedTask {
  database: string;
  schema: string;
  name: string;
  /** The virtual warehouse, or null for a serverless task. */
  warehouse: string | null;
  schedule: string | null;
  comment: string | null;
  /** The WHEN condition as written, e.g. `SYSTEM$STREAM_HAS_DATA('EBB.S')`. */
  condition: string | null;
  /** The statement after AS, as written. */
  definition: string;
  state: 'started' | 'suspended';
  createdOn: Date;
  /** How many times its statement ran. */
  runs: number;
  /** The tasks it runs AFTER (DB.SCHEMA.NAME), in its task graph; empty for a root or standalone task. */
  predecessors: string[];
}

/** A stream that CREATE STREAM made. */
export interface EmulatedStream {
  database: string;
  schema: string;
  name: string;
  /** The table, view or dynamic table it watches: DB.SCHEMA.NAME. */
  table: string;
  /** What it watches, as SHOW STREAMS' source_type says. */
  sourceType: 'Table' | 'View' | 'Dynamic Table';
  /** Stale: not consumed within its source's retention period (a test sets it with makeStale). */
  stale: boolean;
  comment: string | null;
  createdOn: Date;
  /** The table's fingerprint when the stream was created or last consumed. */
  offset: string;
}

type Rowtype = { name: string; type: string; precision: number | null; scale: number | null; nullable: boolean; byteLength: number | null; length: number | null };

const PARAMETERS = [
  { name: 'TIMEZONE', value: 'UTC' },
  { name: 'TIMESTAMP_OUTPUT_FORMAT', value: 'YYYY-MM-DD HH24:MI:SS.FF3 TZHTZM' },
  { name: 'TIMESTAMP_NTZ_OUTPUT_FORMAT', value: 'YYYY-MM-DD HH24:MI:SS.FF3' },
  { name: 'TIMESTAMP_LTZ_OUTPUT_FORMAT', value: '' },
  { name: 'TIMESTAMP_TZ_OUTPUT_FORMAT', value: '' },
  { name: 'DATE_OUTPUT_FORMAT', value: 'YYYY-MM-DD' },
  { name: 'TIME_OUTPUT_FORMAT', value: 'HH24:MI:SS' },
  { name: 'BINARY_OUTPUT_FORMAT', value: 'HEX' },
  { name: 'CLIENT_STAGE_ARRAY_BINDING_THRESHOLD', value: 65280 },
];

/** Snowflake's name for an unquoted identifier in a login parameter: upper-cased, unless quoted. */
function identifierName(name: string): string {
  return name.startsWith('"') && name.endsWith('"') ? name.slice(1, -1).replaceAll('""', '"') : name.toUpperCase();
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** DuckDB's error, as the code and SQL state that Snowflake would send for its kind. */
function snowflakeError(e: unknown): { code: string; message: string; sqlState: string } {
  if (e instanceof SnowflakeRejection) return { code: e.code, message: e.message, sqlState: e.sqlState };
  const message = (e as Error).message;
  const kinds: Array<[RegExp, string, string]> = [
    [/^Parser Error/, '001003', '42000'],
    [/^Catalog Error/, '002003', '42S02'],
    [/^Binder Error/, '000904', '42000'],
    [/^Conversion Error|^Invalid Input Error/, '100038', '22018'],
    [/^Constraint Error/, '100072', '22000'],
  ];
  const [, code, sqlState] = kinds.find(([re]) => re.test(message)) ?? [null, '100000', 'P0000'];
  return { code, message: `SQL compilation error:\n${message}`, sqlState };
}

/** A bound value as DuckDB takes it; every value arrives as text, typed by the driver. */
function bindValue(type: string, value: unknown): DuckDBValue {
  if (value === null || value === undefined) return null;
  const s = String(value);
  switch (type) {
    case 'FIXED':
      return /^-?\d+$/.test(s) ? BigInt(s) : Number(s);
    case 'REAL':
      return Number(s);
    case 'BOOLEAN':
      return s.toLowerCase() === 'true' || s === '1';
    default:
      return s;
  }
}

/**
 * An INSERT whose VALUES list holds binds only, with many rows of them (array binds, or a long
 * list of tuples), run as one insert of the rows unpacked from one JSON text: DuckDB would parse,
 * bind and plan every value of a long VALUES list one by one. The rows and their types are the
 * ones bindValue gives (each column typed by its binds; undefined, to run the statement as it is,
 * when they differ from row to row).
 */
function bulkInsert(tokens: Token[], binds: Array<{ type: string; value: unknown }>, arrayBinds: boolean): { sql: string; rows: string } | undefined {
  const values = boundValues(tokens);
  if (!values || (arrayBinds ? values.tuples !== 1 : values.tuples < 2)) return undefined;
  const { width } = values;
  const count = arrayBinds ? (binds[0].value as unknown[]).length : values.tuples;
  const cell = (r: number, c: number): { type: string; value: unknown } => (arrayBinds ? { type: binds[c].type, value: (binds[c].value as unknown[])[r] } : binds[r * width + c]);
  // Each bind converted once: its value here, and its kind below.
  const converted = Array.from({ length: count }, (_v, r) =>
    Array.from({ length: width }, (_w, c) => {
      const { type, value } = cell(r, c);
      return value === null || value === undefined ? null : bindValue(type, value);
    }),
  );
  const types: string[] = [];
  for (let c = 0; c < width; c++) {
    const kinds = new Set<string>();
    for (let r = 0; r < count; r++) {
      const v = converted[r][c];
      if (v === null) continue;
      const wide = typeof v === 'bigint' && (v > 9223372036854775807n || v < -9223372036854775808n);
      kinds.add(typeof v === 'bigint' ? (wide ? 'HUGEINT' : 'BIGINT') : typeof v === 'number' ? 'DOUBLE' : typeof v === 'boolean' ? 'BOOLEAN' : 'VARCHAR');
    }
    // Integers and decimals make a DOUBLE column, as in a VALUES list; other mixes run as they are.
    const numeric = [...kinds].every((k) => k === 'BIGINT' || k === 'HUGEINT' || k === 'DOUBLE');
    if (kinds.size > 1 && !numeric) return undefined;
    types.push(kinds.has('DOUBLE') ? 'DOUBLE' : kinds.has('HUGEINT') ? 'HUGEINT' : ([...kinds][0] ?? 'VARCHAR'));
  }
  const rows = JSON.stringify(converted.map((row) => row.map((v) => (v === null ? null : String(v)))));
  const select = `SELECT ${types.map((t, c) => `r[${c + 1}]::${t}`).join(', ')} FROM (SELECT unnest(from_json(?, '[["VARCHAR"]]')) AS r)`;
  return { sql: `${text(tokens.slice(0, values.start))}${select}${text(tokens.slice(values.end))}`, rows };
}

/** "epochSeconds.fraction" with nine digits of fraction, as Snowflake sends timestamps. */
function epochText(nanos: bigint): string {
  const billion = 1_000_000_000n;
  let seconds = nanos / billion;
  let fraction = nanos % billion;
  if (fraction < 0n) {
    fraction += billion;
    seconds -= 1n;
  }
  return `${seconds}.${fraction.toString().padStart(9, '0')}`;
}

/** A result column in Snowflake's terms, and how its values become the strings of a rowset. */
function columnOf(name: string, type: DuckDBType): { rowtype: Rowtype; value: (v: DuckDBValue) => string | null } {
  const base = { name, nullable: true, byteLength: null, length: null };
  const id = type.typeId;
  const str = (v: DuckDBValue) => (v === null ? null : String(v));
  const integers = [DuckDBTypeId.TINYINT, DuckDBTypeId.SMALLINT, DuckDBTypeId.INTEGER, DuckDBTypeId.BIGINT, DuckDBTypeId.HUGEINT, DuckDBTypeId.UTINYINT, DuckDBTypeId.USMALLINT, DuckDBTypeId.UINTEGER, DuckDBTypeId.UBIGINT, DuckDBTypeId.UHUGEINT];
  if (integers.includes(id)) return { rowtype: { ...base, type: 'fixed', precision: 38, scale: 0 }, value: str };
  if (id === DuckDBTypeId.DECIMAL) {
    const { width, scale } = type as unknown as { width: number; scale: number };
    return { rowtype: { ...base, type: 'fixed', precision: width, scale }, value: str };
  }
  if (id === DuckDBTypeId.FLOAT || id === DuckDBTypeId.DOUBLE) return { rowtype: { ...base, type: 'real', precision: null, scale: null }, value: str };
  if (id === DuckDBTypeId.BOOLEAN) return { rowtype: { ...base, type: 'boolean', precision: null, scale: null }, value: (v) => (v === null ? null : v ? '1' : '0') };
  if (id === DuckDBTypeId.DATE) return { rowtype: { ...base, type: 'date', precision: null, scale: null }, value: (v) => (v === null ? null : String((v as unknown as { days: number }).days)) };
  const timestamp = (nanosOf: (v: DuckDBValue) => bigint, type: string) => ({
    rowtype: { ...base, type, precision: 0, scale: 9 },
    value: (v: DuckDBValue) => (v === null ? null : epochText(nanosOf(v))),
  });
  const field = (v: DuckDBValue, key: string) => (v as unknown as Record<string, bigint>)[key];
  if (id === DuckDBTypeId.TIMESTAMP) return timestamp((v) => field(v, 'micros') * 1000n, 'timestamp_ntz');
  if (id === DuckDBTypeId.TIMESTAMP_S) return timestamp((v) => field(v, 'seconds') * 1_000_000_000n, 'timestamp_ntz');
  if (id === DuckDBTypeId.TIMESTAMP_MS) return timestamp((v) => field(v, 'millis') * 1_000_000n, 'timestamp_ntz');
  if (id === DuckDBTypeId.TIMESTAMP_NS) return timestamp((v) => field(v, 'nanos'), 'timestamp_ntz');
  if (id === DuckDBTypeId.TIMESTAMP_TZ) return timestamp((v) => field(v, 'micros') * 1000n, 'timestamp_ltz');
  if (id === DuckDBTypeId.TIME) return timestamp((v) => field(v, 'micros') * 1000n, 'time');
  if (id === DuckDBTypeId.BLOB) {
    return { rowtype: { ...base, type: 'binary', precision: null, scale: null }, value: (v) => (v === null ? null : Buffer.from((v as unknown as { bytes: Uint8Array }).bytes).toString('hex').toUpperCase()) };
  }
  if (id === DuckDBTypeId.VARCHAR && type.alias === 'JSON') return { rowtype: { ...base, type: 'variant', precision: null, scale: null }, value: str };
  if ([DuckDBTypeId.LIST, DuckDBTypeId.STRUCT, DuckDBTypeId.MAP, DuckDBTypeId.ARRAY].includes(id)) {
    // Filled from the JSON form of the rows (see execute()).
    return { rowtype: { ...base, type: 'variant', precision: null, scale: null }, value: str };
  }
  return { rowtype: { ...base, type: 'text', precision: null, scale: null }, value: str };
}

/** base64url without padding, as JWTs use. */
const b64url = (s: string) => Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');

/** Checks a key-pair login's JWT: signed by the user's key, issued for this account and user, not expired. */
function verifyJwt(token: string, account: string, user: string, publicKeyPem: string): boolean {
  const [header, payload, signature] = token.split('.');
  if (!header || !payload || !signature) return false;
  const key = createPublicKey(publicKeyPem);
  if (!verify('RSA-SHA256', Buffer.from(`${header}.${payload}`), key, b64url(signature))) return false;
  const claims = JSON.parse(b64url(payload).toString('utf8')) as { iss?: string; sub?: string; exp?: number };
  const fingerprint = `SHA256:${createHash('sha256').update(key.export({ format: 'der', type: 'spki' })).digest('base64')}`;
  return (
    claims.iss === `${account.toUpperCase()}.${user.toUpperCase()}.${fingerprint}` &&
    claims.sub === `${account.toUpperCase()}.${user.toUpperCase()}` &&
    (claims.exp ?? 0) * 1000 > Date.now()
  );
}

export class SnowflakeEmulator {
  /** Requests per endpoint (login, query, chunk, result, monitoring, heartbeat, token, abort, telemetry, session-delete). */
  readonly requests: Record<string, number> = {};
  /** Every statement executed, in order. */
  readonly statements: LoggedStatement[] = [];
  private readonly sessions = new Map<string, Session>();
  private readonly results = new Map<string, Stored>();
  private readonly databases = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly taskRegistry = new Map<string, EmulatedTask>();
  private readonly streamRegistry = new Map<string, EmulatedStream>();
  private readonly interposed: Array<{ pattern: RegExp; sqlText: string; done: (error?: Error) => void }> = [];
  private readonly failures: Array<{ pattern: RegExp; error: SnowflakeRejection; times: number }> = [];
  /** The DuckDB tables that stand for dynamic tables, with their refresh mode. */
  private readonly dynamicTables = new Map<string, 'INCREMENTAL' | 'FULL'>();
  /** DML statements per table (DB.SCHEMA.NAME), for SYSTEM$LAST_CHANGE_COMMIT_TIME. */
  private readonly changes = new Map<string, number>();
  /** The objects with change tracking on (a stream on an object turns it on, as its owner's would). */
  private readonly changeTracking = new Set<string>();
  private nextSession = 1;
  /** Milliseconds added to every request (see EmulatorOptions.latencyMs); may be changed between requests. */
  latencyMs: number;

  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly server: Server,
    /** e.g. http://127.0.0.1:43121 */
    readonly url: string,
    private readonly options: EmulatorOptions,
  ) {
    this.latencyMs = options.latencyMs ?? 0;
  }

  /** Starts an emulator on 127.0.0.1. */
  static async start(options: EmulatorOptions = {}): Promise<SnowflakeEmulator> {
    const instance = await DuckDBInstance.create(':memory:');
    // The server exists before the emulator that handles its requests.
    const ready: { emulator?: SnowflakeEmulator } = {};
    const server = createServer((req, res) => {
      void ready.emulator!.handle(req, res);
    });
    await new Promise<void>((ok) => server.listen(options.port ?? 0, '127.0.0.1', ok));
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    ready.emulator = new SnowflakeEmulator(instance, server, `http://127.0.0.1:${port}`, options);
    return ready.emulator;
  }

  get port(): number {
    return Number(new URL(this.url).port);
  }

  /** Round trips in all, across endpoints. */
  get roundTrips(): number {
    return Object.values(this.requests).reduce((a, b) => a + b, 0);
  }

  /**
   * Waves of queries: a query request that arrives while no other one is in flight starts one.
   * A client that sends its independent statements side by side waits on one wave for all of them.
   */
  queryWaves = 0;
  private queriesInFlight = 0;

  /** Forgets the counters and the statement log (e.g. between the phases of a test). */
  resetCounts(): void {
    for (const k of Object.keys(this.requests)) delete this.requests[k];
    this.statements.length = 0;
    this.queryWaves = 0;
  }

  /**
   * Runs `sqlText` (Snowflake SQL) in the client's session just before the next statement that
   * matches `pattern` runs: a race made deterministic, e.g. another process taking a lock between
   * two statements of ebb's. Resolves once it ran.
   */
  interpose(pattern: RegExp, sqlText: string): Promise<void> {
    return new Promise((resolve, reject) => this.interposed.push({ pattern, sqlText, done: (error) => (error ? reject(error) : resolve()) }));
  }

  /**
   * Answers the next `times` statements that match `pattern` with an error instead of running
   * them, as Snowflake does when a statement could not run, e.g. 000625 (57014) for a lock that
   * others hold. The failed statements are in the log.
   */
  failNext(pattern: RegExp, error: { code: string; sqlState: string; message: string }, times = 1): void {
    this.failures.push({ pattern, error: new SnowflakeRejection(error.message, error.code, error.sqlState), times });
  }

  /** Makes a table (DB.SCHEMA.NAME, created before) a dynamic table, as dbt's `dynamic_table` materialisation would. */
  declareDynamicTable(name: string, refreshMode: 'INCREMENTAL' | 'FULL' = 'INCREMENTAL'): void {
    this.dynamicTables.set(nameParts(name).join('.'), refreshMode);
  }

  /** Makes a stream stale, as one not consumed within its source's retention period becomes. */
  makeStale(name: string): void {
    const found = this.streams().filter((s) => objectKey(s).endsWith(nameParts(name).join('.')));
    if (found.length !== 1) throw new Error(`no single stream named ${name}`);
    found[0].stale = true;
  }

  /** What ALTER SESSION SET set in each open session of the clients (not the emulator's own). */
  sessionParameters(): Array<Record<string, string>> {
    return [...this.sessions.values()].filter((s) => s.id > 0).map((s) => ({ ...s.parameters }));
  }

  /** The tasks that CREATE TASK made, in name order. */
  tasks(): EmulatedTask[] {
    return [...this.taskRegistry.values()].sort((a, b) => objectKey(a).localeCompare(objectKey(b)));
  }

  /** The streams that CREATE STREAM made, in name order. */
  streams(): EmulatedStream[] {
    return [...this.streamRegistry.values()].sort((a, b) => objectKey(a).localeCompare(objectKey(b)));
  }

  /**
   * Fires one task, as its schedule would: if its WHEN holds (or it has none), its statement runs in
   * the task's database and schema. `name` is the task's name, qualified as far as needed
   * (`EBB_X`, `EBB.EBB_X`, `"EBB"."EBB_X"`). Resolves with whether the statement ran; rejects
   * when it failed (Snowflake would record the failure in TASK_HISTORY).
   */
  executeTask(name: string): Promise<boolean> {
    return this.serialise(() => this.fire(this.findTask(name)));
  }

  /**
   * One round of the schedules: fires every started task with a schedule whose WHEN holds, then, as
   * in a task graph, each started task whose predecessors all ran in this round; resolves with the
   * names of those that ran.
   */
  fireTasks(): Promise<string[]> {
    return this.serialise(async () => {
      const ran = new Set<string>();
      for (const task of this.tasks()) if (task.state === 'started' && task.schedule !== null && (await this.fire(task))) ran.add(objectKey(task));
      for (let more = true; more; ) {
        more = false;
        for (const task of this.tasks()) {
          if (ran.has(objectKey(task)) || task.state !== 'started' || task.predecessors.length === 0 || !task.predecessors.every((p) => ran.has(p))) continue;
          if (await this.fire(task)) ran.add(objectKey(task));
          more = true;
        }
      }
      return this.tasks().filter((t) => ran.has(objectKey(t))).map((t) => t.name);
    });
  }

  /** The root of a task's graph: the task reached by following its first predecessor to the end. */
  private rootOf(task: EmulatedTask): EmulatedTask {
    const parent = task.predecessors.length ? this.taskRegistry.get(task.predecessors[0]) : undefined;
    return parent ? this.rootOf(parent) : task;
  }

  /** Runs Snowflake SQL as a client of database `database` would (translated and checked the same way); returns rows keyed by column name. */
  async sql(sql: string, database = 'DB'): Promise<Record<string, unknown>[]> {
    const session = await this.openSession(database, 'PUBLIC');
    try {
      const body = (await this.serialise(() => this.execute(session, { sqlText: sql }))) as { success: boolean; message?: string; data: { rowtype: Rowtype[]; rowset: (string | null)[][] } };
      if (!body.success) throw new Error(body.message);
      return body.data.rowset.map((r) => Object.fromEntries(body.data.rowtype.map((c, i) => [c.name, r[i]])));
    } finally {
      session.conn.closeSync();
    }
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((ok) => this.server.close(() => ok()));
    await this.serialise(async () => {
      for (const s of this.sessions.values()) s.conn.closeSync();
      this.sessions.clear();
      this.instance.closeSync();
    });
  }

  /** One statement at a time across sessions: DuckDB's write conflicts are not Snowflake's locking. */
  private serialise<T>(job: () => Promise<T>): Promise<T> {
    const next = this.queue.then(job, job);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private count(endpoint: string) {
    this.requests[endpoint] = (this.requests[endpoint] ?? 0) + 1;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const arrivedAt = performance.now();
    const query = url.pathname === '/queries/v1/query-request';
    if (query && this.queriesInFlight++ === 0) this.queryWaves++;
    try {
      // Outside serialise(): the requests of a client wait side by side, as on a network.
      if (this.latencyMs > 0) await sleep(this.latencyMs);
      const raw = await readBody(req);
      const body = raw.length === 0 ? {} : (JSON.parse(raw.toString('utf8')) as Record<string, unknown>);
      const path = url.pathname;
      if (req.method === 'GET' && path.startsWith('/chunks/')) return this.sendChunk(path, res);
      if (path === '/session/v1/login-request') {
        this.count('login');
        return send(200, await this.login(url, body));
      }
      if (path === '/telemetry/send') {
        this.count('telemetry');
        return send(200, { success: true, data: null });
      }
      const token = /Snowflake Token="([^"]+)"/.exec(req.headers.authorization ?? '')?.[1];
      const session = token ? this.sessions.get(token) : undefined;
      if (!session || !token) return send(401, { success: false, code: '390104', message: 'The session token is missing or invalid; log in first.', data: null });
      if (path === '/queries/v1/query-request') {
        this.count('query');
        return send(200, await this.query(token, session, body, req.headers.host ?? url.host, arrivedAt));
      }
      if (path === '/session' && url.searchParams.get('delete') === 'true') {
        this.count('session-delete');
        this.sessions.delete(token);
        for (const [id, stored] of this.results) if (stored.session === token) this.results.delete(id);
        await this.serialise(async () => session.conn.closeSync());
        return send(200, { success: true, data: null });
      }
      if (path === '/session/heartbeat') {
        this.count('heartbeat');
        return send(200, { success: true, data: {} });
      }
      if (path === '/session/token-request') {
        this.count('token');
        return send(200, { success: true, data: { sessionToken: token, validityInSecondsST: 3600, masterToken: token, validityInSecondsMT: 14400 } });
      }
      if (path === '/queries/v1/abort-request' || /^\/queries\/[^/]+\/abort-request$/.test(path)) {
        this.count('abort');
        return send(200, { success: true, data: null });
      }
      const result = /^\/queries\/([^/]+)\/result$/.exec(path);
      if (result) {
        this.count('result');
        const stored = this.results.get(result[1]);
        return send(200, stored?.body ?? { success: false, code: '000709', message: `Statement ${result[1]} not found`, data: { sqlState: '02000' } });
      }
      const monitoring = /^\/monitoring\/queries\/([^/]+)$/.exec(path);
      if (monitoring) {
        this.count('monitoring');
        const stored = this.results.get(monitoring[1]);
        const ok = (stored?.body as { success?: boolean } | undefined)?.success;
        return send(200, { success: true, data: { queries: stored ? [{ id: monitoring[1], status: ok ? 'SUCCESS' : 'FAILED_WITH_ERROR', errorCode: ok ? undefined : '100000' }] : [] } });
      }
      this.count('unknown');
      send(404, { success: false, code: '000404', message: `the emulator does not serve ${req.method} ${path}`, data: null });
    } catch (e) {
      send(500, { success: false, code: '000500', message: (e as Error).message, data: null });
    } finally {
      if (query) this.queriesInFlight--;
    }
  }

  private async login(url: URL, body: Record<string, unknown>): Promise<unknown> {
    const data = (body.data ?? {}) as Record<string, string | undefined>;
    const user = data.LOGIN_NAME ?? '';
    const account = data.ACCOUNT_NAME ?? '';
    const refuse = { success: false, code: '390100', message: 'Incorrect username or password was specified.', data: null };
    const known = this.options.users?.[user];
    if (this.options.users && !known) return refuse;
    if (data.AUTHENTICATOR === 'SNOWFLAKE_JWT') {
      if (!data.TOKEN || (known && (!known.publicKey || !verifyJwt(data.TOKEN, account, user, known.publicKey)))) {
        return { success: false, code: '390144', message: 'JWT token is invalid.', data: null };
      }
    } else if (!data.PASSWORD || (known && known.password !== data.PASSWORD)) return refuse;
    const database = identifierName(url.searchParams.get('databaseName') ?? 'DB');
    const schema = identifierName(url.searchParams.get('schemaName') ?? 'PUBLIC');
    const session = await this.openSession(database, schema);
    const token = randomBytes(24).toString('hex');
    this.sessions.set(token, session);
    return {
      success: true,
      data: {
        token,
        masterToken: token,
        validityInSeconds: 3600,
        masterValidityInSeconds: 14400,
        sessionId: session.id,
        // The session parameters that the client asked for come back, as Snowflake sends them (CLIENT_SESSION_KEEP_ALIVE…).
        parameters: [...PARAMETERS, ...Object.entries((body.data as { SESSION_PARAMETERS?: Record<string, unknown> } | undefined)?.SESSION_PARAMETERS ?? {}).map(([name, value]) => ({ name, value }))],
        sessionInfo: { databaseName: database, schemaName: schema, warehouseName: url.searchParams.get('warehouse'), roleName: url.searchParams.get('roleName') },
      },
    };
  }

  /** A DuckDB connection whose current database and schema are the session's (created when new, as an empty account would have them). */
  private openSession(database: string, schema: string): Promise<Session> {
    return this.serialise(async () => ({ id: this.nextSession++, database, schema, conn: await this.connect(database, schema) }));
  }

  /** A DuckDB connection in a database and schema (both created when new); the caller holds the queue. */
  private async connect(database: string, schema: string): Promise<DuckDBConnection> {
    const conn = await this.instance.connect();
    if (!this.databases.has(database)) {
      const file = this.options.dataDir ? join(this.options.dataDir, `${database}.duckdb`).replaceAll("'", "''") : ':memory:';
      await conn.run(`ATTACH IF NOT EXISTS '${file}' AS ${quote(database)}`);
      await conn.run(`CREATE SCHEMA IF NOT EXISTS ${quote(database)}."PUBLIC"`);
      this.databases.add(database);
    }
    await conn.run(`CREATE SCHEMA IF NOT EXISTS ${quote(database)}.${quote(schema)}`);
    await conn.run(`USE ${quote(database)}.${quote(schema)}`);
    await conn.run(`SET TimeZone = 'UTC'`);
    // Snowflake's functions of a VARIANT (TO_VARIANT becomes to_json): a number, and its text.
    await conn.run(`CREATE OR REPLACE TEMP MACRO is_real(v) AS json_type(v) IN ('DOUBLE', 'BIGINT', 'UBIGINT')`);
    // TO_VARCHAR(date or timestamp, format): the format elements that ebb's keys use, as strftime's.
    const format = ['YYYY:%Y', 'HH24:%H', 'MI:%M', 'MM:%m', 'DD:%d', 'SS:%S', 'FF3:%g', ' TZHTZM:%z'].reduce((f, pair) => {
      const [from, to] = pair.split(/:(?=%)/);
      return `replace(${f}, '${from}', '${to}')`;
    }, 'f');
    await conn.run(`CREATE OR REPLACE TEMP MACRO to_varchar(v) AS CAST(v AS VARCHAR), (v, f) AS strftime(v, ${format})`);
    // LISTAGG (see translate.ts): a VARCHAR holds at most 16 MB; Snowflake's error for a longer result.
    await conn.run(`CREATE OR REPLACE TEMP MACRO listagg_limit(s) AS CASE WHEN strlen(s) > 16777216 THEN error('String ''(LISTAGG result)'' is too long and would be truncated') ELSE s END`);
    // GET(object, key): the field named key, never read as a path.
    await conn.run(`CREATE OR REPLACE TEMP MACRO get(v, k) AS json_extract(v, '/' || replace(replace(k, '~', '~0'), '/', '~1'))`);
    return conn;
  }

  private async query(token: string, session: Session, body: Record<string, unknown>, host: string, arrivedAt: number): Promise<unknown> {
    const answer = (await this.serialise(() => this.execute(session, body, host, arrivedAt))) as { success: boolean; data: { queryId: string } };
    const queryId = answer.data?.queryId ?? randomUUID();
    const chunks = (answer as { chunkTexts?: string[] }).chunkTexts ?? [];
    delete (answer as { chunkTexts?: string[] }).chunkTexts;
    this.results.set(queryId, { body: answer, chunks, session: token });
    if (body.asyncExec === true) {
      return { success: true, code: '333334', message: 'Asynchronous execution in progress. Use provided query id to perform query monitoring and management.', data: { queryId, getResultUrl: `/queries/${queryId}/result` } };
    }
    return answer;
  }

  private sendChunk(path: string, res: ServerResponse): void {
    this.count('chunk');
    const [, , queryId, index] = path.split('/');
    const chunk = this.results.get(queryId)?.chunks[Number(index)];
    if (chunk === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('no such chunk');
      return;
    }
    // Not application/json: the driver would parse it, and a chunk is rows without the outer brackets.
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-encoding': 'gzip' });
    res.end(gzipSync(chunk));
  }

  /** Runs one request's statement; the answer in Snowflake's shape (errors included, as HTTP 200). */
  private async execute(session: Session, body: Record<string, unknown>, host = new URL(this.url).host, arrivedAt?: number): Promise<unknown> {
    const queryId = randomUUID();
    const sqlText = String(body.sqlText ?? '');
    const bindings = (body.bindings ?? {}) as Record<string, { type: string; value: unknown }>;
    const binds = Object.keys(bindings)
      .sort((a, b) => Number(a) - Number(b))
      .map((k) => bindings[k]);
    const arrayBinds = binds.some((b) => Array.isArray(b.value));
    const bindRows = arrayBinds ? (binds[0].value as unknown[]).length : binds.length > 0 ? 1 : 0;
    const describeOnly = body.describeOnly === true;
    const hook = this.interposed.findIndex((h) => h.pattern.test(sqlText));
    if (hook >= 0) {
      const [{ sqlText: before, done }] = this.interposed.splice(hook, 1);
      const answer = (await this.execute(session, { sqlText: before })) as { success: boolean; message?: string };
      done(answer.success ? undefined : new Error(answer.message));
    }
    const parameters = (body.parameters ?? {}) as Record<string, unknown>;
    this.statements.push({ sql: sqlText, bindRows, describeOnly, ...(typeof parameters.QUERY_TAG === 'string' && { queryTag: parameters.QUERY_TAG }), at: performance.now(), ...(arrivedAt !== undefined && { arrivedAt }) });
    try {
      const failure = this.failures.find((f) => f.times > 0 && f.pattern.test(sqlText));
      if (failure) {
        failure.times -= 1;
        throw failure.error;
      }
      const tokens = tokenize(sqlText);
      check(tokens, { arrayBinds, multiStatementCount: parameters.MULTI_STATEMENT_COUNT === undefined ? undefined : Number(parameters.MULTI_STATEMENT_COUNT) });
      if (/^SELECT\s+SYSTEM\$LAST_CHANGE_COMMIT_TIME\(/i.test(sqlText.trim())) return await this.changeTokens(session, binds.map((b) => String(b.value)), queryId);
      const object = parseObjectStatement(tokens);
      if (object) return await this.executeObject(session, object, queryId);
      const type = statementType(tokens);
      const translated = translate(tokens);
      const base = { queryId, statementTypeId: type.id, version: 1, parameters: PARAMETERS, queryResultFormat: 'json', finalDatabaseName: session.database, finalSchemaName: session.schema };
      const bulk = type.name === 'INSERT' && !describeOnly ? bulkInsert(translated, binds, arrayBinds) : undefined;
      const prepared = bulk ? undefined : await session.conn.prepare(text(translated));
      if (describeOnly && prepared) {
        const rowtype = Array.from({ length: prepared.columnCount }, (_v, i) => columnOf(prepared.columnName(i), prepared.columnType(i)).rowtype);
        return { success: true, data: { ...base, rowtype, rowset: [], total: 0, returned: 0 } };
      }
      const rowsOfBinds: DuckDBValue[][] = bulk
        ? []
        : arrayBinds
          ? Array.from({ length: bindRows }, (_v, r) => binds.map((b) => bindValue(b.type, (b.value as unknown[])[r])))
          : [binds.map((b) => bindValue(b.type, b.value))];
      if (type.name === 'MERGE') await this.refuseDuplicateMergeRows(session, translated, rowsOfBinds[0]);
      if (type.id >= 0x3000 && type.id < 0x4000) {
        let changed = 0;
        if (bulk) changed = (await session.conn.run(bulk.sql, [bulk.rows])).rowsChanged;
        else if (arrayBinds) {
          // Snowflake runs the INSERT … VALUES once per row of binds; here, as multi-row inserts.
          const { head, tuple } = splitValues(translated);
          for (let start = 0; start < rowsOfBinds.length; start += 500) {
            const part = rowsOfBinds.slice(start, start + 500);
            changed += (await session.conn.run(`${head} ${part.map(() => tuple).join(', ')}`, part.flat())).rowsChanged;
          }
        } else {
          if (rowsOfBinds[0].length > 0) prepared!.bind(rowsOfBinds[0]);
          changed = (await prepared!.run()).rowsChanged;
        }
        await this.consumeStreams(session, tokens);
        const target = dmlTarget(tokens);
        if (target) {
          const key = objectKey(this.resolveObject(session, target));
          this.changes.set(key, (this.changes.get(key) ?? 0) + 1);
        }
        const label = { INSERT: 'inserted', UPDATE: 'updated', DELETE: 'deleted', MERGE: 'merged' }[type.name] ?? 'changed';
        const rowtype = [{ name: `number of rows ${label}`, type: 'fixed', precision: 19, scale: 0, nullable: false, byteLength: null, length: null }];
        return { success: true, data: { ...base, rowtype, rowset: [[String(changed)]], total: 1, returned: 1 } };
      }
      if (rowsOfBinds[0].length > 0) prepared!.bind(rowsOfBinds[0]);
      const reader = await prepared!.runAndReadAll();
      if (type.id >= 0x6000) {
        const rowtype = [{ name: 'status', type: 'text', precision: null, scale: null, nullable: true, byteLength: null, length: null }];
        return { success: true, data: { ...base, rowtype, rowset: [['Statement executed successfully.']], total: 1, returned: 1 } };
      }
      const names = reader.columnNames();
      const columns = reader.columnTypes().map((t, i) => columnOf(names[i], t));
      const rows = reader.getRows();
      const nested = columns.map((c, i) => c.rowtype.type === 'variant' && !(reader.columnTypes()[i].typeId === DuckDBTypeId.VARCHAR));
      const json = nested.some(Boolean) ? reader.getRowsJson() : [];
      const rowset = rows.map((row, r) => row.map((v, i) => (nested[i] ? (v === null ? null : JSON.stringify(json[r][i])) : columns[i].value(v))));
      const size = Math.max(1, this.options.chunkRows ?? 1000);
      const chunkTexts: string[] = [];
      const chunks: Array<{ url: string; rowCount: number; uncompressedSize: number }> = [];
      for (let start = size; start < rowset.length; start += size) {
        const part = rowset.slice(start, start + size);
        // A chunk is the rows' JSON without the outer brackets, as the driver expects.
        const body = part.map((r) => JSON.stringify(r)).join(',');
        chunkTexts.push(body);
        chunks.push({ url: `http://${host}/chunks/${queryId}/${chunkTexts.length - 1}`, rowCount: part.length, uncompressedSize: body.length });
      }
      return {
        success: true,
        chunkTexts,
        data: { ...base, rowtype: columns.map((c) => c.rowtype), rowset: rowset.slice(0, size), total: rowset.length, returned: rowset.length, ...(chunks.length > 0 ? { chunks } : {}) },
      };
    } catch (e) {
      const { code, message, sqlState } = snowflakeError(e);
      return { success: false, code, message, data: { queryId, sqlState, errorCode: code, age: 0, internalError: false } };
    }
  }

  /** Runs a task or stream statement (see parseObjectStatement) against the registries; the answer in Snowflake's shape. */
  private async executeObject(session: Session, statement: ObjectStatement, queryId: string): Promise<unknown> {
    const base = { queryId, version: 1, parameters: PARAMETERS, queryResultFormat: 'json', finalDatabaseName: session.database, finalSchemaName: session.schema };
    const status = (message: string) => ({
      success: true,
      data: { ...base, statementTypeId: 0x6000, rowtype: [textColumn('status')], rowset: [[message]], total: 1, returned: 1 },
    });
    const missing = (kind: string, parts: string[]) => new SnowflakeRejection(`SQL compilation error:\n${kind} '${parts.join('.')}' does not exist or not authorized.`, '002003', '02000');
    switch (statement.kind) {
      case 'alter-session': {
        session.parameters = { ...session.parameters, ...statement.params };
        return status('Statement executed successfully.');
      }
      case 'create-task': {
        const [database, schema, name] = this.resolve(session, statement.name);
        await this.requireSchema(session, database, schema);
        const key = objectKey({ database, schema, name });
        if (this.taskRegistry.has(key) && statement.ifNotExists) return status(`${name} already exists, statement succeeded.`);
        if (this.taskRegistry.has(key) && !statement.replace) throw new SnowflakeRejection(`SQL compilation error:\nObject '${name}' already exists.`, '002002', '42710');
        const p = statement.params;
        if (p.WAREHOUSE !== undefined && p.USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE !== undefined) {
          throw compilation('a task takes WAREHOUSE or USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE (serverless), not both');
        }
        if (p.SCHEDULE !== undefined) checkSchedule(p.SCHEDULE);
        const predecessors = statement.after.map((parts) => {
          const found = this.taskRegistry.get(objectKey(this.resolveObject(session, parts)));
          if (!found) throw missing('Task', parts);
          if (found.database !== database || found.schema !== schema) throw compilation(`Task ${found.name} is in another schema: the tasks of a graph share one schema.`);
          return found;
        });
        if (predecessors.length > 0 && p.SCHEDULE !== undefined) throw compilation('A task with predecessors (AFTER) cannot have a schedule; only the root task of a graph has one.');
        const roots = new Set(predecessors.map((t) => objectKey(this.rootOf(t))));
        if (roots.size > 1) throw compilation(`The predecessors of ${name} belong to different task graphs (${[...roots].join(', ')}).`);
        // A graph changes only while its root is suspended: the new task's, and the one it replaces.
        const replaced = this.taskRegistry.get(key);
        const graphRoots = [...predecessors.map((t) => this.rootOf(t)), ...(replaced && (replaced.predecessors.length || this.tasks().some((t) => t.predecessors.includes(key))) ? [this.rootOf(replaced)] : [])];
        const running = graphRoots.find((r) => r.state === 'started');
        if (running) throw compilation(`Unable to update graph with root task ${running.database}.${running.schema}.${running.name} since that root task is not suspended.`);
        if (statement.condition !== null) streamCondition(statement.condition);
        await this.checkTaskBody(session, statement.body);
        this.taskRegistry.set(key, {
          database,
          schema,
          name,
          warehouse: p.WAREHOUSE ?? null,
          schedule: p.SCHEDULE ?? null,
          comment: p.COMMENT ?? null,
          condition: statement.condition,
          definition: statement.body,
          state: 'suspended',
          createdOn: new Date(),
          runs: 0,
          predecessors: predecessors.map(objectKey),
        });
        return status(`Task ${name} successfully created.`);
      }
      case 'alter-task': {
        const task = this.taskRegistry.get(objectKey(this.resolveObject(session, statement.name)));
        if (!task) {
          if (statement.ifExists) return status('Statement executed successfully.');
          throw missing('Task', statement.name);
        }
        if (statement.action === 'RESUME' && task.schedule === null && task.predecessors.length === 0) throw compilation(`Task ${task.name} has no schedule: it cannot be resumed (a standalone task runs by EXECUTE TASK)`);
        task.state = statement.action === 'RESUME' ? 'started' : 'suspended';
        return status('Statement executed successfully.');
      }
      case 'drop-task':
      case 'drop-stream': {
        const registry: Map<string, unknown> = statement.kind === 'drop-task' ? this.taskRegistry : this.streamRegistry;
        const target = this.resolveObject(session, statement.name);
        const key = objectKey(target);
        if (!registry.has(key)) {
          if (statement.ifExists) return status(`Drop statement executed successfully (${target.name} already dropped).`);
          throw missing(statement.kind === 'drop-task' ? 'Task' : 'Stream', statement.name);
        }
        registry.delete(key);
        // The tasks that ran after it lose it as a predecessor (with none left, they stand alone).
        for (const task of this.tasks()) task.predecessors = task.predecessors.filter((p) => p !== key);
        if (statement.kind === 'drop-stream') await session.conn.run(`DROP VIEW IF EXISTS ${quote(target.database)}.${quote(target.schema)}.${quote(target.name)}`);
        return status(`${target.name} successfully dropped.`);
      }
      case 'execute-task': {
        const task = this.taskRegistry.get(objectKey(this.resolveObject(session, statement.name)));
        if (!task) throw missing('Task', statement.name);
        await this.fire(task);
        return status(`Task ${task.name} is scheduled to run immediately.`);
      }
      case 'create-stream': {
        const [database, schema, name] = this.resolve(session, statement.name);
        await this.requireSchema(session, database, schema);
        const key = objectKey({ database, schema, name });
        if (this.streamRegistry.has(key) && statement.ifNotExists) return status(`${name} already exists, statement succeeded.`);
        if (this.streamRegistry.has(key) && !statement.replace) throw new SnowflakeRejection(`SQL compilation error:\nObject '${name}' already exists.`, '002002', '42710');
        const table = this.resolve(session, statement.table);
        const found = await this.objectKind(session.conn, table);
        if (found === null) throw missing(statement.on === 'VIEW' ? 'View' : 'Table', statement.table);
        if (found !== statement.on) throw compilation(`Object found is of type '${found.replace(' ', '_')}', not specified type '${statement.on.replace(' ', '_')}'.`);
        if (found === 'DYNAMIC TABLE' && this.dynamicTables.get(table.join('.')) !== 'INCREMENTAL') {
          throw compilation(`Change tracking is not supported on dynamic table '${table.join('.')}' with refresh mode FULL.`);
        }
        const relation = table.map(quote).join('.');
        await session.conn.run(`CREATE OR REPLACE VIEW ${quote(database)}.${quote(schema)}.${quote(name)} AS SELECT * FROM ${relation}`);
        this.changeTracking.add(table.join('.'));
        const sourceType = found === 'VIEW' ? 'View' : found === 'DYNAMIC TABLE' ? 'Dynamic Table' : 'Table';
        this.streamRegistry.set(key, { database, schema, name, table: table.join('.'), sourceType, stale: false, comment: statement.params.COMMENT ?? null, createdOn: new Date(), offset: await this.fingerprint(session.conn, table) });
        return status(`Stream ${name} successfully created.`);
      }
      case 'show': {
        const scope = statement.scope;
        const [database, schema] =
          scope?.kind === 'ACCOUNT'
            ? [null, null]
            : scope?.kind === 'SCHEMA'
              ? (() => {
                  const [d, s] = this.resolve(session, [...(scope.name.length ? scope.name : [session.schema]), '_']);
                  return [d, s];
                })()
              : [scope?.name[0] ?? session.database, null];
        const like = statement.like === null ? null : likePattern(statement.like);
        const inScope = (o: { database: string; schema: string; name: string }) => (database === null || o.database === database) && (schema === null || o.schema === schema) && (!like || like.test(o.name));
        if (statement.what !== 'TASKS' && statement.what !== 'STREAMS') {
          const objects = (await this.relations(session.conn)).filter((o) => o.kind === statement.what.slice(0, -1) && inScope(o));
          const columns = ['created_on', 'name', 'database_name', 'schema_name', 'owner', 'change_tracking', ...(statement.what === 'TABLES' ? ['is_dynamic'] : statement.what === 'DYNAMIC TABLES' ? ['refresh_mode'] : [])];
          const rowset = objects.map((o) => {
            const key = `${o.database}.${o.schema}.${o.name}`;
            const row: Record<string, string> = { created_on: new Date().toISOString(), name: o.name, database_name: o.database, schema_name: o.schema, owner: 'OWNER_ROLE', change_tracking: this.changeTracking.has(key) ? 'ON' : 'OFF', is_dynamic: 'N', refresh_mode: this.dynamicTables.get(key) ?? '' };
            return columns.map((c) => row[c]);
          });
          return { success: true, data: { ...base, statementTypeId: 0x4000, rowtype: columns.map(textColumn), rowset, total: rowset.length, returned: rowset.length } };
        }
        const objects = (statement.what === 'TASKS' ? this.tasks() : this.streams()).filter(inScope);
        const columns =
          statement.what === 'TASKS'
            ? ['created_on', 'name', 'id', 'database_name', 'schema_name', 'owner', 'comment', 'warehouse', 'schedule', 'predecessors', 'state', 'definition', 'condition', 'allow_overlapping_execution']
            : ['created_on', 'name', 'database_name', 'schema_name', 'owner', 'comment', 'table_name', 'source_type', 'base_tables', 'type', 'stale', 'mode'];
        const rowset = objects.map((o) => {
          const common = { created_on: o.createdOn.toISOString(), name: o.name, database_name: o.database, schema_name: o.schema, owner: 'EBB_ROLE', comment: o.comment };
          const row: Record<string, string | null> =
            'definition' in o
              ? { ...common, id: createHash('md5').update(objectKey(o)).digest('hex').slice(0, 16), warehouse: o.warehouse, schedule: o.schedule, predecessors: JSON.stringify(o.predecessors), state: o.state, definition: o.definition, condition: o.condition, allow_overlapping_execution: 'false' }
              : { ...common, table_name: o.table, source_type: o.sourceType, base_tables: o.table, type: 'DELTA', stale: String(o.stale), mode: 'DEFAULT' };
          return columns.map((c) => row[c] ?? null);
        });
        return { success: true, data: { ...base, statementTypeId: 0x4000, rowtype: columns.map(textColumn), rowset, total: rowset.length, returned: rowset.length } };
      }
    }
  }

  /**
   * SELECT SYSTEM$LAST_CHANGE_COMMIT_TIME(?) AS t0, …: one token per bound name, which moves with
   * each DML statement on that table (on any table, for a view: an over-approximation).
   */
  private async changeTokens(session: Session, names: string[], queryId: string): Promise<unknown> {
    const relations = await this.relations(session.conn);
    const total = [...this.changes.values()].reduce((a, b) => a + b, 0);
    const row = names.map((name) => {
      const target = this.resolveObject(session, nameParts(name));
      const found = relations.find((o) => o.database === target.database && o.schema === target.schema && o.name === target.name);
      if (!found) throw new SnowflakeRejection(`SQL compilation error:\nObject '${name}' does not exist or not authorized.`, '002003', '02000');
      return String(1_700_000_000_000_000_000n + BigInt(found.kind === 'VIEW' ? total : (this.changes.get(objectKey(target)) ?? 0)));
    });
    const rowtype = names.map((_n, i) => ({ name: `T${i}`, type: 'fixed', precision: 38, scale: 0, nullable: false, byteLength: null, length: null }));
    return { success: true, data: { queryId, statementTypeId: 0x1000, version: 1, parameters: PARAMETERS, queryResultFormat: 'json', rowtype, rowset: [row], total: 1, returned: 1 } };
  }

  /** The tables, views and dynamic tables of the databases (streams, which are DuckDB views here, left out). */
  private async relations(conn: DuckDBConnection): Promise<Array<{ database: string; schema: string; name: string; kind: 'TABLE' | 'VIEW' | 'DYNAMIC TABLE' }>> {
    const reader = await conn.runAndReadAll(
      `SELECT database_name, schema_name, table_name, 'TABLE' FROM duckdb_tables() WHERE NOT internal UNION ALL SELECT database_name, schema_name, view_name, 'VIEW' FROM duckdb_views() WHERE NOT internal`,
    );
    return reader
      .getRows()
      .map(([database, schema, name, kind]) => {
        const key = `${String(database)}.${String(schema)}.${String(name)}`;
        return { database: String(database), schema: String(schema), name: String(name), kind: (this.dynamicTables.has(key) ? 'DYNAMIC TABLE' : String(kind)) as 'TABLE' | 'VIEW' | 'DYNAMIC TABLE', key };
      })
      .filter((o) => !this.streamRegistry.has(o.key));
  }

  /** What an object is (DB.SCHEMA.NAME), or null when there is none. */
  private async objectKind(conn: DuckDBConnection, parts: string[]): Promise<'TABLE' | 'VIEW' | 'DYNAMIC TABLE' | null> {
    return (await this.relations(conn)).find((o) => o.database === parts[0] && o.schema === parts[1] && o.name === parts[2])?.kind ?? null;
  }

  /** [database, schema, name] of a name as written, completed from the session's database and schema. */
  private resolve(session: { database: string; schema: string }, parts: string[]): [string, string, string] {
    if (parts.length === 1) return [session.database, session.schema, parts[0]];
    if (parts.length === 2) return [session.database, parts[0], parts[1]];
    return [parts[parts.length - 3], parts[parts.length - 2], parts[parts.length - 1]];
  }

  private resolveObject(session: { database: string; schema: string }, parts: string[]): { database: string; schema: string; name: string } {
    const [database, schema, name] = this.resolve(session, parts);
    return { database, schema, name };
  }

  private async requireSchema(session: Session, database: string, schema: string): Promise<void> {
    const [{ n }] = (await session.conn.runAndReadAll('SELECT count(*) AS n FROM duckdb_schemas() WHERE database_name = ? AND schema_name = ?', [database, schema])).getRowObjectsJS();
    if (Number(n) === 0) throw new SnowflakeRejection(`SQL compilation error:\nSchema '${database}.${schema}' does not exist or not authorized.`, '002003', '02000');
  }

  /**
   * A task's statement is checked as any statement is (the dialect's rejections, DuckDB's parser
   * and binder); objects it names may not exist yet, as Snowflake resolves them when the task runs.
   */
  private async checkTaskBody(session: Session, body: string): Promise<void> {
    const tokens = tokenize(body);
    check(tokens);
    const type = statementType(tokens);
    if (!['INSERT', 'UPDATE', 'DELETE', 'MERGE'].includes(type.name)) throw compilation(`a task's statement here must be DML (INSERT, UPDATE, DELETE or MERGE), not ${type.name}`);
    try {
      await session.conn.prepare(text(translate(tokens)));
    } catch (e) {
      if (!/^Catalog Error/.test((e as Error).message)) throw e;
    }
  }

  /** Fires a task: evaluates its WHEN, then runs its statement in its database and schema. The caller holds the queue. */
  private async fire(task: EmulatedTask): Promise<boolean> {
    const conn = await this.connect(task.database, task.schema);
    const session: Session = { id: 0, database: task.database, schema: task.schema, conn };
    try {
      if (task.condition !== null) {
        const { streams, op } = streamCondition(task.condition);
        const has = await Promise.all(streams.map((s) => this.streamHasData(session, s)));
        if (!(op === 'AND' ? has.every(Boolean) : has.some(Boolean))) return false;
      }
      const answer = (await this.execute(session, { sqlText: task.definition })) as { success: boolean; message?: string };
      if (!answer.success) throw new Error(`task ${task.name} failed: ${answer.message}`);
      task.runs += 1;
      return true;
    } finally {
      conn.closeSync();
    }
  }

  private async streamHasData(session: Session, name: string): Promise<boolean> {
    const stream = this.streamRegistry.get(objectKey(this.resolveObject(session, nameParts(name))));
    if (!stream) throw new SnowflakeRejection(`SQL compilation error:\nStream '${name}' does not exist or not authorized.`, '002003', '02000');
    return (await this.fingerprint(session.conn, stream.table.split('.'))) !== stream.offset;
  }

  /** DML that reads a stream consumes it: its offset moves to the table as it is now. */
  private async consumeStreams(session: Session, tokens: Token[]): Promise<void> {
    if (this.streamRegistry.size === 0) return;
    for (const parts of qualifiedNames(tokens)) {
      const stream = this.streamRegistry.get(objectKey(this.resolveObject(session, parts)));
      if (stream) stream.offset = await this.fingerprint(session.conn, stream.table.split('.'));
    }
  }

  /** What a table holds, in one value: its row count and a sum of row hashes. */
  private async fingerprint(conn: DuckDBConnection, table: string[]): Promise<string> {
    const reader = await conn.runAndReadAll(`SELECT count(*) AS n, coalesce(sum(hash(*COLUMNS(*))), 0) AS h FROM ${table.map(quote).join('.')}`);
    const [[n, h]] = reader.getRows();
    return `${String(n)}:${String(h)}`;
  }

  private findTask(name: string): EmulatedTask {
    const parts = nameParts(name);
    const found = this.tasks().filter((t) => [t.database, t.schema, t.name].slice(3 - parts.length).join('.') === parts.join('.'));
    if (found.length !== 1) throw new Error(`${found.length === 0 ? 'no task' : 'several tasks'} named ${name}; the tasks are: ${this.tasks().map(objectKey).join(', ') || '(none)'}`);
    return found[0];
  }

  /** Snowflake refuses a MERGE in which one target row matches several source rows; DuckDB would apply them all. */
  private async refuseDuplicateMergeRows(session: Session, translated: ReturnType<typeof translate>, values: DuckDBValue[]): Promise<void> {
    const probe = mergeDuplicateCheck(translated);
    if (!probe) return;
    const reader = await session.conn.runAndReadAll(probe.sql, probe.binds.map((i) => values[i]));
    if (reader.currentRowCount > 0) {
      throw new SnowflakeRejection('Duplicate row detected during DML action\nRow Values: (a target row matched more than one source row)', '100090', '42P18');
    }
  }
}

const objectKey = (o: { database: string; schema: string; name: string }) => `${o.database}.${o.schema}.${o.name}`;

const textColumn = (name: string): Rowtype => ({ name, type: 'text', precision: null, scale: null, nullable: true, byteLength: null, length: null });

const compilation = (message: string) => new SnowflakeRejection(`SQL compilation error:\n${message}`, '001003', '42000');

/** Snowflake's schedules: `<n> MINUTE[S]` (1 to 11520) or `USING CRON <5 fields> <time zone>`. */
function checkSchedule(schedule: string): void {
  const minutes = /^(\d+)\s+MINUTES?$/i.exec(schedule.trim());
  if (minutes && Number(minutes[1]) >= 1 && Number(minutes[1]) <= 11520) return;
  if (/^USING\s+CRON\s+(\S+\s+){5}\S+$/i.test(schedule.trim())) return;
  throw compilation(`invalid value '${schedule}' for property 'SCHEDULE': use '<1 to 11520> MINUTE' or 'USING CRON <min> <hour> <day> <month> <weekday> <time zone>'`);
}

/** The streams of a WHEN condition: SYSTEM$STREAM_HAS_DATA('<stream>') calls joined by OR, or by AND; nothing else is emulated. */
function streamCondition(condition: string): { streams: string[]; op: 'OR' | 'AND' } {
  const sig = tokenize(condition).filter(significant);
  const streams: string[] = [];
  const ops = new Set<string>();
  for (let i = 0; i < sig.length; i += 5) {
    const [fn, open, arg, close, op] = sig.slice(i, i + 5);
    if (fn?.text.toUpperCase() !== 'SYSTEM$STREAM_HAS_DATA' || open?.text !== '(' || arg?.kind !== 'string' || close?.text !== ')') {
      throw compilation(`invalid WHEN condition '${condition}': only SYSTEM$STREAM_HAS_DATA('<stream>') calls, joined by OR or by AND, are emulated`);
    }
    streams.push(snowflakeString(arg.text));
    if (op) ops.add(op.text.toUpperCase());
  }
  if (ops.size > 1 || [...ops].some((o) => o !== 'OR' && o !== 'AND')) throw compilation(`invalid WHEN condition '${condition}': join the calls by OR or by AND`);
  return { streams, op: ops.has('AND') ? 'AND' : 'OR' };
}

/** Every (possibly qualified) name that a statement mentions: what may be a stream that it reads. */
function qualifiedNames(tokens: Token[]): string[][] {
  const sig = tokens.filter(significant);
  const names: string[][] = [];
  for (let i = 0; i < sig.length; i++) {
    if (sig[i].kind !== 'word' && sig[i].kind !== 'quoted') continue;
    const parts = [identifierOf(sig[i])];
    while (sig[i + 1]?.text === '.' && (sig[i + 2]?.kind === 'word' || sig[i + 2]?.kind === 'quoted')) {
      parts.push(identifierOf(sig[i + 2]));
      i += 2;
    }
    names.push(parts);
  }
  return names;
}

/** The table a DML statement writes: the name after INSERT [OVERWRITE] INTO, UPDATE, DELETE FROM or MERGE INTO. */
function dmlTarget(tokens: Token[]): string[] | undefined {
  const sig = tokens.filter(significant);
  let i = 0;
  while (sig[i]?.kind === 'word' && /^(INSERT|OVERWRITE|INTO|UPDATE|DELETE|FROM|MERGE)$/i.test(sig[i].text)) i++;
  return qualifiedNames(sig.slice(i))[0];
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  const raw = Buffer.concat(parts);
  // The driver may or may not have gzipped the body, whatever its header says.
  return raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw;
}
