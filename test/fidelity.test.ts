/**
 * What is recorded as sent is what was sent, end to end through a run (in this process, as
 * `ebb run` makes it) and `ebb history`: integers beyond 2^53, HUGEINT and wide DECIMAL values
 * reach the app digit for digit (no JS double on the way), and history holds the same text; a
 * NaN, an Infinity or a mapping expression that fails on one row makes that row a SOURCE_FAILURE
 * naming its field, and the other rows are sent.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { duck, ebb, makeProject, runHere } from './support/project.ts';
import { FaultServer } from './support/fault-server.ts';
import { SnowflakeEmulator } from './snowflake/emulator.ts';
import './snowflake/support.ts';
import { describeWithService } from './support/services.ts';

const servers: FaultServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

const BIG = '9007199254740993'; // 2^53 + 1: a double makes it ...992
const HUGE = '170141183460469231731687303715884105727'; // the largest HUGEINT
const UBIG = '18446744073709551615'; // the largest UBIGINT
const WIDE = '12345678901234567890.1234567890'; // DECIMAL(38,10)
const N38 = '9'.repeat(38); // the largest NUMBER(38,0) of Snowflake

/** Row 1 is sendable; 2 holds a NaN, 3 an Infinity, 4 a text that does not cast; 5 is sendable. */
const seed = `
create table nums (id integer, email varchar, big bigint, huge hugeint, ubig ubigint, amount decimal(38,10), score double, raw varchar);
insert into nums values
  (1, 'a@x.io', ${BIG}, ${HUGE}, ${UBIG}, ${WIDE}, 1.5, '7'),
  (2, 'b@x.io', -${BIG}, -${HUGE}, 0, -0.0000000001, 'nan', '8'),
  (3, 'c@x.io', 3, 3, 3, 3, '-inf', '9'),
  (4, 'd@x.io', 4, 4, 4, 4, 4, 'abc'),
  (5, 'e@x.io', 5, 5, 5, 5.5, 0.1, '10')`;

const mapping = { email: 'email', big: 'big', huge: 'huge', ubig: 'ubig', amount: 'amount', score: 'score', n: { sql: 'cast(raw as integer)' } };

async function project(connections: Record<string, unknown>, destination: Record<string, unknown>) {
  const dir = await makeProject({
    version: 1,
    name: 'fidelity',
    warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
    connections,
    syncs: [{ name: 'nums', source: { table: 'nums', key: 'id' }, destination, strategy: 'upsert', mapping }],
  });
  await duck(join(dir, 'warehouse.duckdb'), seed);
  return dir;
}

/** The outcome of each record of the run, by key, with the transformed record as stored (text). */
async function history(dir: string) {
  const rows = await duck(
    join(dir, 'warehouse.duckdb'),
    `select record_key, apply_state, result::varchar as result, transformed_record::varchar as record from ebb.sync_record_history order by record_key, recorded_at`,
  );
  return new Map(rows.map((r) => [String(r.record_key), { state: String(r.apply_state), result: r.result as string | null, record: r.record as string | null }]));
}

function expectSourceFailures(outcomes: Awaited<ReturnType<typeof history>>) {
  expect(outcomes.get('2')).toMatchObject({ state: 'SOURCE_FAILURE' });
  expect(outcomes.get('2')!.result).toContain('score is nan; JSON has no NaN or Infinity');
  expect(outcomes.get('3')).toMatchObject({ state: 'SOURCE_FAILURE' });
  expect(outcomes.get('3')!.result).toContain('score is -inf; JSON has no NaN or Infinity');
  expect(outcomes.get('4')).toMatchObject({ state: 'SOURCE_FAILURE' });
  expect(outcomes.get('4')!.result).toContain('n: its SQL expression failed on this row');
}

