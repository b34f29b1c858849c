/**
 * The Snowflake warehouse, on snowflake-sdk. One connection (one Snowflake session) serves every
 * statement of a Warehouse; values come back normalised to the JS types that the DuckDB warehouse
 * returns, so that engine code never branches on the warehouse.
 *
 * The endpoint is Snowflake's by default, or any other one (`access_url`, or `host`, `port` and
 * `protocol` in ebb.yml): a proxy, a private link, or the wire emulator under test/snowflake/.
 */
import { resolve } from 'node:path';
import type * as SnowflakeSdk from 'snowflake-sdk';
import type { Bind, Column as SfColumn, Connection, ConnectionOptions, RowStatement, SnowflakeError, StatementOption } from 'snowflake-sdk';
import { EbbError } from '../errors.ts';
import { importModule } from '../import-module.ts';
import { redact } from '../redact.ts';
import type { SnowflakeConfig } from '../config/schema.ts';
import { DriverError, normaliseValue, type Column, type Dialect, type Param, type Row, type Warehouse } from './warehouse.ts';

/**
 * Snowflake upper-cases unquoted identifiers, and ebb.yml names columns in lower case (`email`).
 * A plain lower-case word is therefore quoted upper-cased (`"EMAIL"`, the column that
 * `CREATE TABLE t (email ...)` made); any other name is quoted exactly as written, so
 * `"Mixed Case"` stays case-sensitive. Inner quotes are doubled: no name can break out.
 */
export function quoteSnowflake(identifier: string): string {
  const name = /^[a-z_][a-z0-9_$]*$/.test(identifier) ? identifier.toUpperCase() : identifier;
  return `"${name.replaceAll('"', '""')}"`;
}

/** The name by which ebb.yml refers to a column that Snowflake reports: the inverse of quoteSnowflake. */
export function unquotedName(name: string): string {
  return /^[A-Z_][A-Z0-9_$]*$/.test(name) ? name.toLowerCase() : name;
}

/**
 * Snowflake has TRY_CAST, but no try() of any expression: a failing mapping expression fails the
 * statement. A statement costs a round trip (100 ms or more), so apply reads large windows, and
 * two ahead of the one it sends: with one, every window waited for its statement once the window
 * before had been sent (170 to 330 ms each, a third of a 100,000-record apply with 100 ms per request).
 */
export const snowflakeDialect: Dialect = { name: 'snowflake', quote: quoteSnowflake, catchesRowErrors: false, changeWindow: 50_000, changeWindowsAhead: 2 };

/** A timestamp as the UTC text that a TIMESTAMP_NTZ column takes. */
function utcText(d: Date): string {
  return d.toISOString().replace('T', ' ').replace('Z', '');
}

function toBind(p: Param | undefined): Bind {
  if (p === undefined) return null;
  return p instanceof Date ? utcText(p) : p;
}

type Sdk = typeof SnowflakeSdk;
let loading: Promise<Sdk> | undefined;

/**
 * Loads the driver once, quietly: without the environment set first, importing it probes cloud
 * metadata endpoints (platform detection) and every connection reports its shape by telemetry.
 * Its own logger writes `snowflake.log` into the working directory; ebb drops the driver's log
 * (its errors reach ebb as exceptions) unless EBB_SNOWFLAKE_LOG_LEVEL asks for it on stderr.
 */
export function loadDriver(): Promise<Sdk> {
  loading ??= (async () => {
    process.env.SNOWFLAKE_DISABLE_PLATFORM_DETECTION ??= 'true';
    process.env.SF_TELEMETRY_DISABLE_CONNECTION_SHAPE ??= '1';
    const mod = await importModule<Sdk & { default?: Sdk }>('snowflake-sdk');
    const sdk = mod.default ?? mod;
    const level = process.env.EBB_SNOWFLAKE_LOG_LEVEL?.toUpperCase();
    const write = (m: string) => process.stderr.write(`snowflake-sdk: ${redact(m)}\n`);
    const drop = () => undefined;
    sdk.configure({
      logLevel: (['ERROR', 'WARN', 'INFO', 'DEBUG', 'TRACE'].includes(level ?? '') ? level : 'ERROR') as 'ERROR',
      customLogger: level ? { error: write, warn: write, info: write, debug: write, trace: write } : { error: drop, warn: drop, info: drop, debug: drop, trace: drop },
    });
    return sdk;
  })();
  return loading;
}

