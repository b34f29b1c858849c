/**
 * ebb under three Snowflake roles, proven from the emulator's statement log (emulated): the owner's
 * `ebb deploy` sets up ebb's tables and tasks (DDL); a runner's `run` and `worker` send no DDL; an
 * analyst's `status`, `runs` and `history` send neither DDL nor DML. Every session pins the
 * parameters ebb relies on, and every statement carries a QUERY_TAG; a lock that others hold is
 * waited out, and an error that is not transient fails at once, with Snowflake's code.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { SnowflakeEmulator, type LoggedStatement } from './emulator.ts';
import { DDL, DML } from './support.ts';
import { ebb, makeProject } from '../support/project.ts';

const sqlOf = (statements: LoggedStatement[]) => statements.map((s) => s.sql.trim().replace(/\s+/g, ' ').slice(0, 120));

describe('ebb on Snowflake under least-privilege roles (emulated)', () => {
  let emulator: SnowflakeEmulator;
  let dir: string;

  beforeAll(async () => {
    emulator = await SnowflakeEmulator.start();
    await emulator.sql('CREATE SCHEMA analytics');
    await emulator.sql('CREATE TABLE analytics.customers (customer_id INTEGER, email VARCHAR)');
    await emulator.sql(`INSERT INTO analytics.customers VALUES (1, 'ada@x.io'), (2, 'bob@x.io')`);
    emulator.resetCounts();
    dir = await makeProject(
      stringify({
        version: 1,
        name: 'acme',
        warehouse: { type: 'snowflake', account: 'emulated', username: 'ebb_user', password: 'secret', database: 'DB', warehouse: 'transforming', access_url: emulator.url },
        connections: { files: { plugin: 'file', config: { directory: './out' } } },
        syncs: [
          {
            name: 'customers',
            source: { table: 'analytics.customers', key: 'customer_id' },
            destination: { connection: 'files', object: 'customers.jsonl' },
            strategy: 'upsert',
            mapping: { email: 'email' },
            schedule: { every: '15m' },
          },
        ],
      }),
    );
  });
  afterAll(() => emulator?.stop());

  it("the owner's deploy sets up ebb's tables, views (keeping their grants) and tasks; a second deploy sends no DDL", async () => {
    const first = await ebb(dir, ['deploy']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const ddl = sqlOf(emulator.statements.filter((s) => DDL.test(s.sql)));
    expect(ddl).toEqual(expect.arrayContaining([expect.stringMatching(/^CREATE TABLE IF NOT EXISTS "EBB"."SYNCS"/), expect.stringMatching(/^CREATE OR REPLACE TASK/)]));
    expect(ddl.filter((s) => s.startsWith('CREATE OR REPLACE VIEW'))).toEqual([
      expect.stringMatching(/^CREATE OR REPLACE VIEW "EBB"."SYNC_HEALTH" COPY GRANTS AS/),
      expect.stringMatching(/^CREATE OR REPLACE VIEW "EBB"."FAILED_RECORDS" COPY GRANTS AS/),
    ]);

    emulator.resetCounts();
    const again = await ebb(dir, ['deploy']);
    expect(again.code).toBe(0);
    expect(sqlOf(emulator.statements.filter((s) => DDL.test(s.sql)))).toEqual([]);
  });

  it("a runner's run and worker send no DDL", async () => {
    emulator.resetCounts();
    const run = await ebb(dir, ['run', '--all', '--json']);
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout).runs).toMatchObject([{ sync: 'customers', status: 'HEALTHY', planned: { create: 2 } }]);
    await emulator.executeTask('EBB.EBB_CUSTOMERS');
    const worker = await ebb(dir, ['worker', '--once']);
    expect(worker.code).toBe(0);
    expect(emulator.statements.some((s) => /^\s*UPDATE "EBB"."RUN_REQUESTS"/.test(s.sql))).toBe(true);
    expect(sqlOf(emulator.statements.filter((s) => DDL.test(s.sql)))).toEqual([]);
  });

  it("an analyst's status, runs and history send neither DDL nor DML", async () => {
    emulator.resetCounts();
    for (const args of [['status'], ['runs', 'customers'], ['history', 'customers'], ['history', 'customers', '--failed']]) {
      const result = await ebb(dir, args);
      expect(result.stderr, args.join(' ')).toBe('');
      expect(result.code, args.join(' ')).toBe(0);
    }
    expect(emulator.statements.length).toBeGreaterThan(0);
    expect(sqlOf(emulator.statements.filter((s) => DDL.test(s.sql) || DML.test(s.sql)))).toEqual([]);

    // A schema that nobody deployed: they say so, and create nothing.
    emulator.resetCounts();
    const yml = (await readFile(join(dir, 'ebb.yml'), 'utf8')).replace('database: DB', 'database: DB\n  state_schema: not_deployed');
    const fresh = await makeProject(yml);
    const status = await ebb(fresh, ['status']);
    expect(status.code).toBe(1);
    expect(status.stderr).toContain("ebb's tables in schema not_deployed are not set up; run `ebb deploy` with the role that owns the schema first");
    expect(sqlOf(emulator.statements.filter((s) => DDL.test(s.sql) || DML.test(s.sql)))).toEqual([]);
  });

  it('pins the session parameters at connect, and tags every statement with the project, and a run’s with its sync and run', async () => {
    await emulator.sql(`UPDATE analytics.customers SET email = 'ada@y.io' WHERE customer_id = 1`);
    emulator.resetCounts();
    const run = await ebb(dir, ['run', 'customers', '--json']);
    const [{ run_id: runId }] = JSON.parse(run.stdout).runs as Array<{ run_id: string }>;
    const [first, ...rest] = emulator.statements;
    // One statement per session, first: no statement of ebb's runs under the user's own settings.
    expect(first.sql).toMatch(/^ALTER SESSION SET AUTOCOMMIT = TRUE TIMEZONE = 'UTC' /);
    for (const p of ['DATE_OUTPUT_FORMAT', 'TIMESTAMP_INPUT_FORMAT', 'TIMESTAMP_OUTPUT_FORMAT', 'TIMESTAMP_NTZ_OUTPUT_FORMAT']) expect(first.sql).toContain(`${p} = '`);
    expect(rest.filter((s) => /^ALTER SESSION/.test(s.sql))).toEqual([]);
    expect(emulator.statements.every((s) => s.queryTag?.startsWith('ebb:acme'))).toBe(true);
    const tagged = emulator.statements.filter((s) => s.queryTag === `ebb:acme:customers:${runId}`);
    expect(sqlOf(tagged)).toEqual(expect.arrayContaining([expect.stringMatching(/^INSERT INTO "EBB"."SYNC_CHANGES"/), expect.stringMatching(/^INSERT INTO "EBB"."SYNC_OUTCOMES"/)]));
  });

  it('waits out a lock that other workers hold (000625), and fails at once on an error that is not transient, keeping its code', async () => {
    await emulator.sql(`UPDATE analytics.customers SET email = 'bob@y.io' WHERE customer_id = 2`);
    emulator.resetCounts();
    const lock = {
      code: '000625',
      sqlState: '57014',
      message: "Statement '01b6c04c-0108' has locked table 'SYNC_OUTCOMES' in transaction 1725239781553000000 and this lock has not yet been released.\nYour statement '01b6c04c-0109' was aborted because the number of waiters for this lock exceeds the 20 statements limit.",
    };
    emulator.failNext(/^INSERT INTO "EBB"."SYNC_OUTCOMES"/, lock, 2);
    const run = await ebb(dir, ['run', 'customers', '--json']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).runs).toMatchObject([{ status: 'HEALTHY', planned: { update: 1 }, counts: { succeeded: 1 } }]);
    // The statement ran three times: twice refused, then applied.
    expect(emulator.statements.filter((s) => /^INSERT INTO "EBB"."SYNC_OUTCOMES"/.test(s.sql))).toHaveLength(3);

    emulator.resetCounts();
    emulator.failNext(/^INSERT INTO "EBB"."SYNC_CHANGES"/, { code: '003001', sqlState: '42501', message: "SQL access control error:\nInsufficient privileges to operate on table 'SYNC_CHANGES'" }, 1);
    await emulator.sql(`UPDATE analytics.customers SET email = 'bob@z.io' WHERE customer_id = 2`);
    const refused = await ebb(dir, ['run', 'customers', '--json']);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout).runs[0].error).toContain("003001 (42501): SQL access control error:\nInsufficient privileges to operate on table 'SYNC_CHANGES'");
    expect(emulator.statements.filter((s) => /^INSERT INTO "EBB"."SYNC_CHANGES"/.test(s.sql))).toHaveLength(1);
  });
});