describe('exact numbers, NaN and failing expressions', () => {
  it('sends big integers, HUGEINT and DECIMAL(38,10) digit for digit over HTTP, as history records them', async () => {
    const app = await FaultServer.start();
    servers.push(app);
    // tojson for the payload, plain interpolation and arithmetic on a small number in one body.
    const body = '{"email": {{ record.email | tojson }}, "big": {{ record.big }}, "amount": {{ record.amount }}, "next": {{ record.n + 1 }}, "all": {{ record | tojson }}}';
    const dir = await project(
      { app: { plugin: 'http', config: { base_url: app.url } } },
      { connection: 'app', object: 'contacts', requests: { create: { method: 'POST', path: '/contacts', body, app_id: '{{ response.id }}' }, update: { method: 'PATCH', path: '/contacts/{{ app_id }}', body } } },
    );
    const run = await runHere(dir, ['nums']);
    expect(run.code, run.stderr).toBe(2); // incomplete: three source failures
    const out = JSON.parse(run.json) as { runs: Array<{ counts: Record<string, number>; error: string | null }> };
    expect(out.runs[0]).toMatchObject({ error: null, counts: { succeeded: 2, source_failures: 3 } });

    const outcomes = await history(dir);
    expectSourceFailures(outcomes);
    const sent = app.requests.filter((r) => r.method === 'POST').map((r) => r.text);
    expect(sent).toHaveLength(2);
    const first = sent.find((t) => t.includes('"a@x.io"'))!;
    const stored = outcomes.get('1')!;
    expect(stored.state).toBe('SUCCESS');
    expect(stored.record).toBe(`{"email":"a@x.io","big":${BIG},"huge":${HUGE},"ubig":${UBIG},"amount":${WIDE},"score":1.5,"n":7}`);
    expect(first).toBe(`{"email": "a@x.io", "big": ${BIG}, "amount": ${WIDE}, "next": 8, "all": ${stored.record}}`);
    // A number that a double holds exactly is sent in JS's spelling: the same value as history's.
    const fifth = sent.find((t) => t.includes('"e@x.io"'))!;
    expect(outcomes.get('5')!.record).toBe('{"email":"e@x.io","big":5,"huge":5,"ubig":5,"amount":5.5000000000,"score":0.1,"n":10}');
    expect(fifth).toBe('{"email": "e@x.io", "big": 5, "amount": 5.5, "next": 11, "all": {"email":"e@x.io","big":5,"huge":5,"ubig":5,"amount":5.5,"score":0.1,"n":10}}');

    // `ebb history` shows the digits that were sent.
    const shown = await ebb(dir, ['history', 'nums', '--key', '1', '--json']);
    expect(shown.stdout).toContain(`"big": ${BIG},\n`);
    expect(shown.stdout).toContain(`"amount": ${WIDE},\n`);

    // Fixed at the source, the failed rows go in the next run; the sent ones are not sent again.
    await duck(join(dir, 'warehouse.duckdb'), `update nums set score = 2, raw = '1' where id in (2, 3, 4)`);
    app.requests.length = 0;
    const again = await runHere(dir, ['nums']);
    expect(again.code, again.stderr).toBe(0);
    const resent = app.requests.map((r) => r.text);
    expect(resent).toHaveLength(3);
    const b = resent.find((t) => t.includes('"b@x.io"'))!;
    expect(b).toBe(`{"email": "b@x.io", "big": -${BIG}, "amount": -1e-10, "next": 2, "all": {"email":"b@x.io","big":-${BIG},"huge":-${HUGE},"ubig":0,"amount":-1e-10,"score":2,"n":1}}`);
    expect((await history(dir)).get('2')).toMatchObject({ state: 'SUCCESS', record: `{"email":"b@x.io","big":-${BIG},"huge":-${HUGE},"ubig":0,"amount":-0.0000000001,"score":2.0,"n":1}` });
  });

  it('puts each record into a batch body unparsed, as history holds it, when the body uses the records only as `records | tojson`', async () => {
    const app = await FaultServer.start();
    servers.push(app);
    const create = { method: 'POST', path: '/contacts/batch/create', batch: true, body: '{"inputs": {{ records | tojson }}}', results: 'results', app_id: '{{ result.id }}' };
    const update = { method: 'PATCH', path: '/contacts/{{ app_id }}', body: '{{ record | tojson }}' };
    const dir = await project({ app: { plugin: 'http', config: { base_url: app.url } } }, { connection: 'app', object: 'contacts', requests: { create, update } });
    const run = await runHere(dir, ['nums']);
    expect(run.code, run.stderr).toBe(2);
    const outcomes = await history(dir);
    expect([outcomes.get('1')!.state, outcomes.get('5')!.state]).toEqual(['SUCCESS', 'SUCCESS']);
    const sent = app.requests.filter((r) => r.method === 'POST').map((r) => r.text);
    expect(sent).toEqual([`{"inputs": [${outcomes.get('1')!.record},${outcomes.get('5')!.record}]}`]);
    expect(sent[0]).toContain(`"amount":${WIDE},`);
    expect(sent[0]).toContain('"amount":5.5000000000,');
  });

  it('writes the exact digits into a JSONL file, the same text as history', async () => {
    const dir = await project({ files: { plugin: 'file', config: { directory: './out' } } }, { connection: 'files', object: 'nums.jsonl' });
    const run = await runHere(dir, ['nums']);
    expect(run.code, run.stderr).toBe(2);
    const outcomes = await history(dir);
    expectSourceFailures(outcomes);
    const lines = (await readFile(join(dir, 'out', 'nums.jsonl'), 'utf8')).trimEnd().split('\n');
    // Each line is the record's text as the warehouse wrote it, as history holds it: never parsed and written again.
    expect(lines.sort()).toEqual([outcomes.get('1')!.record, '{"email":"e@x.io","big":5,"huge":5,"ubig":5,"amount":5.5000000000,"score":0.1,"n":10}']);
    expect(lines[1]).toBe(outcomes.get('5')!.record);
    expect(lines[0]).toContain(`"big":${BIG},"huge":${HUGE},"ubig":${UBIG},"amount":${WIDE},`);

    // A second run rewrites the file through the plugin's journal: the digits survive that too.
    await duck(join(dir, 'warehouse.duckdb'), `update nums set email = 'a2@x.io' where id = 1`);
    expect((await runHere(dir, ['nums'])).code).toBe(2);
    const rewritten = (await readFile(join(dir, 'out', 'nums.jsonl'), 'utf8')).trimEnd().split('\n');
    expect(rewritten.find((l) => l.includes('a2@x.io'))).toBe(`{"email":"a2@x.io","big":${BIG},"huge":${HUGE},"ubig":${UBIG},"amount":${WIDE},"score":1.5,"n":7}`);
  });

  it("keeps every digit of an app's identifier beyond 2^53, and updates the record under it", async () => {
    const seen: string[] = [];
    const app = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(`{"id": ${BIG}}`));
    });
    await new Promise<void>((ok) => app.listen(0, '127.0.0.1', ok));
    try {
      const requests = { create: { method: 'POST', path: '/items', body: '{{ record | tojson }}', app_id: '{{ response.id }}' }, update: { method: 'PATCH', path: '/items/{{ app_id }}', body: '{{ record | tojson }}' } };
      const dir = await makeProject({
        version: 1,
        name: 'ids',
        warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
        connections: { app: { plugin: 'http', config: { base_url: `http://127.0.0.1:${(app.address() as AddressInfo).port}` } } },
        syncs: [{ name: 'items', source: { table: 'items', key: 'id' }, destination: { connection: 'app', object: 'items', requests }, strategy: 'upsert', mapping: { name: 'name' } }],
      });
      await duck(join(dir, 'warehouse.duckdb'), `create table items as select 1 as id, 'a' as name`);
      expect((await runHere(dir, ['items'])).code).toBe(0);
      expect(await duck(join(dir, 'warehouse.duckdb'), `select app_identifier from ebb.sync_record_state`)).toEqual([{ app_identifier: BIG }]);
      await duck(join(dir, 'warehouse.duckdb'), `update items set name = 'b'`);
      expect((await runHere(dir, ['items'])).code).toBe(0);
      expect(seen).toEqual(['POST /items', `PATCH /items/${BIG}`]);
    } finally {
      await new Promise((ok) => app.close(ok));
    }
  });

  it('fails a record whose list holds a NaN alone, naming the field', async () => {
    const dir = await makeProject({
      version: 1,
      name: 'nested',
      warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
      connections: { files: { plugin: 'file', config: { directory: './out' } } },
      syncs: [{ name: 'lists', source: { table: 'lists', key: 'id' }, destination: { connection: 'files', object: 'lists.jsonl' }, strategy: 'upsert', mapping: { l: 'l', s: 's' } }],
    });
    await duck(join(dir, 'warehouse.duckdb'), `create table lists as select * from (values (1, [1.0, 'nan'::double], 'a,NaN]'), (2, [2.5], 'b')) v(id, l, s)`);
    const run = await runHere(dir, ['lists']);
    expect(run.code, run.stderr).toBe(2);
    expect(await readFile(join(dir, 'out', 'lists.jsonl'), 'utf8')).toBe('{"l":[2.5],"s":"b"}\n');
    const failed = await ebb(dir, ['history', 'lists', '--failed', '--json']);
    expect(JSON.parse(failed.stdout)).toMatchObject([{ record_key: '1', apply_state: 'SOURCE_FAILURE', result: { error: expect.stringMatching(/^l holds NaN or Infinity; JSON has no NaN or Infinity/) } }]);
  });

  it('names the field when a mapping expression that DuckDB cannot try fails, and plan shows the source failures', async () => {
    const dir = await project({ files: { plugin: 'file', config: { directory: './out' } } }, { connection: 'files', object: 'nums.jsonl' });
    const planned = await ebb(dir, ['plan', 'nums', '--json']);
    expect(planned.code, planned.stderr).toBe(0);
    const summary = JSON.parse(planned.stdout) as { actions: Record<string, number>; samples: Array<{ record_key: string; source_error: string | null }> };
    expect(summary.actions).toMatchObject({ create: 2, source_failure: 3 });
    expect(summary.samples.find((s) => s.record_key === '4')?.source_error).toContain('n: its SQL expression failed on this row');

    // A window function cannot go into try(): the statement fails, and the error names the field.
    const config = await readFile(join(dir, 'ebb.yml'), 'utf8');
    await writeFile(join(dir, 'ebb.yml'), config.replace('sql: cast(raw as integer)', 'sql: "cast(raw as integer) + 0 * row_number() over ()"'));
    const run = await runHere(dir, ['nums']);
    expect(run.code).toBe(1);
    const out = JSON.parse(run.json) as { runs: Array<{ status: string; error: string }> };
    expect(out.runs[0].status).toBe('FAILED');
    expect(out.runs[0].error).toMatch(/^syncs\[0\]\.mapping\.n: the SQL expression failed on a row of the source: .*Could not convert string 'abc'/);
  });
});