/** The driver's connection options for the `warehouse:` section of ebb.yml. */
export function connectionOptions(config: SnowflakeConfig, projectDir: string): ConnectionOptions {
  if (!config.password && !config.private_key_path) {
    throw new EbbError('warehouse: a snowflake warehouse needs `password` or `private_key_path` (key-pair authentication); use env_var() for either');
  }
  const options: ConnectionOptions = {
    account: config.account,
    username: config.username,
    database: config.database,
    application: 'ebb',
    // A long run, or a worker waiting for work, outlives the session's idle timeout without this
    // heartbeat (it needs no running warehouse). Every 15 minutes, the shortest the driver allows,
    // so that a session policy's idle timeout above that never ends ebb's session.
    clientSessionKeepAlive: true,
    clientSessionKeepAliveHeartbeatFrequency: HEARTBEAT_SECONDS,
    // Pinned: above the threshold the driver would upload binds to a stage with PUT (a privilege a
    // runner's role may lack); an account can set a lower one. append() stays below it.
    arrayBindingThreshold: ARRAY_BINDING_THRESHOLD,
    // Values fetched as text (fetchAsString) would otherwise come back as the string 'NULL'.
    representNullAsStringNull: false,
  };
  if (config.schema) options.schema = config.schema;
  if (config.warehouse) options.warehouse = config.warehouse;
  if (config.role) options.role = config.role;
  if (config.private_key_path) {
    options.authenticator = 'SNOWFLAKE_JWT';
    options.privateKeyPath = resolve(projectDir, config.private_key_path);
    if (config.private_key_passphrase) options.privateKeyPass = config.private_key_passphrase;
  } else {
    options.password = config.password;
  }
  if (config.access_url) options.accessUrl = config.access_url;
  else if (config.host) {
    options.host = config.host;
    if (config.port) (options as { port?: number }).port = config.port;
    if (config.protocol) (options as { protocol?: string }).protocol = config.protocol;
  }
  return options;
}

/** Where a connection goes, for messages (never with credentials). */
function endpointOf(options: ConnectionOptions): string {
  const o = options as ConnectionOptions & { port?: number; protocol?: string };
  if (o.accessUrl) return o.accessUrl;
  if (o.host) return `${o.protocol ?? 'https'}://${o.host}${o.port ? `:${o.port}` : ''}`;
  return `account ${o.account ?? '?'}`;
}

/** The keep-alive heartbeat of a session, in seconds. */
const HEARTBEAT_SECONDS = 900;
/** Snowflake's default CLIENT_STAGE_ARRAY_BINDING_THRESHOLD, pinned for ebb's sessions. */
const ARRAY_BINDING_THRESHOLD = 65_280;

/**
 * The session parameters ebb relies on, set once at connect (ALTER SESSION needs no running
 * warehouse), whatever the user's or the account's defaults: statements commit on their own, and
 * dates and timestamps turn into text (record keys, hashed records) the same way for every user.
 */
export const SESSION_PARAMETERS: ReadonlyArray<readonly [string, string]> = [
  ['AUTOCOMMIT', 'TRUE'],
  ['TIMEZONE', "'UTC'"],
  ['DATE_INPUT_FORMAT', "'AUTO'"],
  ['TIMESTAMP_INPUT_FORMAT', "'AUTO'"],
  ['DATE_OUTPUT_FORMAT', "'YYYY-MM-DD'"],
  ['TIMESTAMP_OUTPUT_FORMAT', "'YYYY-MM-DD HH24:MI:SS.FF3 TZHTZM'"],
  ['TIMESTAMP_NTZ_OUTPUT_FORMAT', "'YYYY-MM-DD HH24:MI:SS.FF3'"],
  ['TIMESTAMP_LTZ_OUTPUT_FORMAT', "'YYYY-MM-DD HH24:MI:SS.FF3 TZHTZM'"],
  ['TIMESTAMP_TZ_OUTPUT_FORMAT', "'YYYY-MM-DD HH24:MI:SS.FF3 TZHTZM'"],
];

