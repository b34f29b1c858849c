/**
 * The `postgres` plugin (SPEC §6): a table in a PostgreSQL database, written with `pg`.
 *
 * Batches. Each batch is one statement (statements.ts): the records go in as one bound JSON array,
 * PostgreSQL converts them to the table's row type, and `INSERT … ON CONFLICT`, `UPDATE … FROM` or
 * `DELETE … USING` writes them all, returning which rows it touched. A statement succeeds or fails
 * as a whole: a record that PostgreSQL refuses (a type it cannot convert, a NOT NULL or CHECK
 * constraint) fails its batch, answered `rejected` with `wholeBatch`, and the engine splits the
 * batch until that record is alone.
 *
 * One transaction per run (atomicRun). open() begins a transaction on one connection, every batch
 * runs in it (inside a savepoint, so a refused batch does not abort the rest), and close(true)
 * commits; a failed or killed run commits nothing, and the engine sends its records again. This
 * is what makes `replace` safe (the table is emptied and loaded in one transaction: readers see
 * the old rows or the new ones, never a half-loaded table), and the contract cannot make one
 * strategy atomic and another not: a non-atomic plugin's outcomes are trusted after a crash,
 * which a rolled-back replace would make false. The costs, documented in
 * docs/destinations/postgres.md: the rows a run writes stay locked until it commits, a run uses one
 * connection (batches of a run do not overlap), and each batch is a subtransaction.
 *
 * Identifiers. The match columns (`key_columns`, by default the primary key) identify a row; a
 * record's identifier in the app is their value as text, or a JSON array for several columns.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import pg from 'pg';
import { z } from 'zod';
import type { Action, Change, DestinationContext as PluginDestinationContext, Outcome, Plugin, PluginContext, Session, SessionContext } from '../plugin.ts';
import {
  clearStatement,
  createStatement,
  deleteStatement,
  nullMappedStatement,
  recreateStatement,
  sendStatement,
  truncateStatement,
  updateStatement,
  type Statement,
} from './statements.ts';
import { checkDestination, DestinationError, missingTable, readTable, splitObject, type Target } from './table.ts';
import { parseJson, stringifyJson } from '../shared/json.ts';

const quote = pg.escapeIdentifier;

/** The connection's config: a connection string, or its parts. */
export const postgresConfigSchema = z
  .strictObject({
    /** `postgresql://user:password@host:5432/database?sslmode=require`; put the password in through env_var. */
    connection_string: z.string().min(1).optional(),
    host: z.string().min(1).optional(),
    port: z.coerce.number().int().positive().optional(),
    user: z.string().min(1).optional(),
    password: z.string().optional(),
    database: z.string().min(1).optional(),
    /** The schema of a destination `object` that names no schema. */
    schema: z.string().min(1).default('public'),
    /** TLS: true, or options; a connection string's sslmode also works. */
    ssl: z
      .union([
        z.boolean(),
        z.strictObject({
          /** Refuse a server whose certificate does not verify (default true). */
          reject_unauthorized: z.boolean().default(true),
          /** A PEM file of the certificate authority, relative to ebb.yml. */
          ca_file: z.string().min(1).optional(),
        }),
      ])
      .optional(),
    connect_timeout_seconds: z.number().positive().default(10),
    /** Cancels a statement (or a wait for a lock) that takes longer; it is retried as transient. */
    statement_timeout_seconds: z.number().positive().optional(),
  })
  .refine((c) => !(c.connection_string && (c.host || c.port || c.user || c.password !== undefined || c.database)), {
    message: 'give either connection_string or host, port, user, password and database, not both',
  })
  .refine((c) => c.connection_string || c.host, { message: 'give connection_string, or host (with port, user, password and database)' });
export type PostgresConfig = z.infer<typeof postgresConfigSchema>;

