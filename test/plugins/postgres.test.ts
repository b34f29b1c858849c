/**
 * The postgres plugin against the real PostgreSQL server on this machine (127.0.0.1:5432, trust
 * auth, database `test`; EBB_TEST_POSTGRES_URL overrides it). Each run of this file works in a
 * schema of its own, dropped at the end.
 *
 * Needs PostgreSQL: see test/support/services.ts for what happens when it is missing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { parseDocument } from 'yaml';
import postgresPlugin, { postgresConfigSchema, postgresDestinationSchema } from '../../plugins/postgres/index.ts';
import { typeProblem, warehouseFamily, type ColumnInfo } from '../../plugins/postgres/table.ts';
import type { Action, Change, Outcome, Session, Strategy } from '../../plugins/plugin.ts';
import { pluginContext, sessionContext } from '../support/plugin-context.ts';
import { duck, ebb, makeProject, repoRoot } from '../support/project.ts';
import { describePlugin, type PluginHarness } from '../plugin-conformance.ts';
import { describeWithService } from '../support/services.ts';

const PG_URL = process.env.EBB_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';

/** Why PostgreSQL cannot be used, or null when it answers. */
async function postgresProblem(): Promise<string | null> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return null;
  } catch (e) {
    return `no PostgreSQL at ${PG_URL}: ${(e as Error).message || (e as NodeJS.ErrnoException).code}`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const problem = await postgresProblem();

const schema = `ebb_test_${randomBytes(4).toString('hex')}`;
const q = pg.escapeIdentifier;
let db: pg.Client;
let projectDir: string;
let tables = 0;

beforeAll(async () => {
  if (problem !== null) return;
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  await db.query(`CREATE SCHEMA ${q(schema)}`);
  projectDir = await mkdtemp(join(tmpdir(), 'ebb-postgres-'));
});

afterAll(async () => {
  if (problem !== null) return;
  await db.query(`DROP SCHEMA IF EXISTS ${q(schema)} CASCADE`);
  await db.end();
  await rm(projectDir, { recursive: true, force: true });
});

/** A fresh table name in the test schema. */
function tableName(prefix = 't'): string {
  tables += 1;
  return `${prefix}_${tables}`;
}

/** `"schema"."table"` */
function ref(table: string): string {
  return `${q(schema)}.${q(table)}`;
}

async function rows(sql: string, params: unknown[] = []): Promise<Array<Record<string, unknown>>> {
  return (await db.query(sql, params)).rows as Array<Record<string, unknown>>;
}

const connectionConfig = () => ({ connection_string: PG_URL, schema });

/** Opens a session on a table of the test schema; counts the requests that go through schedule. */
async function open(
  table: string,
  strategy: Strategy,
  fields: string[],
  destination: Record<string, unknown> = {},
): Promise<{ session: Session; requests: () => number }> {
  let requests = 0;
  const session = await postgresPlugin.open(
    sessionContext(postgresPlugin, {
      config: connectionConfig(),
      projectDir,
      destination: { connection: 'pg', object: table, ...destination },
      strategy,
      fields,
      schedule: (request) => {
        requests += 1;
        return request();
      },
    }),
  );
  return { session, requests: () => requests };
}

/** Applies one batch of one action; records are given by key. */
function apply(session: Session, action: Action, records: Record<string, Record<string, unknown>>, appIds: Record<string, string> = {}): Promise<Outcome[]> {
  const changes: Change[] = Object.entries(records).map(([key, record]) => ({ key, action, record, appId: appIds[key] ?? null }));
  return session.apply(changes);
}

/** Outcomes in short: `key ok id` or `key kind`. */
function brief(outcomes: Outcome[]): string[] {
  return outcomes.map((o) => (o.success ? `${o.key} ok ${o.appId}` : `${o.key} ${o.error?.kind}${o.error?.wholeBatch ? ' whole' : ''}${o.error?.existingAppId ? ` ${o.error.existingAppId}` : ''}`));
}

async function peopleTable(extra = ''): Promise<string> {
  const table = tableName('people');
  await db.query(`CREATE TABLE ${ref(table)} (email text PRIMARY KEY, name text, score integer, note text DEFAULT 'kept'${extra})`);
  return table;
}

const ann = { email: 'ann@x.io', name: 'Ann', score: 1 };
const bob = { email: 'bob@x.io', name: 'Bob', score: 2 };
const cyd = { email: 'cyd@x.io', name: 'Cyd', score: 3 };
const fields = ['email', 'name', 'score'];

/** The conformance harness: a table `people_N` keyed by email. */
export async function postgresHarness(): Promise<PluginHarness> {
  const table = tableName('conformance');
  await db.query(`CREATE TABLE ${ref(table)} (email text PRIMARY KEY, first_name text, last_name text, score double precision, note text DEFAULT 'not ebb''s')`);
  const refusals: string[] = [];
  return {
    connection: { plugin: 'postgres', config: connectionConfig() },
    destination: { object: table, replace_mode: 'owner' },
    mapping: { email: 'email', first_name: 'first_name', last_name: 'last_name', score: 'score' },
    strategies: ['create', 'update', 'upsert', 'mirror', 'replace', 'send'],
    read: () => rows(`SELECT email, first_name, last_name, score FROM ${ref(table)}`),
    async seed(record) {
      await db.query(`INSERT INTO ${ref(table)} (email, first_name, last_name, score) VALUES ($1, $2, $3, $4)`, [record.email, record.first_name, record.last_name, record.score]);
    },
    faults: {
      // PostgreSQL refuses a record with a CHECK constraint, as it would any row that breaks one.
      async rejectEmail(email) {
        const name = `ebb_refuse_${refusals.length}`;
        refusals.push(name);
        await db.query(`ALTER TABLE ${ref(table)} ADD CONSTRAINT ${q(name)} CHECK (email <> ${pg.escapeLiteral(email)}) NOT VALID`);
      },
      async clear() {
        for (const name of refusals.splice(0)) await db.query(`ALTER TABLE ${ref(table)} DROP CONSTRAINT IF EXISTS ${q(name)}`);
      },
      // A database has no rate limit to answer with: no rateLimitOnce.
    },
    close: async () => {
      await db.query(`DROP TABLE IF EXISTS ${ref(table)}`);
    },
  };
}

describeWithService('postgres plugin', problem, 'test/plugins/postgres.test.ts', () => {
  describe('config and destination', () => {
    it('takes a connection string or its parts, not both, and a port given as text', () => {
      expect(postgresConfigSchema.parse({ connection_string: PG_URL })).toMatchObject({ schema: 'public', connect_timeout_seconds: 10 });
      expect(postgresConfigSchema.parse({ host: 'db', port: '6432', user: 'u', password: 'p', database: 'd' }).port).toBe(6432);
      const both = postgresConfigSchema.safeParse({ connection_string: PG_URL, host: 'db' });
      expect(both.error?.issues[0].message).toMatch(/either connection_string or host/);
      const neither = postgresConfigSchema.safeParse({ schema: 'x' });
      expect(neither.error?.issues[0].message).toMatch(/give connection_string, or host/);
      expect(postgresConfigSchema.safeParse({ connection_string: PG_URL, sslmode: 'x' }).success).toBe(false);
    });

    it('takes a table or schema.table, key_columns as one name or a list, and a replace_mode', () => {
      const parse = (d: Record<string, unknown>) => postgresDestinationSchema.safeParse({ connection: 'pg', ...d });
      expect(parse({ object: 'people', key_columns: 'email' }).data?.key_columns).toEqual(['email']);
      expect(parse({ object: 'crm.people', key_columns: ['region', 'id'] }).data?.key_columns).toEqual(['region', 'id']);
      expect(parse({ object: 'a.b.c' }).error?.issues[0].message).toBe('must be a table name, or schema.table');
      expect(parse({ object: 'people', replace_mode: 'truncate' }).success).toBe(false);
    });

    it('maps warehouse types to families and finds the types that cannot fit a column', () => {
      expect(['INTEGER', 'BIGINT', 'DECIMAL(18,0)', 'NUMBER(38,0)', 'NUMBER'].map(warehouseFamily)).toEqual(['integer', 'integer', 'integer', 'integer', 'integer']);
      expect(['DOUBLE', 'DECIMAL(18,3)', 'VARCHAR', 'TIMESTAMP WITH TIME ZONE', 'STRUCT(a INTEGER)', 'INTEGER[]', 'JSON', '"NULL"'].map(warehouseFamily)).toEqual([
        'float',
        'decimal',
        'text',
        'temporal',
        'json',
        'list',
        'json',
        'null',
      ]);
      const column = (type: string, family: ColumnInfo['family']): ColumnInfo => ({ name: 'c', type, family, notNull: false, hasDefault: false, readOnly: null });
      expect(typeProblem('DOUBLE', column('integer', 'integer'))).toMatch(/gives DOUBLE, but column "c" is integer \(values with a fraction would be refused\)/);
      expect(typeProblem('VARCHAR', column('boolean', 'boolean'))).toMatch(/gives VARCHAR, but column "c" is boolean/);
      expect(typeProblem('VARCHAR', column('timestamp with time zone', 'temporal'))).toBeNull();
      expect(typeProblem('INTEGER', column('numeric(10,2)', 'decimal'))).toBeNull();
      expect(typeProblem('STRUCT(a INTEGER)', column('jsonb', 'json'))).toBeNull();
      expect(typeProblem('DOUBLE', column('text', 'text'))).toBeNull();
    });
  });

  describe('check', () => {
    const check = (config: Record<string, unknown>) => postgresPlugin.check(pluginContext(postgresPlugin, { config, projectDir }));

    it('connects and finds the schema', async () => {
      await expect(check(connectionConfig())).resolves.toBeUndefined();
    });

    it('says which schema is missing, and why a connection fails, without the password', async () => {
      await expect(check({ connection_string: PG_URL, schema: 'no_such_schema' })).rejects.toThrow(/schema "no_such_schema" does not exist in database test/);
      await expect(check({ host: '127.0.0.1', port: 1, user: 'ebb', password: 's3cret', database: 'test', connect_timeout_seconds: 2 })).rejects.toThrow(
        /^cannot connect to PostgreSQL as ebb at 127\.0\.0\.1:1, database test: connect ECONNREFUSED/,
      );
      const wrongDb = check({ connection_string: PG_URL.replace(/\/test$/, '/no_such_db') });
      await expect(wrongDb).rejects.toThrow(/database "no_such_db" does not exist/);
      await expect(check({ host: '127.0.0.1', port: 1, user: 'ebb', password: 's3cret', database: 'test', connect_timeout_seconds: 2 })).rejects.not.toThrow(/s3cret/);
    });
  });

  describe('destination checks (open, and the validate hook)', () => {
    const validate = (table: string, strategy: Strategy, mapped: string[], destination: Record<string, unknown> = {}, fieldTypes?: Record<string, string>) =>
      postgresPlugin.validate({
        ...sessionContext(postgresPlugin, { config: connectionConfig(), projectDir, destination: { connection: 'pg', object: table, ...destination }, strategy, fields: mapped }),
        fieldTypes,
      });
    const messages = async (...args: Parameters<typeof validate>) => (await validate(...args)).map((i) => `${i.path}: ${i.message}`);

    it('accepts a table that fits', async () => {
      const table = await peopleTable();
      expect(await validate(table, 'upsert', fields)).toEqual([]);
      expect(await validate(`${schema}.${table}`, 'mirror', fields)).toEqual([]);
    });

    it('names a missing table, with the near name, and a missing schema', async () => {
      const table = await peopleTable();
      const typo = table.replace('people', 'peple');
      expect(await messages(typo, 'upsert', fields)).toEqual([
        `destination.object: table "${typo}" does not exist in schema "${schema}"; did you mean "${table}"?; create it first: ebb does not create tables`,
      ]);
      expect(await messages(table.toUpperCase(), 'upsert', fields)).toEqual([
        `destination.object: table "${table.toUpperCase()}" does not exist in schema "${schema}"; did you mean "${table}"? (names are case-sensitive); create it first: ebb does not create tables`,
      ]);
      expect(await messages(`nowhere.${table}`, 'upsert', fields)).toEqual([
        'destination.object: schema "nowhere" does not exist in database test; create it, or set the connection\'s config.schema',
      ]);
    });

    it('names missing columns with the near name, and columns PostgreSQL writes itself', async () => {
      const table = await peopleTable(', id bigint GENERATED ALWAYS AS IDENTITY, total integer GENERATED ALWAYS AS (score * 2) STORED');
      expect(await messages(table, 'upsert', ['email', 'nmae', 'score', 'id', 'total'])).toEqual([
        `mapping.nmae: table ${schema}.${table} has no column "nmae"; did you mean "name"?`,
        `mapping.id: column "id" of ${schema}.${table} is an identity column GENERATED ALWAYS: PostgreSQL writes it; remove it from the mapping`,
        `mapping.total: column "total" of ${schema}.${table} is a generated column: PostgreSQL writes it; remove it from the mapping`,
      ]);
    });

    it('needs match columns with a unique index, in the mapping', async () => {
      const noKey = tableName();
      await db.query(`CREATE TABLE ${ref(noKey)} (email text, name text)`);
      expect(await messages(noKey, 'upsert', ['email', 'name'])).toEqual([
        `destination.key_columns: ${schema}.${noKey} has no primary key; set destination.key_columns to the mapped column(s) that identify a row, and give them a unique index`,
      ]);
      expect(await messages(noKey, 'upsert', ['email', 'name'], { key_columns: 'email' })).toEqual([
        `destination.key_columns: ${schema}.${noKey} has no primary key or unique index on exactly (email), so a row cannot be matched unambiguously; add one: CREATE UNIQUE INDEX ON ${schema}.${noKey} (email)`,
      ]);
      // send appends: a table of events needs no key.
      expect(await validate(noKey, 'send', ['email', 'name'])).toEqual([]);
      await db.query(`CREATE UNIQUE INDEX ON ${ref(noKey)} (email)`);
      expect(await validate(noKey, 'upsert', ['email', 'name'], { key_columns: 'email' })).toEqual([]);
      expect(await messages(noKey, 'upsert', ['email', 'name'], { key_columns: ['emial'] })).toEqual([
        `destination.key_columns[0]: table ${schema}.${noKey} has no column "emial"; did you mean "email"?`,
        `destination.key_columns: ${schema}.${noKey} has no primary key or unique index on exactly (emial), so a row cannot be matched unambiguously; add one: CREATE UNIQUE INDEX ON ${schema}.${noKey} (emial)`,
      ]);
      const table = await peopleTable();
      expect(await messages(table, 'upsert', ['name', 'score'])).toEqual([
        `destination.key_columns: the primary key of ${schema}.${table} is (email), and "email" is not in the mapping; map it, or set destination.key_columns to mapped columns with a unique index`,
      ]);
    });

    it('needs every NOT NULL column without a default mapped, for strategies that insert', async () => {
      const table = await peopleTable(', region text NOT NULL');
      expect(await messages(table, 'upsert', fields)).toEqual([
        `mapping: column "region" of ${schema}.${table} is NOT NULL and has no default, so every new row needs it: map it`,
      ]);
      expect(await validate(table, 'update', fields)).toEqual([]);
    });

    it('needs a replace_mode for replace; owner cannot truncate a referenced table; shared cannot null a NOT NULL column', async () => {
      const table = await peopleTable(', city text NOT NULL DEFAULT \'\'');
      expect((await messages(table, 'replace', fields))[0]).toMatch(/^destination.replace_mode: the replace strategy needs replace_mode: owner .* or shared/);
      expect(await messages(table, 'replace', [...fields, 'city'], { replace_mode: 'shared' })).toEqual([
        `mapping.city: replace_mode shared sets the mapped columns to null before loading, but column "city" of ${schema}.${table} is NOT NULL; use replace_mode: owner, or drop the constraint`,
      ]);
      const orders = tableName('orders');
      await db.query(`CREATE TABLE ${ref(orders)} (id int PRIMARY KEY, email text REFERENCES ${ref(table)} (email))`);
      expect(await messages(table, 'replace', fields, { replace_mode: 'owner' })).toEqual([
        `destination.replace_mode: replace_mode owner empties ${schema}.${table} with TRUNCATE, which PostgreSQL refuses while foreign keys of ${schema}.${orders} reference it; use replace_mode: shared`,
      ]);
    });

    it('finds a type mismatch when the warehouse gives the mapped types', async () => {
      const table = await peopleTable(', active boolean, payload jsonb');
      expect(await messages(table, 'upsert', [...fields, 'active', 'payload'], {}, { email: 'VARCHAR', name: 'VARCHAR', score: 'DOUBLE', active: 'VARCHAR', payload: 'STRUCT(a INTEGER)' })).toEqual([
        'mapping.score: type mismatch: the mapping gives DOUBLE, but column "score" is integer (values with a fraction would be refused); convert it in the mapping, e.g. { sql: "CAST(... AS ...)" }, or change the column',
        'mapping.active: type mismatch: the mapping gives VARCHAR, but column "active" is boolean; convert it in the mapping, e.g. { sql: "CAST(... AS ...)" }, or change the column',
      ]);
    });

    it('refuses a view, and says which privilege the user lacks', async () => {
      const table = await peopleTable();
      const view = tableName('view');
      await db.query(`CREATE VIEW ${ref(view)} AS SELECT * FROM ${ref(table)}`);
      expect(await messages(view, 'upsert', fields)).toEqual([`destination.object: ${schema}.${view} is a view; ebb writes to tables only`]);

      const role = `ebb_reader_${randomBytes(3).toString('hex')}`;
      await db.query(`CREATE ROLE ${q(role)} LOGIN`);
      try {
        await db.query(`GRANT USAGE ON SCHEMA ${q(schema)} TO ${q(role)}; GRANT SELECT, INSERT ON ${ref(table)} TO ${q(role)}`);
        const url = new URL(PG_URL);
        url.username = role;
        const issues = await postgresPlugin.validate({
          ...sessionContext(postgresPlugin, { config: { connection_string: url.toString(), schema }, projectDir, destination: { connection: 'pg', object: table }, strategy: 'mirror', fields }),
        });
        expect(issues.map((i) => i.message)).toEqual([
          `the connection's user lacks the UPDATE, DELETE privilege on ${schema}.${table}, which the mirror strategy needs: GRANT UPDATE, DELETE ON ${schema}.${table} TO <user>`,
        ]);
      } finally {
        await db.query(`REVOKE ALL ON ${ref(table)} FROM ${q(role)}; REVOKE ALL ON SCHEMA ${q(schema)} FROM ${q(role)}; DROP ROLE ${q(role)}`);
      }
    });

    it('open() runs the same checks, and fails the run before writing anything', async () => {
      const table = await peopleTable();
      await expect(open(table, 'upsert', ['email', 'nmae'])).rejects.toThrow(
        `sync test_sync: postgres table ${schema}.${table} cannot take this sync:\n  mapping.nmae: table ${schema}.${table} has no column "nmae"; did you mean "name"?`,
      );
    });
  });

  describe('sessions', () => {
    it('create: a whole batch in one statement; a key the table holds, or one taken earlier in the batch, is a conflict with its identifier', async () => {
      const table = await peopleTable();
      await db.query(`INSERT INTO ${ref(table)} (email, name) VALUES ('cyd@x.io', 'Cyd before')`);
      const { session, requests } = await open(table, 'upsert', fields);
      const before = requests();
      const many = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, { email: `p${i}@x.io`, name: `P${i}`, score: i }]));
      const outcomes = await apply(session, 'create', { a: ann, b: bob, c: cyd, dup: { ...ann, name: 'Ann twice' }, ...many });
      expect(requests() - before).toBe(1);
      expect(brief(outcomes).slice(0, 4)).toEqual(['a ok ann@x.io', 'b ok bob@x.io', 'c conflict cyd@x.io', 'dup conflict ann@x.io']);
      expect(outcomes.slice(4).every((o) => o.success)).toBe(true);
      await session.close(true);
      expect(await rows(`SELECT email, name, score, note FROM ${ref(table)} WHERE email IN ('ann@x.io', 'cyd@x.io') ORDER BY email`)).toEqual([
        { email: 'ann@x.io', name: 'Ann', score: 1, note: 'kept' },
        { email: 'cyd@x.io', name: 'Cyd before', score: null, note: 'kept' },
      ]);
      expect((await rows(`SELECT count(*)::int AS n FROM ${ref(table)}`))[0].n).toBe(53);
    });

    it('update: by the identifier ebb knows, else by the record; the key itself can change; a missing row is not_found', async () => {
      const table = await peopleTable();
      await db.query(`INSERT INTO ${ref(table)} (email, name, score) VALUES ('ann@x.io', 'A', 0), ('bob@x.io', 'B', 0)`);
      const { session } = await open(table, 'upsert', fields);
      const outcomes = await apply(session, 'update', { a: { ...ann, email: 'ann@new.io' }, b: bob, c: cyd }, { a: 'ann@x.io' });
      expect(brief(outcomes)).toEqual(['a ok ann@new.io', 'b ok bob@x.io', 'c not_found']);
      expect(outcomes[2].error?.message).toBe(`${schema}.${table} holds no row with email = "cyd@x.io"`);
      await session.close(true);
      expect(await rows(`SELECT email, name, score, note FROM ${ref(table)} ORDER BY email`)).toEqual([
        { email: 'ann@new.io', name: 'Ann', score: 1, note: 'kept' },
        { email: 'bob@x.io', name: 'Bob', score: 2, note: 'kept' },
      ]);
    });

    it('delete and clear: by identifier; clear nulls the mapped columns but the key; a missing row is not_found', async () => {
      const table = await peopleTable();
      await db.query(`INSERT INTO ${ref(table)} (email, name, score) VALUES ('ann@x.io', 'A', 1), ('bob@x.io', 'B', 2)`);
      const { session } = await open(table, 'upsert', fields);
      expect(brief(await apply(session, 'clear', { a: ann, c: cyd }, { a: 'ann@x.io' }))).toEqual(['a ok ann@x.io', 'c not_found']);
      expect(brief(await apply(session, 'delete', { b: bob, c: cyd }, { b: 'bob@x.io', c: 'cyd@x.io' }))).toEqual(['b ok bob@x.io', 'c not_found']);
      await session.close(true);
      expect(await rows(`SELECT email, name, score, note FROM ${ref(table)}`)).toEqual([{ email: 'ann@x.io', name: null, score: null, note: 'kept' }]);
    });

    it('a composite key: the identifier is a JSON array of its values, and finds the row again', async () => {
      const table = tableName('regional');
      await db.query(`CREATE TABLE ${ref(table)} (region text, id integer, name text, PRIMARY KEY (region, id))`);
      const cols = ['region', 'id', 'name'];
      const first = await open(table, 'mirror', cols);
      const created = await apply(first.session, 'create', { '["eu",1]': { region: 'eu', id: 1, name: 'A' }, '["us",1]': { region: 'us', id: 1, name: 'B' } });
      expect(brief(created)).toEqual(['["eu",1] ok ["eu", 1]', '["us",1] ok ["us", 1]']);
      await first.session.close(true);
      const second = await open(table, 'mirror', cols);
      expect(brief(await apply(second.session, 'update', { e: { region: 'eu', id: 1, name: 'A2' } }, { e: '["eu", 1]' }))).toEqual(['e ok ["eu", 1]']);
      expect(brief(await apply(second.session, 'delete', { u: { region: 'us', id: 1, name: 'B' } }, { u: '["us", 1]' }))).toEqual(['u ok ["us", 1]']);
      await second.session.close(true);
      expect(await rows(`SELECT region, id, name FROM ${ref(table)}`)).toEqual([{ region: 'eu', id: 1, name: 'A2' }]);
    });

    it('converts JSON values to the column types, objects and JSON text into json and jsonb', async () => {
      const table = tableName('types');
      await db.query(
        `CREATE TABLE ${ref(table)} (id integer PRIMARY KEY, big bigint, amount numeric(10,2), ratio double precision, active boolean, born date,
         seen_at timestamptz, uid uuid, tags text[], doc jsonb, raw json, label varchar(10), as_text text)`,
      );
      const cols = ['id', 'big', 'amount', 'ratio', 'active', 'born', 'seen_at', 'uid', 'tags', 'doc', 'raw', 'label', 'as_text'];
      const { session } = await open(table, 'upsert', cols);
      const record = {
        id: '7',
        big: 9007199254740991,
        amount: 12.5,
        ratio: 0.125,
        active: true,
        born: '2001-02-03',
        seen_at: '2026-01-02 03:04:05',
        uid: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        tags: ['a', 'b'],
        doc: { plan: 'pro', seats: [1, 2] },
        raw: '{"from": "text"}',
        label: 'short',
        as_text: { nested: true },
      };
      expect(brief(await apply(session, 'create', { k: record }))).toEqual(['k ok 7']);
      await session.close(true);
      const [row] = await rows(`SELECT *, seen_at::text AS seen_text, born::text AS born_text FROM ${ref(table)}`);
      expect(row).toMatchObject({
        id: 7,
        big: '9007199254740991',
        amount: '12.50',
        ratio: 0.125,
        active: true,
        seen_text: '2026-01-02 03:04:05+00',
        born_text: '2001-02-03',
        uid: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        tags: ['a', 'b'],
        doc: { plan: 'pro', seats: [1, 2] },
        raw: { from: 'text' },
        label: 'short',
        as_text: '{"nested":true}',
      });
    });

    it('a value that does not fit: the batch is refused whole (the engine splits it); alone, the message names the column; the run goes on', async () => {
      const table = await peopleTable();
      const { session } = await open(table, 'upsert', fields);
      const batch = await apply(session, 'create', { a: ann, x: { email: 'x@x.io', name: 'X', score: 'lots' }, c: cyd });
      expect(brief(batch)).toEqual(['a rejected whole', 'x rejected whole', 'c rejected whole']);
      expect(batch[0].error?.message).toBe('invalid input syntax for type integer: "lots" [SQLSTATE 22P02]');
      const alone = await apply(session, 'create', { x: { email: 'x@x.io', name: 'X', score: 'lots' } });
      expect(brief(alone)).toEqual(['x rejected']);
      expect(alone[0].error?.message).toBe('column "score" (integer) cannot take "lots": invalid input syntax for type integer: "lots" [SQLSTATE 22P02]');
      expect(alone[0].result).toMatchObject({ sqlstate: '22P02' });
      const tooLong = await apply(session, 'create', { y: { email: 'y@x.io', name: 'Y', score: 3.5 } });
      expect(tooLong[0].error?.message).toMatch(/^column "score" \(integer\) cannot take 3.5: invalid input syntax for type integer: "3.5"/);
      // The refused statements rolled back to their savepoints: the transaction goes on.
      expect(brief(await apply(session, 'create', { a: ann, c: cyd }))).toEqual(['a ok ann@x.io', 'c ok cyd@x.io']);
      await session.close(true);
      expect(await rows(`SELECT email FROM ${ref(table)} ORDER BY email`)).toEqual([{ email: 'ann@x.io' }, { email: 'cyd@x.io' }]);
    });

    it('constraint violations refuse the record; a null key is refused before it is sent', async () => {
      const table = await peopleTable(', CONSTRAINT positive CHECK (score > 0)');
      await db.query(`ALTER TABLE ${ref(table)} ALTER COLUMN name SET NOT NULL`);
      const { session } = await open(table, 'upsert', fields);
      const check = await apply(session, 'create', { a: { ...ann, score: -1 } });
      expect(check[0].error).toMatchObject({ kind: 'rejected' });
      expect(check[0].error?.message).toMatch(/violates check constraint "positive".*\[SQLSTATE 23514\]$/);
      const notNull = await apply(session, 'create', { b: { ...bob, name: null } });
      expect(notNull[0].error?.message).toMatch(/null value in column "name" of relation "people_\d+" violates not-null constraint .*\[SQLSTATE 23502\]$/);
      const noKey = await apply(session, 'create', { c: { ...cyd, email: null }, a: ann });
      expect(brief(noKey)).toEqual(['c rejected', 'a ok ann@x.io']);
      expect(noKey[0].error?.message).toBe('match column "email" is null in this record, so its row could never be found again; give it a value in the source');
      await session.close(true);
    });

    it('batches that arrive at once run one after the other in the run transaction; nothing is visible before close(true)', async () => {
      const table = await peopleTable();
      const { session } = await open(table, 'upsert', fields);
      const all = await Promise.all([apply(session, 'create', { a: ann }), apply(session, 'create', { b: bob }), apply(session, 'create', { c: cyd })]);
      expect(all.flat().every((o) => o.success)).toBe(true);
      expect(await rows(`SELECT * FROM ${ref(table)}`)).toEqual([]);
      await session.close(true);
      expect(await rows(`SELECT email FROM ${ref(table)} ORDER BY email`)).toHaveLength(3);
    });

    it('close(false) leaves the table as it was', async () => {
      const table = await peopleTable();
      await db.query(`INSERT INTO ${ref(table)} (email, name) VALUES ('old@x.io', 'Old')`);
      const { session } = await open(table, 'mirror', fields);
      await apply(session, 'create', { a: ann });
      await apply(session, 'delete', { o: { email: 'old@x.io' } }, { o: 'old@x.io' });
      await session.close(false);
      expect(await rows(`SELECT email FROM ${ref(table)}`)).toEqual([{ email: 'old@x.io' }]);
    });

    it('replace, owner: the table is emptied and loaded in one transaction', async () => {
      const table = await peopleTable();
      await db.query(`INSERT INTO ${ref(table)} (email, name) VALUES ('old@x.io', 'Old'), ('ann@x.io', 'Ann before')`);
      const rolledBack = await open(table, 'replace', fields, { replace_mode: 'owner' });
      await apply(rolledBack.session, 'recreate', { a: ann });
      await rolledBack.session.close(false);
      expect(await rows(`SELECT email FROM ${ref(table)} ORDER BY email`)).toEqual([{ email: 'ann@x.io' }, { email: 'old@x.io' }]);

      const { session } = await open(table, 'replace', fields, { replace_mode: 'owner' });
      expect(brief(await apply(session, 'recreate', { a: ann, b: bob }))).toEqual(['a ok ann@x.io', 'b ok bob@x.io']);
      await session.close(true);
      expect(await rows(`SELECT email, name, note FROM ${ref(table)} ORDER BY email`)).toEqual([
        { email: 'ann@x.io', name: 'Ann', note: 'kept' },
        { email: 'bob@x.io', name: 'Bob', note: 'kept' },
      ]);
    });

    it('replace where every record fails keeps the last full set: an empty or nulled table helps nobody', async () => {
      const table = await peopleTable();
      await db.query(`INSERT INTO ${ref(table)} (email, name, score) VALUES ('old@x.io', 'Old', 1)`);
      for (const replace_mode of ['owner', 'shared']) {
        const { session } = await open(table, 'replace', fields, { replace_mode });
        expect(brief(await apply(session, 'recreate', { x: { ...ann, score: 'lots' } }))).toEqual(['x rejected']);
        await session.close(true);
        expect(await rows(`SELECT email, name, score FROM ${ref(table)}`)).toEqual([{ email: 'old@x.io', name: 'Old', score: 1 }]);
      }
    });

    it('replace, shared: the mapped columns are nulled, then the records upserted; other columns and rows stay', async () => {
      const table = await peopleTable();
      await db.query(`INSERT INTO ${ref(table)} (email, name, score, note) VALUES ('other@x.io', 'Other', 9, 'theirs'), ('ann@x.io', 'Ann before', 0, 'ann''s note')`);
      const { session } = await open(table, 'replace', fields, { replace_mode: 'shared' });
      expect(brief(await apply(session, 'recreate', { a: ann, b: bob }))).toEqual(['a ok ann@x.io', 'b ok bob@x.io']);
      await session.close(true);
      expect(await rows(`SELECT email, name, score, note FROM ${ref(table)} ORDER BY email`)).toEqual([
        { email: 'ann@x.io', name: 'Ann', score: 1, note: "ann's note" },
        { email: 'bob@x.io', name: 'Bob', score: 2, note: 'kept' },
        { email: 'other@x.io', name: null, score: null, note: 'theirs' },
      ]);
    });

    it('send appends, even to a table without a key', async () => {
      const table = tableName('events');
      await db.query(`CREATE TABLE ${ref(table)} (id bigserial PRIMARY KEY, email text, name text, at timestamptz DEFAULT now())`);
      const { session } = await open(table, 'send', ['email', 'name']);
      expect(brief(await apply(session, 'send', { a: { email: 'a@x.io', name: 'A' }, b: { email: 'a@x.io', name: 'A again' } }))).toEqual(['a ok null', 'b ok null']);
      await session.close(true);
      expect(await rows(`SELECT email, name FROM ${ref(table)} ORDER BY id`)).toEqual([
        { email: 'a@x.io', name: 'A' },
        { email: 'a@x.io', name: 'A again' },
      ]);
    });

    it('a broken connection fails the run: apply throws, close(true) throws, and nothing lands', async () => {
      const table = await peopleTable();
      const { session } = await open(table, 'upsert', fields);
      await apply(session, 'create', { a: ann });
      const backends = await rows(`SELECT pid FROM pg_stat_activity WHERE application_name = 'ebb' AND query LIKE $1`, [`%${table}%`]);
      expect(backends).toHaveLength(1);
      await db.query('SELECT pg_terminate_backend($1)', [backends[0].pid]);
      await expect(apply(session, 'create', { b: bob })).rejects.toThrow(/^the connection to PostgreSQL broke during the run \(.*\); its transaction is rolled back/);
      await expect(session.close(true)).rejects.toThrow(/the connection to PostgreSQL broke during the run/);
      expect(await rows(`SELECT * FROM ${ref(table)}`)).toEqual([]);
    });
  });

  describe('through the CLI', () => {
    /** A project with a sync `s` of `people` (id, email, name, score) to a postgres table. */
    async function project(table: string, strategy: string, destination: Record<string, unknown> = {}, mapping: Record<string, unknown> = { email: 'email', name: 'name', score: 'score' }) {
      const dir = await makeProject({
        version: 1,
        name: 'postgres_cli',
        warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
        connections: { pg: { plugin: 'postgres', config: connectionConfig(), retry: { delays_seconds: [0.05] } } },
        syncs: [{ name: 's', source: { table: 'people', key: 'id' }, destination: { connection: 'pg', object: table, ...destination }, strategy, mapping, batch_size: 2 }],
      });
      const load = (values: string) => duck(join(dir, 'warehouse.duckdb'), `CREATE OR REPLACE TABLE people (id INTEGER, email VARCHAR, name VARCHAR, score INTEGER);\nINSERT INTO people VALUES ${values}`);
      const run = async (exit: number) => {
        const result = await ebb(dir, ['run', 's', '--json']);
        expect(result.code, result.stderr + result.stdout).toBe(exit);
        return (JSON.parse(result.stdout) as { runs: Array<{ run_id: string; health: string; error: string | null; counts: Record<string, number> }> }).runs[0];
      };
      return { dir, load, run };
    }

    it('`ebb validate`, `ebb check` and `ebb run` find a missing table, a missing column and a type mismatch before any run', async () => {
      const table = await peopleTable();
      const p = await project(table, 'upsert', {}, { email: 'email', nmae: 'name', score: { sql: 'score * 1.5' } });
      await p.load(`(1, 'ann@x.io', 'Ann', 1)`);
      const problems = [
        `syncs[0].mapping.nmae: table ${schema}.${table} has no column "nmae"; did you mean "name"?`,
        `syncs[0].mapping.score: type mismatch: the mapping gives DECIMAL(12,1), but column "score" is integer (values with a fraction would be refused)`,
      ];
      const validate = await ebb(p.dir, ['validate']);
      expect(validate.code, validate.stderr).toBe(3);
      for (const line of problems) expect(validate.stderr).toContain(line);
      const check = await ebb(p.dir, ['check']);
      expect(check.code).toBe(1);
      expect(check.stdout).toContain(`FAIL pg → s: ${problems[0]}`);
      const run = await ebb(p.dir, ['run', 's']);
      expect(run.code).toBe(3);
      expect(run.stderr).toContain(problems[0]);
      expect(await rows(`SELECT * FROM ${ref(table)}`)).toEqual([]);

      const missing = await project(`${table}_nope`, 'upsert');
      await missing.load(`(1, 'ann@x.io', 'Ann', 1)`);
      const none = await ebb(missing.dir, ['validate']);
      expect(none.code).toBe(3);
      expect(none.stderr).toContain(`syncs[0].destination.object: table "${table}_nope" does not exist in schema "${schema}"; did you mean "${table}"?`);
    });

    it('a commit that PostgreSQL refuses leaves nothing, and the next run sends every record again', async () => {
      // A deferred unique constraint is checked at COMMIT: two records with the same name break it.
      const table = await peopleTable(', CONSTRAINT unique_name UNIQUE (name) DEFERRABLE INITIALLY DEFERRED');
      const p = await project(table, 'upsert');
      await p.load(`(1, 'ann@x.io', 'Same', 1), (2, 'bob@x.io', 'Same', 2), (3, 'cyd@x.io', 'Cyd', 3)`);
      const failed = await p.run(1);
      expect(failed.error).toMatch(/PostgreSQL did not commit the run into .*duplicate key value violates unique constraint "unique_name".*nothing of this run landed/);
      expect(await rows(`SELECT * FROM ${ref(table)}`)).toEqual([]);
      await p.load(`(1, 'ann@x.io', 'Ann', 1), (2, 'bob@x.io', 'Bob', 2), (3, 'cyd@x.io', 'Cyd', 3)`);
      const healed = await p.run(0);
      expect(healed.counts.succeeded).toBe(3);
      expect(await rows(`SELECT email, name FROM ${ref(table)} ORDER BY email`)).toEqual([
        { email: 'ann@x.io', name: 'Ann' },
        { email: 'bob@x.io', name: 'Bob' },
        { email: 'cyd@x.io', name: 'Cyd' },
      ]);
    });

    it('replace in shared mode through `ebb run`: other columns and rows stay, the mapped columns follow the source', async () => {
      const table = await peopleTable();
      await db.query(`INSERT INTO ${ref(table)} (email, name, score, note) VALUES ('other@x.io', 'Other', 9, 'theirs')`);
      const p = await project(table, 'replace', { replace_mode: 'shared' });
      await p.load(`(1, 'ann@x.io', 'Ann', 1), (2, 'bob@x.io', 'Bob', 2)`);
      await p.run(0);
      await p.load(`(2, 'bob@x.io', 'Bob', 20)`);
      await p.run(0);
      expect(await rows(`SELECT email, name, score, note FROM ${ref(table)} ORDER BY email`)).toEqual([
        { email: 'ann@x.io', name: null, score: null, note: 'kept' },
        { email: 'bob@x.io', name: 'Bob', score: 20, note: 'kept' },
        { email: 'other@x.io', name: null, score: null, note: 'theirs' },
      ]);
    });

    it('replace in owner mode with an emptied source: refused without --allow-empty-source; with it, the table is emptied', async () => {
      const table = await peopleTable();
      const p = await project(table, 'replace', { replace_mode: 'owner' });
      await p.load(`(1, 'ann@x.io', 'Ann', 1), (2, 'bob@x.io', 'Bob', 2)`);
      await p.run(0);
      await duck(join(p.dir, 'warehouse.duckdb'), 'DELETE FROM people');
      const refused = await p.run(1);
      expect(refused.error).toMatch(/the source returned no rows, so this run would remove all 2 records .*--allow-empty-source/);
      expect(await rows(`SELECT email FROM ${ref(table)} ORDER BY email`)).toEqual([{ email: 'ann@x.io' }, { email: 'bob@x.io' }]);
      const allowed = await ebb(p.dir, ['run', 's', '--allow-empty-source']);
      expect(allowed.code, allowed.stderr).toBe(0);
      expect(await rows(`SELECT * FROM ${ref(table)}`)).toEqual([]);
    });

    it('the demo project of `ebb init` syncs its customers into a table', async () => {
      const dir = join(await mkdtemp(join(tmpdir(), 'ebb-postgres-demo-')), 'demo');
      await promisify(execFile)(process.execPath, [join(repoRoot, 'bin', 'ebb.js'), 'init', dir]);
      const table = tableName('customers');
      await db.query(`CREATE TABLE ${ref(table)} (customer_id integer PRIMARY KEY, email text NOT NULL, name text, lifecycle_stage text, synced_at timestamptz DEFAULT now())`);
      const doc = parseDocument(await readFile(join(dir, 'ebb.yml'), 'utf8'));
      doc.setIn(['connections', 'warehouse_db'], doc.createNode({ plugin: 'postgres', config: connectionConfig() }));
      doc.addIn(
        ['syncs'],
        doc.createNode({
          name: 'customers_to_postgres',
          source: { table: 'analytics.customers', key: 'customer_id' },
          destination: { connection: 'warehouse_db', object: table },
          strategy: 'upsert',
          mapping: { customer_id: 'customer_id', email: 'email', name: { sql: "first_name || ' ' || last_name" }, lifecycle_stage: 'lifecycle_stage' },
        }),
      );
      await writeFile(join(dir, 'ebb.yml'), doc.toString());
      const result = await ebb(dir, ['run', 'customers_to_postgres']);
      expect(result.code, result.stderr + result.stdout).toBe(0);
      expect((await rows(`SELECT count(*)::int AS n FROM ${ref(table)}`))[0].n).toBe(200);
      expect(await rows(`SELECT customer_id, email, name FROM ${ref(table)} WHERE customer_id = 1`)).toEqual([{ customer_id: 1, email: 'customer1@example.com', name: 'Grace Thompson' }]);
      await rm(join(dir, '..'), { recursive: true, force: true });
    });
  });
});

if (problem === null) describePlugin('postgres', postgresHarness);