/** Rows per chunk that stream() yields. */
const STREAM_CHUNK = 1000;
/**
 * Bound values per append statement. Above the driver's (server-set) array-binding threshold,
 * 65,280 on Snowflake, the driver would upload the binds to a stage with PUT instead; staying
 * below it keeps one plain request per statement.
 */
const APPEND_VALUES = 50_000;
/** A FROM VALUES list takes at most 16,384 rows on Snowflake. */
const VALUES_ROWS = 16_384;

const semiStructured = new Set(['variant', 'object', 'array', 'map']);

/** How each column of a result becomes the JS value that the DuckDB warehouse would return. */
function converterOf(column: SfColumn): (v: unknown) => unknown {
  if (column.isNumber()) {
    // Fetched as text (fetchAsString), so that no integer loses precision on the way.
    const integer = column.getType() === 'fixed' && column.getScale() === 0;
    return (v) => (v === null || v === undefined ? null : integer ? normaliseValue(BigInt(String(v))) : Number(v));
  }
  if (column.isDate() || column.isTimestamp()) {
    // The driver's Date carries extra methods and a toJSON of its own; hand out a plain Date.
    return (v) => (v === null || v === undefined ? null : new Date((v as Date).getTime()));
  }
  // VARIANT, OBJECT and ARRAY arrive as their JSON text (fetchAsString), as DuckDB returns JSON.
  return (v) => (v === undefined ? null : v);
}

function rowMaker(statement: RowStatement): (values: unknown[]) => Row {
  const columns = statement.getColumns() ?? [];
  const names = columns.map((c) => c.getName().toLowerCase());
  const convert = columns.map(converterOf);
  return (values) => {
    const row: Row = {};
    for (let i = 0; i < names.length; i++) row[names[i]] = convert[i](values[i]);
    return row;
  };
}

/** A Snowflake column type as text, e.g. NUMBER(38,0), VARCHAR, TIMESTAMP_NTZ, VARIANT. */
function typeName(column: SfColumn): string {
  const type = column.getType().toUpperCase();
  if (type === 'FIXED') return `NUMBER(${column.getPrecision()},${column.getScale()})`;
  if (type === 'REAL') return 'FLOAT';
  if (type === 'TEXT') return 'VARCHAR';
  return type;
}

/** A driver error as ebb's, keeping Snowflake's error code and SQL state (`000625 (57014): …`). */
function asError(err: SnowflakeError | Error | undefined): DriverError {
  const e = (err ?? new Error('unknown Snowflake error')) as Error & { code?: unknown; sqlState?: unknown };
  const code = typeof e.code === 'string' || typeof e.code === 'number' ? String(e.code) : undefined;
  const sqlState = typeof e.sqlState === 'string' ? e.sqlState : undefined;
  return new DriverError(code ? `${code}${sqlState ? ` (${sqlState})` : ''}: ${e.message}` : e.message, code, sqlState);
}

/**
 * Whether an error is worth the same statement again: the statement did not run, because of
 * others. 000625 is a lock that others hold on the table (too many waiters, or a lock wait
 * timeout: many workers writing ebb's shared tables); 000630 with "queued" is a statement that
 * waited in the warehouse's queue longer than STATEMENT_QUEUED_TIMEOUT_IN_SECONDS. Anything else
 * (a compilation error, a running statement's timeout, a missing privilege) fails at once.
 */
export function isTransient(e: DriverError): boolean {
  return e.code === '000625' || (e.code === '000630' && /queue/i.test(e.message));
}

/** The waits before each retry of a transient error, in milliseconds (about half a minute in all). */
export const RETRY_DELAYS_MS = [1000, 2000, 4000, 8000, 15000];

/** What a session's QUERY_TAG names: `ebb:<project>`, and `:<sync>:<run_id>` during a run (see tagRun). */
export interface SessionContext {
  project?: string;
}

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

