/**
 * `ebb` from the command line against a Snowflake endpoint (the wire emulator, at a URL): a sync
 * from a table in the emulator to the file plugin, run twice; the second run sends only the
 * change. Emulated.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { SnowflakeEmulator } from './emulator.ts';
import './support.ts';
import { ebb, makeProject } from '../support/project.ts';

const readJsonl = async (path: string) =>
  (await readFile(path, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('ebb CLI on Snowflake (emulated)', () => {
  let emulator: SnowflakeEmulator;
  let dir: string;

  beforeAll(async () => {
    emulator = await SnowflakeEmulator.start({ users: { ebb_user: { password: 'p4ss' } } });
    await emulator.sql('CREATE SCHEMA analytics');
    await emulator.sql('CREATE TABLE analytics.customers (customer_id INTEGER, email VARCHAR, plan VARCHAR, lifecycle_stage VARCHAR)');
    await emulator.sql(`INSERT INTO analytics.customers VALUES (1, 'ada@x.io', 'pro', 'customer'), (2, 'bob@x.io', 'free', 'customer'), (3, 'cy@x.io', 'pro', 'lead')`);
    dir = await makeProject(
      stringify({
        version: 1,
        name: 'sf_demo',
        warehouse: { type: 'snowflake', account: 'emulated', username: 'ebb_user', password: "{{ env_var('SF_PASSWORD') }}", database: 'DB', access_url: emulator.url },
        connections: { files: { plugin: 'file', config: { directory: './out' } } },
        syncs: [
          {
            name: 'customers_to_file',
            source: { table: 'analytics.customers', key: 'customer_id', filter: "lifecycle_stage = 'customer'" },
            destination: { connection: 'files', object: 'customers.jsonl' },
            strategy: 'mirror',
            mapping: { email: 'email', plan: 'plan', source: { value: 'snowflake' } },
          },
        ],
      }),
    );
  });
  afterAll(() => emulator?.stop());

  const env = { SF_PASSWORD: 'p4ss' };
  /** A project of one sync from the emulator to the file plugin, the password in ebb.yml; `warehouse` adds to its warehouse block. */
  const fileProject = (name: string, sync: object, warehouse: object = {}) =>
    makeProject(
      stringify({
        name,
        warehouse: { type: 'snowflake', account: 'emulated', username: 'ebb_user', password: 'p4ss', database: 'DB', access_url: emulator.url, ...warehouse },
        connections: { files: { plugin: 'file', config: { directory: './out' } } },
        syncs: [sync],
      }),
    );

  it('runs a sync from Snowflake to a file, then sends only what changed', async () => {
    const first = await ebb(dir, ['run', '--all', '--json'], env);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout).runs).toMatchObject([{ sync: 'customers_to_file', status: 'HEALTHY', planned: { create: 2 }, counts: { succeeded: 2, failed: 0 } }]);
    expect(await readJsonl(join(dir, 'out', 'customers.jsonl'))).toEqual([
      { email: 'ada@x.io', plan: 'pro', source: 'snowflake' },
      { email: 'bob@x.io', plan: 'free', source: 'snowflake' },
    ]);
    // ebb's tables are in the state schema EBB of the database, upper-cased as Snowflake names them.
    expect(await emulator.sql(`SELECT record_key, apply_state, last_action FROM ebb.sync_record_state ORDER BY record_key`)).toEqual([
      { RECORD_KEY: '1', APPLY_STATE: 'SUCCESS', LAST_ACTION: 'create' },
      { RECORD_KEY: '2', APPLY_STATE: 'SUCCESS', LAST_ACTION: 'create' },
    ]);

    await emulator.sql(`UPDATE analytics.customers SET plan = 'enterprise' WHERE customer_id = 2`);
    emulator.resetCounts();
    const second = await ebb(dir, ['run', 'customers_to_file', '--json'], env);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout).runs).toMatchObject([{ status: 'HEALTHY', planned: { update: 1 }, counts: { succeeded: 1 } }]);
    expect(await readJsonl(join(dir, 'out', 'customers.jsonl'))).toEqual([
      { email: 'ada@x.io', plan: 'pro', source: 'snowflake' },
      { email: 'bob@x.io', plan: 'enterprise', source: 'snowflake' },
    ]);
    // One session for the whole command, and the outcomes written in one statement, not one per record.
    expect(emulator.requests.login).toBe(1);
    expect(emulator.statements.filter((s) => s.sql.startsWith('INSERT INTO "EBB"."SYNC_OUTCOMES"'))).toHaveLength(1);

    const third = await ebb(dir, ['run', '--all', '--json'], env);
    expect(JSON.parse(third.stdout).runs).toMatchObject([{ status: 'HEALTHY', planned: {} }]);
  });

  it('shows status, runs and history from the Snowflake tables', async () => {
    emulator.resetCounts();
    const status = await ebb(dir, ['status'], env);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('customers_to_file');
    const history = await ebb(dir, ['history', 'customers_to_file', '--json'], env);
    expect(history.code).toBe(0);
    const rows = JSON.parse(history.stdout) as Array<{ record_key: string; action: string }>;
    expect(rows.map((r) => `${r.record_key}:${r.action}`).sort()).toEqual(['1:create', '2:create', '2:update']);
    const failed = await ebb(dir, ['history', 'customers_to_file', '--failed', '--json'], env);
    expect(failed.code).toBe(0);
    expect(JSON.parse(failed.stdout)).toEqual([]);
    // They only read: no setup DDL, no write, once ebb's tables are there.
    expect(emulator.statements.length).toBeGreaterThan(0);
    expect(emulator.statements.map((st) => st.sql).filter((sql) => !/^\s*(SELECT|WITH|SHOW|DESCRIBE|ALTER SESSION|USE)\b/i.test(sql))).toEqual([]);
  });

  it('counts the source for the empty-source guard only when the change set holds none of its rows', async () => {
    await emulator.sql('CREATE TABLE analytics.members (id INTEGER, email VARCHAR)');
    await emulator.sql(`INSERT INTO analytics.members VALUES (1, 'ann@x.io'), (2, 'ben@x.io'), (3, 'cat@x.io')`);
    const members = await fileProject('sf_members', { name: 'm', source: { table: 'analytics.members', key: 'id' }, destination: { connection: 'files', object: 'm.jsonl' }, strategy: 'mirror', mapping: { email: 'email' } });
    const run = async () => {
      emulator.resetCounts();
      const result = await ebb(members, ['run', 'm', '--json']);
      expect(result.code, result.stderr).toBe(0);
      const counts = emulator.statements.filter((s) => s.sql.startsWith('SELECT count(*) AS n FROM "ANALYTICS"."MEMBERS"'));
      return { planned: (JSON.parse(result.stdout) as { runs: Array<{ planned: unknown }> }).runs[0].planned, counts: counts.length };
    };
    expect(await run()).toEqual({ planned: { create: 3 }, counts: 0 });
    // A removal beside an update: the updated row shows that the source is not empty.
    await emulator.sql(`UPDATE analytics.members SET email = 'ann2@x.io' WHERE id = 1`);
    await emulator.sql('DELETE FROM analytics.members WHERE id = 3');
    expect(await run()).toEqual({ planned: { update: 1, delete: 1 }, counts: 0 });
    // A removal alone: the source is counted, once, and found not empty.
    await emulator.sql('DELETE FROM analytics.members WHERE id = 2');
    expect(await run()).toEqual({ planned: { delete: 1 }, counts: 1 });
    expect(await readJsonl(join(members, 'out', 'm.jsonl'))).toEqual([{ email: 'ann2@x.io' }]);
  });

  it('sends the statements that do not wait for each other side by side: a first run, one with nothing to send, one with a record gone and one new', async () => {
    await emulator.sql('CREATE TABLE analytics.leads (id INTEGER, email VARCHAR)');
    await emulator.sql(`INSERT INTO analytics.leads VALUES (1, 'ann@x.io'), (2, 'ben@x.io')`);
    // A state schema of its own: the first run sets it up, whatever ran before.
    const leads = await fileProject('sf_leads', { name: 'l', source: { table: 'analytics.leads', key: 'id' }, destination: { connection: 'files', object: 'l.jsonl' }, strategy: 'mirror', mapping: { email: 'email' } }, { state_schema: 'ebb_leads' });
    // Every request waits long enough that statements sent together are all in flight at once.
    emulator.latencyMs = 250;
    try {
      const run = async () => {
        emulator.resetCounts();
        const result = await ebb(leads, ['run', 'l']);
        expect(result.code, result.stderr).toBe(0);
        return { statements: emulator.requests.query, waves: emulator.queryWaves };
      };
      // The first run in a new state schema sets up ebb's tables and deploys.
      expect(await run()).toEqual({ statements: 62, waves: 30 });
      expect(await run()).toEqual({ statements: 18, waves: 9 });
      // A record left the source and another came: the record of the removed one is read beside the plan's checks.
      await emulator.sql(`INSERT INTO analytics.leads VALUES (3, 'cy@x.io')`);
      await emulator.sql('DELETE FROM analytics.leads WHERE id = 1');
      expect(await run()).toEqual({ statements: 34, waves: 18 });
    } finally {
      emulator.latencyMs = 0;
    }
  });

  it('validates sources against Snowflake, naming columns as ebb.yml does', async () => {
    expect((await ebb(dir, ['validate'], env)).code).toBe(0);
    const typo = await fileProject('sf_typo', { name: 's', source: { table: 'analytics.customers', key: 'customer_id' }, destination: { connection: 'files', object: 's.jsonl' }, strategy: 'upsert', mapping: { email: 'emial' } });
    const result = await ebb(typo, ['validate']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('syncs[0].mapping.email: unknown column "emial"; did you mean "email"?');
  });

  it('says clearly when it cannot connect', async () => {
    const password = 'not-the-password';
    const wrong = await ebb(dir, ['run', '--all'], { SF_PASSWORD: password });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/cannot connect to Snowflake \(http:\/\/127\.0\.0\.1:\d+\) as ebb_user: Incorrect username or password/);
    expect(wrong.stderr).not.toContain(password);
  });
});
