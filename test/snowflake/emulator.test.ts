/**
 * The Snowflake adapter's plumbing, through the real driver, against the wire emulator: login by
 * password and by key pair, one session reused, bulk appends, chunked results, async queries,
 * errors, and the emulator's strictness (what Snowflake would refuse, it refuses). Emulated.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { SnowflakeEmulator } from './emulator.ts';
import { emulatedConfig, openEmulated } from './support.ts';
import { check, tokenize, translate, text } from './translate.ts';
import { connectionOptions, loadDriver, quoteSnowflake, SnowflakeWarehouse, unquotedName } from '../../engine/warehouse/snowflake.ts';
import type { Warehouse } from '../../engine/warehouse/warehouse.ts';

const toDuckdb = (sql: string) => {
  const tokens = tokenize(sql);
  check(tokens);
  return text(translate(tokens));
};

describe('Snowflake dialect: quoting', () => {
  it('upper-cases plain lower-case names, keeps any other name exact, and doubles quotes', () => {
    expect(quoteSnowflake('email')).toBe('"EMAIL"');
    expect(quoteSnowflake('customer_id2$')).toBe('"CUSTOMER_ID2$"');
    expect(quoteSnowflake('Email')).toBe('"Email"');
    expect(quoteSnowflake('my col')).toBe('"my col"');
    expect(quoteSnowflake('we"ird')).toBe('"we""ird"');
    expect(quoteSnowflake('x"); DROP TABLE t; --')).toBe('"x""); DROP TABLE t; --"');
    expect(unquotedName('EMAIL')).toBe('email');
    expect(unquotedName('Mixed')).toBe('Mixed');
  });
});

describe('Snowflake emulator: translation', () => {
  it('translates only what the dialect emits, upper-casing unquoted words and leaving literals alone', () => {
    expect(toDuckdb(`select OBJECT_CONSTRUCT_KEEP_NULL(?, "EMAIL") as r, 'sysdate() variant' from t -- variant`)).toBe(
      `SELECT json_object(?, "EMAIL") AS R, 'sysdate() variant' FROM T -- variant`,
    );
    expect(toDuckdb('CREATE TABLE t (v VARIANT, at TIMESTAMP_NTZ, "trigger" VARCHAR)')).toBe('CREATE TABLE T (V JSON, AT TIMESTAMP, "trigger" VARCHAR)');
    expect(toDuckdb('SELECT SYSDATE( ), PARSE_JSON(x), TO_JSON(ARRAY_CONSTRUCT(a, b)), MD5(TO_JSON(v))')).toBe(
      'SELECT CAST(now() AS TIMESTAMP), json(X), TO_JSON(json_array(A, B)), MD5(TO_JSON(V))',
    );
    expect(toDuckdb('SELECT count(*) AS n, CAST(HASH_AGG(*) AS VARCHAR) AS f FROM t')).toBe('SELECT COUNT(*) AS N, CAST(coalesce(sum(hash(*COLUMNS(*))), 0) AS VARCHAR) AS F FROM T');
    // Snowflake orders LISTAGG and ARRAY_AGG after the call; DuckDB inside it. LISTAGG's text is held to a VARCHAR's 16 MB.
    expect(toDuckdb("SELECT LISTAGG(CAST(r AS VARCHAR), CHR(31)) WITHIN GROUP (ORDER BY seq), TO_JSON(ARRAY_AGG(OBJECT_CONSTRUCT_KEEP_NULL(?, k)) WITHIN GROUP (ORDER BY seq DESC)) FROM t")).toBe(
      'SELECT listagg_limit(string_agg(CAST(R AS VARCHAR), CHR(31) ORDER BY SEQ)), TO_JSON(list(json_object(?, K) ORDER BY SEQ DESC)) FROM T',
    );
  });

  it.each([
    ['INSERT INTO t (a) VALUES (1) RETURNING a', /RETURNING/],
    ['INSERT INTO t (a) VALUES (1) ON CONFLICT DO NOTHING', /ON CONFLICT/],
    ['MERGE INTO t USING s ON t.a = s.a WHEN NOT MATCHED BY SOURCE THEN DELETE', /NOT MATCHED BY SOURCE/],
    ['INSERT OR REPLACE INTO t VALUES (1)', /INSERT OR/],
    ['CREATE TABLE t (j JSON)', /Unsupported data type 'JSON'/],
    ['SELECT ?::JSON', /Unsupported data type 'JSON'/],
    ['SELECT json_object(?, 1)', /Unknown function JSON_OBJECT/],
    ['SELECT now()', /Unknown function NOW/],
    ['INSERT INTO t (a, v) VALUES (?, PARSE_JSON(?))', /Invalid expression \[PARSE_JSON/],
    ['SELECT 1; SELECT 2', /statement count 2/],
  ])('refuses %s', (sql, message) => {
    expect(() => check(tokenize(sql))).toThrow(message);
  });

  it('refuses array binds except on INSERT … VALUES, as Snowflake does', () => {
    expect(() => check(tokenize('INSERT INTO t (a, v) SELECT ?, PARSE_JSON(?)'), { arrayBinds: true })).toThrow(/Bind variable \? not set/);
    expect(() => check(tokenize('INSERT INTO t (a, b) VALUES (?, ?)'), { arrayBinds: true })).not.toThrow();
    expect(() => check(tokenize('INSERT INTO t (a) SELECT column1 FROM (VALUES (?), (?)) AS v (column1)'))).not.toThrow();
  });
});

describe('Snowflake adapter on the emulator (emulated)', () => {
  let emulator: SnowflakeEmulator;
  let w: Warehouse;

  beforeAll(async () => {
    emulator = await SnowflakeEmulator.start({ chunkRows: 1000 });
    w = await openEmulated(emulator);
    await w.run('CREATE SCHEMA IF NOT EXISTS app');
  });
  afterAll(async () => {
    await w?.close();
    await emulator?.stop();
  });

  it('logs in once and reuses the session for every statement', async () => {
    await w.runAndRead('SELECT 1 AS one');
    await w.runAndRead('SELECT 2 AS two');
    expect(emulator.requests.login).toBe(1);
  });

  it('names unquoted columns in upper case, as Snowflake does; the adapter hands them out in lower case', async () => {
    await w.run('CREATE TABLE app.people (email VARCHAR, "Nick Name" VARCHAR)');
    await w.run('INSERT INTO app.people VALUES (?, ?)', ['a@x.io', 'Al']);
    expect(await emulator.sql('SELECT email, "Nick Name", count(*) AS n FROM app.people GROUP BY ALL')).toEqual([{ EMAIL: 'a@x.io', 'Nick Name': 'Al', N: '1' }]);
    expect(await w.runAndRead(`SELECT email, "Nick Name" FROM app.people`)).toEqual([{ email: 'a@x.io', 'nick name': 'Al' }]);
    // The column is EMAIL: a quoted lower-case name does not match it on Snowflake.
    expect(quoteSnowflake('email')).toBe('"EMAIL"');
  });

  it('appends in bulk: one statement for 2000 rows, array binds without JSON, one FROM VALUES with it', async () => {
    await w.run('CREATE TABLE app.plain (run_id VARCHAR, seq BIGINT, ok BOOLEAN, sent_at TIMESTAMP_NTZ)');
    await w.run('CREATE TABLE app.semi (run_id VARCHAR, seq BIGINT, result VARIANT, sent_at TIMESTAMP_NTZ)');
    const at = new Date('2025-03-04T05:06:07.089Z');
    emulator.resetCounts();
    await w.append('app', 'plain', ['run_id', 'seq', 'ok', 'sent_at'], Array.from({ length: 2000 }, (_v, i) => ['r', i, i % 2 === 0, at]));
    await w.append('app', 'semi', ['run_id', 'seq', 'result', 'sent_at'], Array.from({ length: 2000 }, (_v, i) => ['r', i, JSON.stringify({ i }), at]));
    const inserts = emulator.statements.filter((s) => s.sql.startsWith('INSERT'));
    expect(inserts.map((s) => s.bindRows)).toEqual([2000, 1]);
    expect(inserts[0].sql).toBe('INSERT INTO "APP"."PLAIN" ("RUN_ID", "SEQ", "OK", "SENT_AT") VALUES (?, ?, ?, ?)');
    expect(inserts[1].sql).toMatch(/^INSERT INTO "APP"\."SEMI" \("RUN_ID", "SEQ", "RESULT", "SENT_AT"\) SELECT V\.C1, V\.C2, /);
    expect(inserts[1].sql).toContain('PARSE_JSON(V.C3), CAST(V.C4 AS TIMESTAMP_NTZ) FROM (VALUES (?, ?, ?, ?), (?, ?, ?, ?)');
    // The column types were read once per table (a describe), not per append.
    await w.append('app', 'plain', ['run_id', 'seq', 'ok', 'sent_at'], [['r', 2000, true, at]]);
    expect(emulator.statements.filter((s) => s.describeOnly)).toHaveLength(2);
    expect(await w.runAndRead('SELECT count(*) AS n, max(sent_at) AS at FROM app.plain')).toEqual([{ n: 2001, at }]);
    expect(await w.runAndRead('SELECT result FROM app.semi WHERE seq = 7')).toEqual([{ result: expect.stringMatching(/"i":\s*7/) }]);
  });

  it('moves the change token of SYSTEM$LAST_CHANGE_COMMIT_TIME with each DML on that table, and only on it', async () => {
    await w.run('CREATE TABLE app.watched (id INTEGER, v VARCHAR)');
    await w.run('CREATE TABLE app.other (id INTEGER)');
    const token = async () => Object.values((await w.runAndRead('SELECT SYSTEM$LAST_CHANGE_COMMIT_TIME(?) AS t', ['"APP"."WATCHED"']))[0]).map(String)[0];
    const seen = [await token()];
    for (const dml of [
      `INSERT INTO app.watched VALUES (1, 'a')`,
      `INSERT INTO "APP"."WATCHED" (id, v) SELECT 2, 'b'`,
      `UPDATE app.watched SET v = 'c' WHERE id = 1`,
      `MERGE INTO app.watched t USING (SELECT 3 AS id) s ON t.id = s.id WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, 'd')`,
      `DELETE FROM app.watched WHERE id = 2`,
    ]) {
      await w.run(dml);
      seen.push(await token());
    }
    expect(new Set(seen).size).toBe(seen.length);
    await w.run('INSERT INTO app.other VALUES (1)');
    expect(await token()).toBe(seen.at(-1));
  });

  it('adds latencyMs to every request it answers, one at a time or several at once', async () => {
    emulator.latencyMs = 150;
    try {
      emulator.resetCounts();
      const started = Date.now();
      await w.runAndRead('SELECT 1 AS one');
      const one = Date.now() - started;
      await Promise.all([w.runAndRead('SELECT 2 AS two'), w.runAndRead('SELECT 3 AS three')]);
      const both = Date.now() - started - one;
      expect(emulator.requests.query).toBe(3);
      expect(one).toBeGreaterThanOrEqual(150);
      expect(both).toBeGreaterThanOrEqual(150);
    } finally {
      emulator.latencyMs = 0;
    }
  });

  it('splits a very large append to stay under the driver’s stage-binding threshold', async () => {
    await w.run('CREATE TABLE app.wide (a VARCHAR, b VARCHAR, c VARCHAR, d VARCHAR, e VARCHAR)');
    emulator.resetCounts();
    await w.append('app', 'wide', ['a', 'b', 'c', 'd', 'e'], Array.from({ length: 25_000 }, (_v, i) => [`${i}`, 'b', 'c', 'd', 'e']));
    expect(emulator.statements.filter((s) => s.sql.startsWith('INSERT')).map((s) => s.bindRows)).toEqual([10_000, 10_000, 5_000]);
    expect(await w.runAndRead('SELECT count(*) AS n FROM app.wide')).toEqual([{ n: 25_000 }]);
  });

  it('serves large results in gzipped chunks, which the driver fetches as it streams', async () => {
    emulator.resetCounts();
    let rows = 0;
    for await (const chunk of w.stream('SELECT a FROM app.wide ORDER BY a')) rows += chunk.length;
    expect(rows).toBe(25_000);
    expect(emulator.requests.chunk).toBe(24);
    expect(emulator.requests.query).toBe(1);
  });

  it('reports SQL errors with Snowflake’s message and SQL state', async () => {
    await expect(w.run('SELECT nope FROM app.people')).rejects.toThrow(/SQL compilation error/);
    const sdk = await loadDriver();
    const conn = sdk.createConnection(connectionOptions(emulatedConfig(emulator), tmpdir()));
    await new Promise<void>((ok, fail) => conn.connect((e) => (e ? fail(e) : ok())));
    const error = await new Promise<{ sqlState?: string; code?: unknown }>((ok) => conn.execute({ sqlText: 'SELECT * FROM app.missing', complete: (e) => ok(e as { sqlState?: string }) }));
    expect(error.sqlState).toBe('42S02');
    await new Promise((ok) => conn.destroy(ok));
  });

  it('refuses a MERGE whose source matches a target row twice, and accepts duplicates that match nothing', async () => {
    await w.run('CREATE TABLE app.target (k INTEGER, v VARCHAR)');
    await w.run(`INSERT INTO app.target VALUES (1, 'a')`);
    const merge = (source: string) =>
      w.run(`MERGE INTO app.target t USING (${source}) s ON t.k = s.k WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT (k, v) VALUES (s.k, s.v)`, ['x']);
    await expect(merge(`SELECT 1 AS k, ? AS v UNION ALL SELECT 1, 'y'`)).rejects.toThrow(/Duplicate row detected during DML action/);
    expect(await merge(`SELECT 2 AS k, ? AS v UNION ALL SELECT 2, 'y'`)).toBe(2);
    expect(await merge(`SELECT 1 AS k, ? AS v`)).toBe(1);
  });

  it('runs async queries: submit, poll the status, fetch the result', async () => {
    const sdk = await loadDriver();
    const conn = sdk.createConnection(connectionOptions(emulatedConfig(emulator), tmpdir()));
    await new Promise<void>((ok, fail) => conn.connect((e) => (e ? fail(e) : ok())));
    const queryId = await new Promise<string>((ok, fail) =>
      conn.execute({ sqlText: 'SELECT count(*) AS n FROM app.wide', asyncExec: true, complete: (e, stmt) => (e ? fail(e) : ok(stmt.getQueryId())) }),
    );
    expect(await conn.getQueryStatus(queryId)).toBe('SUCCESS');
    const statement = await conn.getResultsFromQueryId({ queryId });
    const rows: unknown[] = [];
    for await (const row of statement.streamRows()) rows.push(row);
    expect(rows).toEqual([{ N: 25000 }]);
    await new Promise((ok) => conn.destroy(ok));
  });

  it('accepts request bodies gzipped or not, whatever the header says', async () => {
    const post = (body: Buffer, headers: Record<string, string>) =>
      new Promise<string>((ok, fail) => {
        const req = request(`${emulator.url}/session/v1/login-request?databaseName=DB`, { method: 'POST', headers }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => ok(text));
        });
        req.on('error', fail);
        req.end(body);
      });
    const login = Buffer.from(JSON.stringify({ data: { LOGIN_NAME: 'u', PASSWORD: 'p', ACCOUNT_NAME: 'emulated' } }));
    expect(JSON.parse(await post(gzipSync(login), { 'content-type': 'application/json' })).success).toBe(true);
    expect(JSON.parse(await post(login, { 'content-type': 'application/json', 'content-encoding': 'gzip' })).success).toBe(true);
  });

  it('connects with host, port and protocol instead of access_url', async () => {
    const other = await SnowflakeWarehouse.open(emulatedConfig(emulator, { access_url: undefined, host: '127.0.0.1', port: emulator.port, protocol: 'http' }), tmpdir());
    expect(await other.runAndRead('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    await other.close();
  });

  it('ends its session on close', async () => {
    const other = await openEmulated(emulator);
    const before = emulator.requests['session-delete'] ?? 0;
    await other.close();
    expect(emulator.requests['session-delete']).toBe(before + 1);
  });
});

describe('Snowflake adapter: authentication (emulated)', () => {
  let emulator: SnowflakeEmulator;
  let keyPath: string;
  let otherKeyPath: string;

  beforeAll(async () => {
    const pair = () => generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
    const user = pair();
    const stranger = pair();
    const dir = await mkdtemp(join(tmpdir(), 'ebb-sf-keys-'));
    keyPath = join(dir, 'rsa_key.p8');
    otherKeyPath = join(dir, 'other.p8');
    await writeFile(keyPath, user.privateKey);
    await writeFile(otherKeyPath, stranger.privateKey);
    emulator = await SnowflakeEmulator.start({ users: { ebb_user: { publicKey: user.publicKey }, pw_user: { password: 'right' } } });
  });
  afterAll(() => emulator?.stop());

  it('logs in with a key pair (private_key_path): a JWT signed by the user’s key', async () => {
    const w = await SnowflakeWarehouse.open(emulatedConfig(emulator, { password: undefined, private_key_path: keyPath }), tmpdir());
    expect(await w.runAndRead('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    await w.close();
  });

  it('refuses a key that is not the user’s, and a wrong password, with a message that says where it connected', async () => {
    await expect(SnowflakeWarehouse.open(emulatedConfig(emulator, { password: undefined, private_key_path: otherKeyPath }), tmpdir())).rejects.toThrow(
      /cannot connect to Snowflake \(http:\/\/127\.0\.0\.1:\d+\) as ebb_user: JWT token is invalid/,
    );
    await expect(SnowflakeWarehouse.open(emulatedConfig(emulator, { username: 'pw_user', password: 'wrong' }), tmpdir())).rejects.toThrow(/Incorrect username or password/);
    const w = await SnowflakeWarehouse.open(emulatedConfig(emulator, { username: 'pw_user', password: 'right' }), tmpdir());
    await w.close();
  });

  it('asks for a password or a key before connecting', () => {
    expect(() => connectionOptions(emulatedConfig(emulator, { password: undefined }), tmpdir())).toThrow(/needs `password` or `private_key_path`/);
  });
});