/** A sync's destination: `object` is a table, `key_columns` the columns that identify a row. */
export const postgresDestinationSchema = z.looseObject({
  object: z.string().regex(/^[^.]+(\.[^.]+)?$/, 'must be a table name, or schema.table'),
  /** The match columns; default: the table's primary key. They need a unique index. */
  key_columns: z
    .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
    .optional()
    .transform((v) => (v === undefined ? undefined : Array.isArray(v) ? v : [v])),
  /** For the replace strategy: owner (truncate and load) or shared (null the mapped columns, then upsert). */
  replace_mode: z.enum(['owner', 'shared']).optional(),
});
export type PostgresDestination = z.infer<typeof postgresDestinationSchema>;

type Context = SessionContext<PostgresConfig, PostgresDestination>;

type DestinationContext = PluginDestinationContext<PostgresConfig, PostgresDestination>;

/** The plugin; `validate` is always there (tests call it directly). */
export type PostgresPlugin = Plugin<PostgresConfig, PostgresDestination> & Required<Pick<Plugin<PostgresConfig, PostgresDestination>, 'validate'>>;

const plugin: PostgresPlugin = {
  name: 'postgres',
  configSchema: postgresConfigSchema,
  destinationSchema: postgresDestinationSchema,
  capabilities: {
    atomicRun: true,
    // A create is INSERT … ON CONFLICT DO NOTHING: sent twice, it answers conflict with the key.
    idempotentCreate: true,
    // One bound JSON value per batch: keep it a few megabytes at most.
    maxBatchSize: 10_000,
  },

  async check(ctx) {
    const client = await connect(ctx);
    try {
      const { rows } = await client.query<{ found: boolean; usage: boolean | null }>(
        `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1) AS found,
                CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1) THEN has_schema_privilege($1, 'USAGE') END AS usage`,
        [ctx.config.schema],
      );
      if (!rows[0].found) throw new Error(`schema "${ctx.config.schema}" does not exist in database ${client.database}; create it, or set config.schema`);
      if (!rows[0].usage) throw new Error(`user ${client.user} has no USAGE privilege on schema "${ctx.config.schema}"`);
    } finally {
      await client.end().catch(() => undefined);
    }
  },

  async validate(ctx) {
    const client = await connect(ctx);
    try {
      await resolveTarget(client, ctx);
      return [];
    } catch (e) {
      if (e instanceof DestinationError) return e.issues;
      throw e;
    } finally {
      await client.end().catch(() => undefined);
    }
  },

  async open(ctx) {
    const client = await connect(ctx);
    const session = new PostgresSession(ctx, client);
    try {
      const target = await resolveTarget(client, ctx);
      await client.query('BEGIN');
      if (ctx.strategy === 'replace') {
        const empty = ctx.destination.replace_mode === 'owner' ? truncateStatement(target) : nullMappedStatement(target, quote);
        if (empty) await ctx.schedule(() => client.query(empty));
      }
      session.start(target);
      return session;
    } catch (e) {
      await client.end().catch(() => undefined);
      const { schema, table } = splitObject(ctx.destination.object, ctx.config.schema);
      const where = `sync ${ctx.sync}: postgres table ${schema}.${table}`;
      if (e instanceof DestinationError) throw new Error(`${where} cannot take this sync:\n${e.issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`);
      throw new Error(`${where}: ${errorText(e)}`);
    }
  },
};

export default plugin;

/** Reads the table and checks the sync against it; throws a DestinationError listing every problem. */
async function resolveTarget(client: pg.Client, ctx: Omit<DestinationContext, 'fieldTypes'> & { fieldTypes?: Record<string, string> }): Promise<Target> {
  const { schema, table } = splitObject(ctx.destination.object, ctx.config.schema);
  const info = await readTable(client, schema, table, quote);
  if (!info) throw new DestinationError([await missingTable(client, schema, table)]);
  const { issues, target } = checkDestination(info, {
    strategy: ctx.strategy,
    fields: ctx.fields,
    keyColumns: ctx.destination.key_columns,
    replaceMode: ctx.destination.replace_mode,
    fieldTypes: ctx.fieldTypes,
  });
  if (issues.length > 0) throw new DestinationError(issues);
  return target;
}

