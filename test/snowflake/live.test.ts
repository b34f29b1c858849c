/**
 * ebb against a real Snowflake account: the warehouse conformance suite, and ebb as a warehouse
 * admin runs it, through the CLI. It runs only when the account and its secrets are in the
 * environment, and is skipped with the reason printed otherwise:
 *   SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY_PATH
 *   (SNOWFLAKE_PRIVATE_KEY_PASSPHRASE for an encrypted key), SNOWFLAKE_DATABASE, and optionally
 *   SNOWFLAKE_WAREHOUSE, SNOWFLAKE_ROLE (the owner's), SNOWFLAKE_RUNNER_ROLE and
 *   SNOWFLAKE_ANALYST_ROLE (granted as README "Three roles" says; their cases skip without them).
 * SNOWFLAKE_ACCESS_URL points the suite at another endpoint (the wire emulator, to try the suite).
 * It creates schemas EBB_LIVE_<random> (ebb's state) and EBB_LIVE_<random>_SRC, and drops them.
 */
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SnowflakeConfig } from '../../engine/config/schema.ts';
import { SESSION_PARAMETERS, SnowflakeWarehouse } from '../../engine/warehouse/snowflake.ts';
import { DDL } from './support.ts';
import { ebb, makeProject } from '../support/project.ts';
import { describeWarehouse } from '../warehouse-conformance.ts';

const env = process.env;
const missing = [
  !env.SNOWFLAKE_ACCOUNT && 'SNOWFLAKE_ACCOUNT',
  !env.SNOWFLAKE_USER && 'SNOWFLAKE_USER',
  !env.SNOWFLAKE_PASSWORD && !env.SNOWFLAKE_PRIVATE_KEY_PATH && 'SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY_PATH',
  !env.SNOWFLAKE_DATABASE && 'SNOWFLAKE_DATABASE',
].filter((m): m is string => Boolean(m));

/** The account, as the environment names it; secrets stay in the environment (env_var() in ebb.yml). */
function account(extra: Partial<SnowflakeConfig> = {}): SnowflakeConfig {
  return {
    type: 'snowflake',
    account: env.SNOWFLAKE_ACCOUNT!,
    username: env.SNOWFLAKE_USER!,
    password: env.SNOWFLAKE_PASSWORD,
    private_key_path: env.SNOWFLAKE_PRIVATE_KEY_PATH,
    private_key_passphrase: env.SNOWFLAKE_PRIVATE_KEY_PASSPHRASE,
    database: env.SNOWFLAKE_DATABASE!,
    warehouse: env.SNOWFLAKE_WAREHOUSE,
    role: env.SNOWFLAKE_ROLE,
    access_url: env.SNOWFLAKE_ACCESS_URL,
    state_schema: 'ebb',
    ...extra,
  };
}

if (missing.length > 0) {
  const reason = `live Snowflake suite skipped: set ${missing.join(', ')} to run it against a real account`;
  process.stderr.write(`${reason}\n`);
  describe('live Snowflake', () => {
    it.skip(reason, () => undefined);
  });
} else {
  describeWarehouse('live Snowflake', async () => ({ warehouse: await SnowflakeWarehouse.open(account(), tmpdir()) }));
  describeAdmin();
}

