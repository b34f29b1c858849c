/**
 * Renders the statements under `sql/` and runs them. A statement is looked up in
 * `sql/<dialect>/` first and in `sql/default/` after, the way dbt dispatches adapter macros.
 * Values are bound through the `bind()` template global; identifiers go through the `ident`
 * filter. Engine code never concatenates SQL.
 */
import nunjucks from 'nunjucks';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { WarehouseError } from '../errors.ts';
import { redact } from '../redact.ts';
import { packageRoot } from '../paths.ts';
import type { Column, Dialect, DriverError, Param, Row, Warehouse } from './warehouse.ts';

const sqlRoot = fileURLToPath(new URL('sql/', packageRoot));
const environments = new Map<string, nunjucks.Environment>();

// nunjucks renders synchronously, so one collector at a time is enough.
// The marker carries a random token, so that no text of a user's SQL can pass for one.
const TOKEN = randomBytes(6).toString('hex');
const MARKER = new RegExp(`__ebb_bind_${TOKEN}_(\\d+)__`, 'g');
let collecting: Param[] | null = null;

function environment(dialect: Dialect): nunjucks.Environment {
  let env = environments.get(dialect.name);
  if (!env) {
    const loader = new nunjucks.FileSystemLoader([`${sqlRoot}${dialect.name}`, `${sqlRoot}default`]);
    env = new nunjucks.Environment(loader, { autoescape: false, throwOnUndefined: true, trimBlocks: true, lstripBlocks: true });
    env.addGlobal('bind', (value: unknown) => {
      if (!collecting) throw new Error('bind() used outside a statement');
      collecting.push(value === undefined ? null : typeof value === 'object' && value !== null && !(value instanceof Date) ? JSON.stringify(value) : (value as Param));
      // A marker, not `?`: macros may render before the text around them, so the order of the
      // placeholders is read from the finished statement.
      return `__ebb_bind_${TOKEN}_${collecting.length - 1}__`;
    });
    env.addGlobal('ident', dialect.quote);
    environments.set(dialect.name, env);
  }
  return env;
}

/** A rendered statement with its bound values. */
export interface Statement {
  name: string;
  sql: string;
  params: Param[];
}

/** The statements of `sql/`, rendered for one warehouse and one state schema. */
export class Sql {
  constructor(
    readonly warehouse: Warehouse,
    readonly stateSchema: string,
  ) {}

  /** Quotes one identifier in the warehouse's dialect. */
  ident = (name: string): string => this.warehouse.dialect.quote(name);

  /** Renders `sql/<dialect>/<name>.sql.njk` (or the default) with a context. */
  render(name: string, context: Record<string, unknown> = {}): Statement {
    const env = environment(this.warehouse.dialect);
    const values: Param[] = [];
    collecting = values;
    try {
      const schema = this.ident(this.stateSchema);
      const sql: string = env.render(`${name}.sql.njk`, {
        ...context,
        schema,
        dialect: this.warehouse.dialect.name,
        t: (table: string) => `${schema}.${this.ident(table)}`,
      });
      const params: Param[] = [];
      const text = sql.replace(MARKER, (_m, i: string) => {
        params.push(values[Number(i)]);
        return '?';
      });
      return { name, sql: text, params };
    } finally {
      collecting = null;
    }
  }

  /** Runs a statement; returns the number of rows it changed. */
  run(name: string, context?: Record<string, unknown>): Promise<number> {
    return this.guard(name, (s) => this.warehouse.run(s.sql, s.params), context);
  }

  /** Runs a query and returns its (small) result. */
  runAndRead(name: string, context?: Record<string, unknown>): Promise<Row[]> {
    return this.guard(name, (s) => this.warehouse.runAndRead(s.sql, s.params), context);
  }

  /** The columns a query returns, without running it. */
  describe(name: string, context?: Record<string, unknown>): Promise<Column[]> {
    return this.guard(name, (s) => this.warehouse.describe(s.sql), context);
  }

  /**
   * Runs a script of statements separated by `;` at the end of a line (DDL only: no user SQL), in
   * steps separated by `-- then` lines: a step's statements side by side (one round trip on
   * Snowflake), each step once the one before is done.
   */
  async runScript(name: string, context?: Record<string, unknown>): Promise<void> {
    const { sql, params } = this.render(name, context);
    if (params.length > 0) throw new Error(`sql/${name}: a script cannot bind values`);
    for (const step of sql.split(/^-- then$/m)) {
      const statements = step.split(/;\s*\n/).map((s) => s.trim()).filter(Boolean);
      await Promise.all(
        statements.map((statement) =>
          this.warehouse.run(statement).catch((e: unknown) => {
            throw new WarehouseError(redact((e as Error).message), name, e as DriverError);
          }),
        ),
      );
    }
  }

  /** Streams the rows of a query in chunks. */
  async *stream(name: string, context?: Record<string, unknown>): AsyncIterable<Row[]> {
    const { sql, params } = this.render(name, context);
    try {
      yield* this.warehouse.stream(sql, params);
    } catch (e) {
      throw new WarehouseError(redact((e as Error).message), name, e as DriverError);
    }
  }

  private async guard<T>(name: string, job: (s: Statement) => Promise<T>, context?: Record<string, unknown>): Promise<T> {
    const statement = this.render(name, context);
    try {
      return await job(statement);
    } catch (e) {
      throw new WarehouseError(redact((e as Error).message), name, e as DriverError);
    }
  }
}