describe('exact numbers and NaN on Snowflake (emulated)', () => {
  it('keeps the digits of NUMBER(38,0) and NUMBER(38,10), fails the NaN row alone, and names a failing expression', async () => {
    const emulator = await SnowflakeEmulator.start({ users: { ebb_user: { password: 'p4ss' } } });
    try {
      await emulator.sql('CREATE TABLE nums (id INTEGER, big DECIMAL(38,0), amount DECIMAL(38,10), score DOUBLE, raw VARCHAR)');
      await emulator.sql(`INSERT INTO nums VALUES (1, ${N38}, ${WIDE}, 1.5, '7'), (2, ${BIG}, 1, 'NaN', '8'), (3, 3, 3, 3, 'abc')`);
      const config = (n: string) => ({
        version: 1,
        name: 'fidelity_sf',
        warehouse: { type: 'snowflake', account: 'emulated', username: 'ebb_user', password: 'p4ss', database: 'DB', access_url: emulator.url },
        connections: { files: { plugin: 'file', config: { directory: './out' } } },
        syncs: [{ name: 'nums', source: { table: 'nums', key: 'id' }, destination: { connection: 'files', object: 'nums.jsonl' }, strategy: 'upsert', mapping: { big: 'big', amount: 'amount', score: 'score', n: { sql: n } } }],
      });
      // Snowflake has no try(): a cast that fails on one row fails the run, which names the field.
      const dir = await makeProject(config('cast(raw as integer)'));
      const failed = await runHere(dir, ['nums']);
      expect(failed.code).toBe(1);
      expect((JSON.parse(failed.json) as { runs: Array<{ error: string }> }).runs[0].error).toMatch(/^syncs\[0\]\.mapping\.n: the SQL expression failed on a row of the source: .*'abc'/);

      // With TRY_CAST, as the README says to write it there, the other rows go.
      await writeFile(join(dir, 'ebb.yml'), JSON.stringify(config('try_cast(raw as integer)')));
      const run = await runHere(dir, ['nums']);
      expect(run.code, run.stderr).toBe(2);
      const lines = (await readFile(join(dir, 'out', 'nums.jsonl'), 'utf8')).trimEnd().split('\n');
      expect(lines.sort()).toEqual(['{"big":3,"amount":3.0000000000,"score":3.0,"n":null}', `{"big":${N38},"amount":${WIDE},"score":1.5,"n":7}`]);
      const state = await emulator.sql(`SELECT record_key, apply_state, last_result, transformed_record FROM ebb.sync_record_state ORDER BY record_key`);
      // Each line is the record's text as the warehouse wrote it, as history holds it.
      expect(lines).toEqual(state.filter((r) => r.APPLY_STATE === 'SUCCESS').map((r) => String(r.TRANSFORMED_RECORD)).sort());
      expect(state.map((r) => r.APPLY_STATE)).toEqual(['SUCCESS', 'SOURCE_FAILURE', 'SUCCESS']);
      expect(String(state[1].LAST_RESULT)).toContain('score is NaN; JSON has no NaN or Infinity');
    } finally {
      await emulator.stop();
    }
  });
});