function describeAdmin() {
  const suffix = randomBytes(4).toString('hex').toUpperCase();
  const project = `live_${suffix.toLowerCase()}`;
  const state = `EBB_LIVE_${suffix}`;
  const src = `${state}_SRC`;
  const secrets = (role?: string) => ({
    ...account({ state_schema: state, role: role ?? env.SNOWFLAKE_ROLE }),
    password: env.SNOWFLAKE_PASSWORD && "{{ env_var('SNOWFLAKE_PASSWORD') }}",
    private_key_passphrase: env.SNOWFLAKE_PRIVATE_KEY_PASSPHRASE && "{{ env_var('SNOWFLAKE_PRIVATE_KEY_PASSPHRASE') }}",
  });
  const config = (role?: string) => ({
    version: 1,
    name: project,
    warehouse: secrets(role),
    connections: { files: { plugin: 'file', config: { directory: './out' } } },
    syncs: [
      { name: 'events', source: { table: `${src}.events`, key: ['day', 'seen_at'] }, destination: { connection: 'files', object: 'events.jsonl' }, strategy: 'upsert', mapping: { score: 'score', email: 'email' } },
      { name: 'on_view', source: { table: `${src}.active_events`, key: 'seen_at' }, destination: { connection: 'files', object: 'view.jsonl' }, strategy: 'upsert', mapping: { email: 'email' }, schedule: 'live' },
    ],
  });
  let sf: SnowflakeWarehouse;
  let dir: string;

  /** ebb's statements since `since` (the project's QUERY_TAG), once query history shows at least one. */
  async function history(since: Date): Promise<Array<{ text: string; tag: string }>> {
    for (let attempt = 0; ; attempt++) {
      const rows = await sf.runAndRead(
        `SELECT query_text AS "text", query_tag AS "tag" FROM TABLE(INFORMATION_SCHEMA.QUERY_HISTORY(END_TIME_RANGE_START => ?::TIMESTAMP_LTZ, RESULT_LIMIT => 10000)) WHERE query_tag LIKE ? ORDER BY start_time`,
        [since.toISOString(), `ebb:${project}%`],
      );
      if (rows.length > 0 || attempt >= 30) return rows.map((r) => ({ text: String(r.text), tag: String(r.tag) }));
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }

  beforeAll(async () => {
    sf = await SnowflakeWarehouse.open(account(), tmpdir());
    for (const statement of [
      `CREATE SCHEMA ${src}`,
      `CREATE TABLE ${src}.events (day DATE, seen_at TIMESTAMP_NTZ, email VARCHAR, score DOUBLE)`,
      `INSERT INTO ${src}.events VALUES ('2026-03-01', '2026-03-01 10:20:30.250', 'ada@x.io', 1.5), ('2026-03-02', '2026-03-02 00:00:00', 'bob@x.io', 2)`,
      `CREATE VIEW ${src}.active_events AS SELECT * FROM ${src}.events`,
    ])
      await sf.run(statement);
    dir = await makeProject(config());
    const deploy = await ebb(dir, ['deploy']);
    expect(deploy.stderr).toBe('');
    expect(deploy.code).toBe(0);
  }, 300_000);
  afterAll(async () => {
    if (!sf) return;
    await sf.run(`DROP SCHEMA IF EXISTS ${state} CASCADE`);
    await sf.run(`DROP SCHEMA IF EXISTS ${src} CASCADE`);
    await sf.close();
  });

  describe(`ebb as a warehouse admin runs it: live Snowflake (project ${project})`, { timeout: 300_000 }, () => {
    it('1. no DDL outside deploy: a second deploy and a run send none', async () => {
      const since = new Date();
      expect((await ebb(dir, ['deploy'])).code).toBe(0);
      const run = await ebb(dir, ['run', 'events', '--json']);
      expect(run.stderr).toBe('');
      expect(JSON.parse(run.stdout).runs).toMatchObject([{ sync: 'events', status: 'HEALTHY' }]);
      const sent = await history(since);
      expect(sent.some((s) => s.tag.startsWith(`ebb:${project}:events:`))).toBe(true);
      expect(sent.filter((s) => DDL.test(s.text)).map((s) => s.text)).toEqual([]);
    });

    it.skipIf(!env.SNOWFLAKE_RUNNER_ROLE)(`2. roles: the runner role runs (set SNOWFLAKE_RUNNER_ROLE to run this)`, async () => {
      const runner = await makeProject(config(env.SNOWFLAKE_RUNNER_ROLE));
      const run = await ebb(runner, ['run', '--all', '--json']);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
    });

    it.skipIf(!env.SNOWFLAKE_ANALYST_ROLE)(`2. roles: the analyst role reads status, runs and history (set SNOWFLAKE_ANALYST_ROLE to run this)`, async () => {
      const analyst = await makeProject(config(env.SNOWFLAKE_ANALYST_ROLE));
      for (const args of [['status'], ['runs', 'events'], ['history', 'events']]) {
        const result = await ebb(analyst, args);
        expect(result.stderr, args.join(' ')).toBe('');
        expect(result.code, args.join(' ')).toBe(0);
      }
    });

    it('3. stable hash: the state of an older ebb (hash of the JSON object, schema version 1) plans nothing after the upgrade', async () => {
      expect((await ebb(dir, ['run', 'events'])).code).toBe(0);
      await sf.run(`UPDATE ${state}.sync_record_state SET record_hash = MD5(TO_JSON(transformed_record))`);
      await sf.run(`ALTER TABLE ${state}.sync_record_state DROP COLUMN hash_version`);
      await sf.run(`DELETE FROM ${state}.schema_version`);
      await sf.run(`INSERT INTO ${state}.schema_version (version) VALUES (1)`);
      const upgrade = await ebb(dir, ['run', 'events', '--json']);
      expect(upgrade.stderr).toBe('');
      expect(JSON.parse(upgrade.stdout).runs).toMatchObject([{ sync: 'events', status: 'HEALTHY', planned: {} }]);
    });

    it("4. key text: date and timestamp keys are written in ebb's explicit formats, whatever the account's", async () => {
      const rows = await sf.runAndRead(`SELECT record_key AS "key" FROM ${state}.sync_record_state WHERE sync_name = 'events' ORDER BY record_key`);
      expect(rows.map((r) => r.key)).toEqual(['["2026-03-01","2026-03-01 10:20:30.250"]', '["2026-03-02","2026-03-02 00:00:00.000"]']);
    });

    it("5. session settings pinned: SHOW PARAMETERS IN SESSION on ebb's connection has ebb's values", async () => {
      const rows = await sf.runAndRead('SHOW PARAMETERS IN SESSION');
      const value = new Map(rows.map((r) => [String(r.key), String(r.value)]));
      for (const [name, pinned] of SESSION_PARAMETERS) expect(value.get(name), name).toBe(pinned.replace(/^'|'$/g, '').replace('TRUE', 'true'));
    });

    it('6. an error keeps its code: a statement on a missing table fails with its code and SQL state', async () => {
      await expect(sf.runAndRead(`SELECT * FROM ${src}.no_such_table`)).rejects.toThrow(/002003 \(42S02\)/);
    });

    it('7. a live sync on a view: deploy created its stream ON VIEW', async () => {
      const streams = await sf.runAndRead(`SHOW STREAMS IN SCHEMA ${state}`);
      expect(streams.map((s) => [s.name, s.source_type])).toEqual([['EBB_ON_VIEW_STREAM', 'View']]);
    });
  });
}