export class SnowflakeWarehouse implements Warehouse {
  readonly dialect = snowflakeDialect;
  /** Column types of the tables that append() writes to (ebb's own tables: they do not change under a run), each looked up once. */
  private readonly tableColumns = new Map<string, Promise<Map<string, string>>>();
  /** The QUERY_TAG of the statements that follow. */
  private queryTag: string;

  private constructor(
    private readonly conn: Connection,
    private readonly project: string,
  ) {
    this.queryTag = `ebb:${project}`;
  }

  /** Connects once, and pins the session's parameters; the connection serves every statement until close(). */
  static async open(config: SnowflakeConfig, projectDir: string, context: SessionContext = {}): Promise<SnowflakeWarehouse> {
    const options = connectionOptions(config, projectDir);
    const sdk = await loadDriver();
    const conn = sdk.createConnection(options);
    try {
      await new Promise<void>((ok, fail) => conn.connect((err) => (err ? fail(err) : ok())));
    } catch (e) {
      throw new EbbError(`cannot connect to Snowflake (${endpointOf(options)}) as ${config.username}: ${(e as Error).message}`);
    }
    const warehouse = new SnowflakeWarehouse(conn, context.project ?? 'ebb');
    try {
      // Constants of ebb's, never user input: nothing to bind (and ALTER SESSION takes no binds).
      await warehouse.run(`ALTER SESSION SET ${SESSION_PARAMETERS.map(([k, v]) => `${k} = ${v}`).join(' ')}`);
    } catch (e) {
      await warehouse.close();
      throw new EbbError(`cannot set ebb's session parameters on Snowflake (${endpointOf(options)}): ${(e as Error).message}`);
    }
    return warehouse;
  }

  /** Tags the statements that follow with the run (QUERY_TAG `ebb:<project>:<sync>:<run_id>`), or with the project alone. */
  tagRun(sync: string | null, runId?: string): void {
    this.queryTag = sync === null ? `ebb:${this.project}` : `ebb:${this.project}:${sync}:${runId ?? ''}`;
  }

  /** Snowflake keeps no write-ahead log of ebb's to fold: nothing to do after a run. */
  async checkpoint(): Promise<void> {}

