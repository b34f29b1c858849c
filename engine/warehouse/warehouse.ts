/**
 * The Warehouse interface: the one place where DuckDB and Snowflake differ. An implementation
 * supplies a driver (run SQL, bind values, stream rows, bulk-insert) and a dialect (quoting and
 * the SQL overrides under `sql/<dialect>/`).
 */

/** A row, keyed by lower-case column name. Values are normalised: number, string, boolean, Date or null. */
export type Row = Record<string, unknown>;

/** A value that can be bound to a `?` placeholder. */
export type Param = string | number | boolean | null | Date;

/** A column of a query's result. */
export interface Column {
  name: string;
  type: string;
}

/** The SQL dialect of a warehouse. */
export interface Dialect {
  /** The folder under `sql/` that holds this dialect's overrides. */
  name: 'duckdb' | 'snowflake';
  /** Quotes one identifier so that no name can break out of it. */
  quote(identifier: string): string;
  /** Whether a SQL expression's error on one row can be caught on that row (DuckDB's try()). */
  catchesRowErrors: boolean;
  /** Rows of the change set that apply reads per statement, at most: the warehouse never sorts the whole change set at once. */
  changeWindow: number;
  /**
   * Windows of the change set whose statements are on their way while one is read: 1 opens the
   * next once the one before answered; more hide a distant warehouse's round trips behind the sends.
   */
  changeWindowsAhead: number;
}

/** A connection to the warehouse that holds the sources and ebb's tables. */
export interface Warehouse {
  readonly dialect: Dialect;
  /** Runs a statement; returns the number of rows it changed. */
  run(sql: string, params?: Param[]): Promise<number>;
  /** Runs a query and returns all its rows: only for results known to be small. */
  runAndRead(sql: string, params?: Param[]): Promise<Row[]>;
  /** Runs a query and yields its rows chunk by chunk, never holding the whole result. */
  stream(sql: string, params?: Param[]): AsyncIterable<Row[]>;
  /** Appends rows to a table of the state schema in bulk. */
  append(schema: string, table: string, columns: string[], rows: Param[][]): Promise<void>;
  /** Looks up ahead what append() needs of a table (its column types), so that the first append is one statement. */
  prepareAppend(schema: string, table: string): Promise<void>;
  /** The columns that a query returns, without running it. */
  describe(sql: string): Promise<Column[]>;
  /** Names the statements that follow as the run's (Snowflake's QUERY_TAG, for cost attribution); null for none. */
  tagRun(sync: string | null, runId?: string): void;
  /** After a run: housekeeping that must not wait on the path of its sends (DuckDB folds a large WAL into its file). Never fails. */
  checkpoint(): Promise<void>;
  close(): Promise<void>;
}

/** Turns a bigint into a number where that is exact, and into text where it is not. */
export function normaliseValue(v: unknown): unknown {
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  return v;
}

/** An error of the warehouse's driver, with the warehouse's error code and SQL state where it gives them. */
export class DriverError extends Error {
  constructor(
    message: string,
    readonly code?: string,
    readonly sqlState?: string,
  ) {
    super(message);
  }
}