/** Opens a connection, in UTC so that the text of a timestamptz key is the same in every run. */
async function connect(ctx: PluginContext<PostgresConfig>): Promise<pg.Client> {
  const { config } = ctx;
  const client = new pg.Client(await clientConfig(config, ctx.projectDir));
  // An idle connection that breaks emits 'error'; the session learns of it on its next query.
  client.on('error', () => undefined);
  try {
    await ctx.schedule(() => client.connect());
    await client.query("SET TIME ZONE 'UTC'");
    if (config.statement_timeout_seconds) await client.query(`SET statement_timeout = ${Math.round(config.statement_timeout_seconds * 1000)}`);
  } catch (e) {
    await client.end().catch(() => undefined);
    throw new Error(`cannot connect to PostgreSQL as ${client.user ?? '(default user)'} at ${client.host}:${client.port}, database ${client.database}: ${errorText(e)}`);
  }
  return client;
}

async function clientConfig(config: PostgresConfig, projectDir: string): Promise<pg.ClientConfig> {
  const base: pg.ClientConfig = config.connection_string
    ? { connectionString: config.connection_string }
    : { host: config.host, port: config.port, user: config.user, password: config.password, database: config.database };
  let ssl: pg.ClientConfig['ssl'];
  if (typeof config.ssl === 'boolean') ssl = config.ssl;
  else if (config.ssl) {
    const ca = config.ssl.ca_file ? await readFile(resolve(projectDir, config.ssl.ca_file), 'utf8') : undefined;
    ssl = { rejectUnauthorized: config.ssl.reject_unauthorized, ...(ca && { ca }) };
  }
  return {
    ...base,
    ...(ssl !== undefined && { ssl }),
    application_name: 'ebb',
    connectionTimeoutMillis: Math.round(config.connect_timeout_seconds * 1000),
    keepAlive: true,
  };
}

/** What a failed statement means for its records. */
type Failure = { kind: 'transient' | 'rejected'; message: string; error: pg.DatabaseError };

/** The statement of each action; `recreate` is `replace`'s load. */
const statementBuilders: Record<Action, (t: Target, q: (s: string) => string) => Statement> = {
  create: createStatement,
  recreate: recreateStatement,
  send: sendStatement,
  update: updateStatement,
  clear: clearStatement,
  delete: deleteStatement,
};

/** One run: a transaction on one connection. Batches arrive concurrently and run one at a time. */
class PostgresSession implements Session {
  private target!: Target;
  private readonly statements = new Map<Action, Statement>();
  private queue: Promise<unknown> = Promise.resolve();
  /** Set when the connection broke: the transaction is gone, nothing more can land. */
  private broken: string | undefined;
  private closed = false;
  /** A savepoint of an earlier batch is still open: the next batch releases it first. */
  private savepoint = false;
  /** Changes given, and changes written so far. */
  private given = 0;
  private written = 0;

  constructor(
    private readonly ctx: Context,
    private readonly client: pg.Client,
  ) {
    client.on('error', (e: Error) => (this.broken ??= errorText(e)));
  }

  start(target: Target): void {
    this.target = target;
  }

  private get name(): string {
    return `${this.target.info.schema}.${this.target.info.table}`;
  }

  apply(changes: Change[]): Promise<Outcome[]> {
    const run = this.queue.then(() => this.applyNow(changes));
    this.queue = run.catch(() => undefined);
    return run;
  }

  async close(commit: boolean): Promise<void> {
    await this.queue;
    if (this.closed) return;
    this.closed = true;
    try {
      if (!commit) {
        await this.client.query('ROLLBACK').catch(() => undefined);
        return;
      }
      if (this.broken) throw new Error(this.lostMessage(this.broken));
      if (this.ctx.strategy === 'replace' && this.given > 0 && this.written === 0) {
        // Every record failed: committing would leave the table emptied (owner) or nulled (shared)
        // for nothing. Rolling back keeps the last full set, and falsifies no outcome. An empty
        // full set (given none) commits: the table becomes empty.
        await this.client.query('ROLLBACK');
        return;
      }
      let result: pg.QueryResult;
      try {
        result = await this.ctx.schedule(() => this.client.query('COMMIT'));
      } catch (e) {
        throw new Error(`PostgreSQL did not commit the run into ${this.name}: ${errorText(e)}; nothing of this run landed, and the next run sends its records again`);
      }
      // COMMIT of a transaction in error is answered ROLLBACK, not an error.
      if (result.command !== 'COMMIT') throw new Error(`PostgreSQL rolled the run back instead of committing it into ${this.name}; the next run sends its records again`);
    } finally {
      await this.client.end().catch(() => undefined);
    }
  }