  /**
   * Runs one statement; resolves with the statement (its columns, counts) and, unless streamed, its
   * rows. A transient error (see isTransient) is retried after a wait, a few times.
   */
  private async execute(sql: string, binds: Bind[] | Bind[][] | undefined, extra: Partial<StatementOption> = {}): Promise<{ statement: RowStatement; rows: unknown[][] }> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.executeOnce(sql, binds, extra);
      } catch (e) {
        if (!(e instanceof DriverError) || !isTransient(e) || attempt >= RETRY_DELAYS_MS.length) throw e;
        await sleep(RETRY_DELAYS_MS[attempt]);
      }
    }
  }

  private executeOnce(sql: string, binds: Bind[] | Bind[][] | undefined, extra: Partial<StatementOption>): Promise<{ statement: RowStatement; rows: unknown[][] }> {
    return new Promise((ok, fail) => {
      this.conn.execute({
        sqlText: sql,
        ...(binds && binds.length > 0 ? { binds } : {}),
        rowMode: 'array',
        fetchAsString: ['JSON', 'Number'],
        // A statement-level parameter: the cost of each statement is attributed to its project, sync and run.
        parameters: { QUERY_TAG: this.queryTag },
        ...extra,
        complete: (err, statement, rows) => (err ? fail(asError(err)) : ok({ statement, rows: (rows ?? []) as unknown[][] })),
      });
    });
  }

  async run(sql: string, params: Param[] = []): Promise<number> {
    const { statement } = await this.execute(sql, params.map(toBind));
    const n = statement.getNumUpdatedRows();
    return n === undefined || n < 0 ? 0 : n;
  }

  async runAndRead(sql: string, params: Param[] = []): Promise<Row[]> {
    const { statement, rows } = await this.execute(sql, params.map(toBind));
    const make = rowMaker(statement);
    return rows.map(make);
  }

  async *stream(sql: string, params: Param[] = []): AsyncIterable<Row[]> {
    const { statement } = await this.execute(sql, params.map(toBind), { streamResult: true });
    const make = rowMaker(statement);
    // The driver fetches the result's chunks as the stream is read (a few ahead), never all at once.
    let batch: Row[] = [];
    for await (const values of statement.streamRows()) {
      batch.push(make(values as unknown[]));
      if (batch.length >= STREAM_CHUNK) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  }

  /**
   * Appends rows in bulk, one statement per up to APPEND_VALUES values. A table without
   * semi-structured columns (ebb's sync_outcomes and sync_inflight) gets an INSERT … VALUES with
   * array binds, Snowflake's bulk-insert path, where each bound text is cast to its column's type.
   * A VARIANT column needs PARSE_JSON, which Snowflake allows neither inside VALUES nor with array
   * binds on an INSERT … SELECT ("Bind variable ? not set"); such a table gets one
   * INSERT … SELECT … FROM (VALUES …) with plain binds instead.
   */
  async append(schema: string, table: string, columns: string[], rows: Param[][]): Promise<void> {
    if (rows.length === 0) return;
    const types = await this.columnTypesOf(schema, table);
    const kinds = columns.map((c) => {
      const kind = types.get(quoteSnowflake(c));
      if (kind === undefined) throw new Error(`append: table ${schema}.${table} has no column ${c}`);
      return kind;
    });
    const target = `${quoteSnowflake(schema)}.${quoteSnowflake(table)} (${columns.map(quoteSnowflake).join(', ')})`;
    const semi = kinds.some((k) => semiStructured.has(k));
    const perStatement = Math.max(1, Math.min(semi ? VALUES_ROWS : Infinity, Math.floor(APPEND_VALUES / columns.length)));
    for (let start = 0; start < rows.length; start += perStatement) {
      const chunk = rows.slice(start, start + perStatement).map((r) => columns.map((_c, i) => toBind(r[i])));
      if (!semi) {
        await this.execute(`INSERT INTO ${target} VALUES (${columns.map(() => '?').join(', ')})`, chunk);
        continue;
      }
      const aliases = columns.map((_c, i) => `C${i + 1}`);
      const exprs = kinds.map((k, i) => (semiStructured.has(k) ? `PARSE_JSON(V.${aliases[i]})` : k.startsWith('timestamp') ? `CAST(V.${aliases[i]} AS ${k.toUpperCase()})` : `V.${aliases[i]}`));
      const tuple = `(${columns.map(() => '?').join(', ')})`;
      await this.execute(`INSERT INTO ${target} SELECT ${exprs.join(', ')} FROM (VALUES ${chunk.map(() => tuple).join(', ')}) AS V (${aliases.join(', ')})`, chunk.flat());
    }
  }

  /** A table's columns (quoted name → Snowflake type, e.g. "RESULT" → variant), read once. */
  private columnTypesOf(schema: string, table: string): Promise<Map<string, string>> {
    const key = `${schema}.${table}`;
    let types = this.tableColumns.get(key);
    if (!types) {
      types = this.execute(`SELECT * FROM ${quoteSnowflake(schema)}.${quoteSnowflake(table)}`, undefined, { describeOnly: true }).then(
        ({ statement }) => new Map((statement.getColumns() ?? []).map((c) => [`"${c.getName().replaceAll('"', '""')}"`, c.getType()])),
      );
      // A lookup that failed is tried again by the next append.
      types.catch(() => this.tableColumns.delete(key));
      this.tableColumns.set(key, types);
    }
    return types;
  }

  async prepareAppend(schema: string, table: string): Promise<void> {
    await this.columnTypesOf(schema, table);
  }

  async describe(sql: string): Promise<Column[]> {
    const { statement } = await this.execute(sql, undefined, { describeOnly: true });
    return (statement.getColumns() ?? []).map((c) => ({ name: unquotedName(c.getName()), type: typeName(c) }));
  }

  close(): Promise<void> {
    return new Promise((ok) => {
      if (!this.conn.isUp()) return ok();
      // Ends the session on the server (POST /session?delete=true); a failure there changes nothing for ebb.
      this.conn.destroy(() => ok());
    });
  }
}