const PG_URL = process.env.EBB_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';
const pgProblem = await (async () => {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return null;
  } catch (e) {
    return `no PostgreSQL at ${PG_URL}: ${(e as Error).message}`;
  } finally {
    await client.end().catch(() => undefined);
  }
})();

describeWithService('exact numbers into PostgreSQL', pgProblem, 'test/fidelity.test.ts', () => {
  it('writes BIGINT, HUGEINT and DECIMAL(38,10) values into bigint and numeric columns digit for digit', async () => {
    const schema = `ebb_fidelity_${randomBytes(4).toString('hex')}`;
    const db = new pg.Client({ connectionString: PG_URL });
    await db.connect();
    try {
      await db.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.nums (email text PRIMARY KEY, big bigint, huge numeric, ubig numeric(20,0), amount numeric(38,10), score double precision, n integer)`);
      const dir = await project({ pg: { plugin: 'postgres', config: { connection_string: PG_URL, schema } } }, { connection: 'pg', object: 'nums' });
      const run = await runHere(dir, ['nums']);
      expect(run.code, run.stderr).toBe(2);
      expectSourceFailures(await history(dir));
      const { rows } = await db.query<Record<string, string>>(`SELECT email, big::text, huge::text, ubig::text, amount::text, score::text, n::text FROM ${schema}.nums ORDER BY email`);
      expect(rows).toEqual([
        { email: 'a@x.io', big: BIG, huge: HUGE, ubig: UBIG, amount: WIDE, score: '1.5', n: '7' },
        { email: 'e@x.io', big: '5', huge: '5', ubig: '5', amount: '5.5000000000', score: '0.1', n: '10' },
      ]);
    } finally {
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await db.end();
    }
  });
});