  private lostMessage(reason: string): string {
    return `the connection to PostgreSQL broke during the run (${reason}); its transaction is rolled back, so nothing of this run landed in ${this.name}, and the next run sends its records again`;
  }

  private async applyNow(changes: Change[]): Promise<Outcome[]> {
    if (this.closed) throw new Error(`postgres plugin: apply() after close() on ${this.name}`);
    if (this.broken) throw new Error(this.lostMessage(this.broken));
    this.given += changes.length;
    // The engine sends one action per batch; group anyway, so that every change gets its outcome.
    const groups = new Map<Action, Change[]>();
    for (const change of changes) groups.set(change.action, [...(groups.get(change.action) ?? []), change]);
    const outcomes = new Map<Change, Outcome>();
    for (const [action, group] of groups) {
      const answers = await this.applyAction(action, group);
      group.forEach((change, i) => outcomes.set(change, answers[i]));
    }
    return changes.map((c) => outcomes.get(c)!);
  }

  private statement(action: Action): Statement {
    let statement = this.statements.get(action);
    if (!statement) this.statements.set(action, (statement = statementBuilders[action](this.target, quote)));
    return statement;
  }

  private async applyAction(action: Action, changes: Change[]): Promise<Outcome[]> {
    const statement = this.statement(action);
    const outcomes: Array<Outcome | undefined> = new Array(changes.length);
    const payload: Array<Record<string, unknown>> = [];
    /** The index in `changes` of each element of the payload. */
    const sent: number[] = [];
    const targets = new Set<string>();
    changes.forEach((change, i) => {
      const prepared = this.prepare(change, statement.parts);
      if (typeof prepared === 'string') {
        outcomes[i] = failed(change, 'rejected', prepared);
        return;
      }
      if (action === 'update' && prepared.m) {
        // UPDATE … FROM writes a row once, whichever record it picks: two records for one row are ambiguous.
        const target = stringifyJson(prepared.m);
        if (targets.has(target)) {
          outcomes[i] = failed(change, 'rejected', `another record of the same batch updates the same row of ${this.name} (${describeKey(prepared.m)})`);
          return;
        }
        targets.add(target);
      }
      payload.push(prepared);
      sent.push(i);
    });

    if (payload.length > 0) {
      const answer = await this.execute(statement.sql, stringifyJson(payload));
      if ('failure' in answer) {
        let { message } = answer.failure;
        if (sent.length === 1 && answer.failure.error.code?.startsWith('22')) message = (await this.diagnose(payload[0].r as Record<string, unknown> | undefined)) ?? message;
        for (const i of sent) {
          const change = changes[i];
          outcomes[i] = {
            key: change.key,
            success: false,
            appId: change.appId,
            result: errorResult(answer.failure.error),
            error: { kind: answer.failure.kind, message, ...(answer.failure.kind === 'rejected' && sent.length > 1 && { wholeBatch: true }) },
          };
        }
      } else {
        const rows = new Map(answer.rows.map((r) => [Number(r.ord), r]));
        sent.forEach((i, n) => (outcomes[i] = this.outcome(action, changes[i], rows.get(n + 1), payload[n])));
      }
    }
    return outcomes.map((o, i) => o ?? failed(changes[i], 'rejected', 'the postgres plugin produced no outcome for this record'));
  }

  /** The outcome of a change whose statement succeeded; `row` is what it returned for the change. */
  private outcome(action: Action, change: Change, row: { id: string | null; written: boolean } | undefined, sent: Record<string, unknown>): Outcome {
    if (action === 'create' && row && !row.written) {
      return { key: change.key, success: false, appId: change.appId, error: { kind: 'conflict', message: `${this.name} already holds a row with key ${row.id}`, existingAppId: row.id ?? undefined } };
    }
    if (!row) {
      const key = describeKey((sent.m ?? {}) as Record<string, unknown>);
      return failed(change, 'not_found', `${this.name} holds no row with ${key}`);
    }
    this.written += 1;
    return { key: change.key, success: true, appId: row.id ?? (this.target.keys.length ? change.appId : null) };
  }

  /**
   * The payload of a change: `r` the record, with text that holds JSON parsed for json and jsonb
   * columns, and `m` the match values, from the identifier ebb knows, else from the record. A
   * string is a reason to refuse the change before it is sent.
   */
  private prepare(change: Change, parts: Array<'r' | 'm'>): { r?: Record<string, unknown>; m?: Record<string, unknown> } | string {
    const { keys, fields, info } = this.target;
    const prepared: { r?: Record<string, unknown>; m?: Record<string, unknown> } = {};
    if (parts.includes('r')) {
      const r: Record<string, unknown> = {};
      for (const field of fields) r[field] = jsonColumnValue(change.record[field], info.columns.get(field)?.family === 'json');
      if (change.action !== 'send') {
        const nullKey = keys.find((k) => r[k] === null || r[k] === undefined);
        if (nullKey) return `match column "${nullKey}" is null in this record, so its row could never be found again; give it a value in the source`;
      }
      prepared.r = r;
    }
    if (parts.includes('m')) {
      const m = matchValues(change, keys);
      const nullKey = keys.find((k) => m[k] === null || m[k] === undefined);
      if (nullKey) return `cannot tell which row of ${this.name} to ${change.action}: match column "${nullKey}" has no value`;
      prepared.m = m;
    }
    return prepared;
  }

  /**
   * Runs a batch's statement in a savepoint: a refused statement rolls back to it, and the run's
   * transaction goes on. A broken connection is thrown (the engine retries it as transient, then
   * the commit fails and the run is sent again).
   */
  private async execute(sql: string, json: string): Promise<{ rows: Array<{ ord: string; id: string | null; written: boolean }> } | { failure: Failure }> {
    let lost: unknown;
    const answer = await this.ctx.schedule(async () => {
      try {
        return await this.inSavepoint(() => this.client.query<{ ord: string; id: string | null; written: boolean }>(sql, [json]));
      } catch (e) {
        lost = e;
        return undefined;
      }
    });
    if (lost !== undefined || !answer) {
      this.broken ??= errorText(lost);
      throw new Error(this.lostMessage(this.broken));
    }
    if (answer instanceof pg.DatabaseError) return { failure: classify(answer, this.name) };
    return { rows: answer.rows };
  }

  /** Runs a query in a savepoint; a database error rolls back to it and is returned. Anything else is thrown. */
  private async inSavepoint<T>(query: () => Promise<T>): Promise<T | pg.DatabaseError> {
    await this.client.query(this.savepoint ? 'RELEASE SAVEPOINT ebb_batch; SAVEPOINT ebb_batch' : 'SAVEPOINT ebb_batch');
    this.savepoint = true;
    try {
      return await query();
    } catch (e) {
      if (!(e instanceof pg.DatabaseError) || isConnectionError(e)) throw e;
      await this.client.query('ROLLBACK TO SAVEPOINT ebb_batch');
      return e;
    }
  }

  /** Which column refused a value: PostgreSQL's conversion errors do not say. */
  private async diagnose(record: Record<string, unknown> | undefined): Promise<string | undefined> {
    if (!record) return undefined;
    for (const field of this.target.fields) {
      const value = record[field];
      if (value === null || value === undefined) continue;
      const answer = await this.ctx.schedule(() =>
        this.inSavepoint(() => this.client.query(`SELECT json_populate_record(NULL::${this.target.info.ref}, $1::json)`, [stringifyJson({ [field]: value })])).catch(() => null),
      );
      if (answer === null) return undefined; // the connection broke: the next statement reports it
      if (answer instanceof pg.DatabaseError) {
        return `column "${field}" (${this.target.info.columns.get(field)?.type}) cannot take ${truncate(stringifyJson(value))}: ${answer.message} [SQLSTATE ${answer.code}]`;
      }
    }
    return undefined;
  }
}

/** The match values of a change: parsed from its identifier, else the record's key columns. */
function matchValues(change: Change, keys: string[]): Record<string, unknown> {
  if (change.appId !== null && change.appId !== undefined) {
    if (keys.length === 1) return { [keys[0]]: change.appId };
    try {
      const values = parseJson(change.appId);
      if (Array.isArray(values) && values.length === keys.length) return Object.fromEntries(keys.map((k, i) => [k, values[i]]));
    } catch {
      // Not an identifier of this plugin (the table's key changed): match on the record.
    }
  }
  return Object.fromEntries(keys.map((k) => [k, change.record[k]]));
}

/** Text that holds a JSON object or array goes into a json/jsonb column as that object or array. */
function jsonColumnValue(value: unknown, json: boolean): unknown {
  if (value === undefined) return null;
  if (!json || typeof value !== 'string') return value;
  const text = value.trim();
  if (!(text.startsWith('{') || text.startsWith('['))) return value;
  try {
    return parseJson(text);
  } catch {
    return value;
  }
}

function describeKey(m: Record<string, unknown>): string {
  return Object.entries(m)
    .map(([k, v]) => `${k} = ${stringifyJson(v)}`)
    .join(', ');
}

/**
 * SQLSTATE classes (PostgreSQL manual, appendix A): 40 (serialization failure, deadlock), 53
 * (insufficient resources), 55P03 (lock not available) and 57014 (statement timeout) are worth a
 * retry; everything else, such as 22 (data exception), 23 (constraint violation), 21 (a row written
 * twice by one statement) or 42 (a column that is gone), is the record's or the table's fault.
 */
function classify(error: pg.DatabaseError, table: string): Failure {
  const code = error.code ?? '';
  const transient = code.startsWith('40') || code.startsWith('53') || code === '55P03' || code === '57014';
  let message = error.message;
  if (error.detail) message += ` (${error.detail})`;
  if (error.hint) message += `; ${error.hint}`;
  if (code === '21000') message = `two records of the batch have the same match values, and PostgreSQL writes a row once per statement: ${message}`;
  if (code.startsWith('42')) message = `${table}: ${message}; the table changed since the run started, or the user lacks a privilege`;
  return { kind: transient ? 'transient' : 'rejected', message: `${truncate(message, 1000)} [SQLSTATE ${code}]`, error };
}

/** Class 08 (connection exception) and 57P01-57P03 (the server shuts down): the transaction is gone. */
function isConnectionError(e: pg.DatabaseError): boolean {
  const code = e.code ?? '';
  return code.startsWith('08') || /^57P0[1-3]$/.test(code);
}

/** What a refused record's history holds: PostgreSQL's answer. */
function errorResult(e: pg.DatabaseError): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries({ sqlstate: e.code, message: e.message, detail: e.detail, hint: e.hint, column: e.column, constraint: e.constraint }).filter(([, v]) => v !== undefined),
  );
}

function failed(change: Change, kind: 'rejected' | 'not_found', message: string): Outcome {
  return { key: change.key, success: false, appId: change.appId, error: { kind, message } };
}

function truncate(text: string, limit = 200): string {
  return text.length > limit ? `${text.slice(0, limit)}…` : text;
}

/** An error's message on one line; a refused connection hides its reason (ECONNREFUSED) in `code` or `errors`. */
function errorText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const aggregate = e instanceof AggregateError ? e.errors.find((x) => x instanceof Error) : undefined;
  const code = (e as NodeJS.ErrnoException).code ?? (aggregate as NodeJS.ErrnoException | undefined)?.code;
  const text = e.message || (aggregate as Error | undefined)?.message || '';
  return (code && !text.includes(code) ? `${code}${text ? `: ${text}` : ''}` : text).replace(/\s+/g, ' ').trim();
}
