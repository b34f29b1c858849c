/**
 * The deploy lock (emulated, through the CLI): two `ebb deploy` at once leave one row per sync and
 * both exit 0; a deploy waits for a lock another deploy holds, takes over one whose deploy was
 * killed once it expires (at once when that deploy was a process of this machine), and is refused
 * (exit 1, nothing written) when it is held too long.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { SnowflakeEmulator } from './emulator.ts';
import './support.ts';
import { execFileSync } from 'node:child_process';
import { hostname } from 'node:os';
import { ebb, ebbProcess, makeProject } from '../support/project.ts';
import { lockHolder } from '../../engine/run-lock.ts';

const take = /^UPDATE "EBB"."DEPLOY_LOCK"\s+SET holder = \?/;
const upsert = /^MERGE INTO "EBB"."SYNCS"/;
/** A UTC timestamp `seconds` from now, as Snowflake SQL. */
const fromNow = (seconds: number) => `'${new Date(Date.now() + seconds * 1000).toISOString().replace('T', ' ').replace('Z', '')}'::TIMESTAMP_NTZ`;

describe('the deploy lock (emulated)', () => {
  let emulator: SnowflakeEmulator;
  const project = (syncs: string[]) =>
    makeProject(
      stringify({
        version: 1,
        name: 'acme',
        warehouse: { type: 'snowflake', account: 'emulated', username: 'u', password: 'p', database: 'DB', access_url: emulator.url },
        connections: { files: { plugin: 'file', config: { directory: './out' } } },
        syncs: syncs.map((name) => ({ name, source: { table: 'analytics.customers', key: 'customer_id' }, destination: { connection: 'files', object: `${name}.jsonl` }, strategy: 'upsert', mapping: { email: 'email' } })),
      }),
    );
  const rows = async () => (await emulator.sql('SELECT sync_name, count(*) AS n FROM ebb.syncs GROUP BY sync_name ORDER BY sync_name')).map((r) => `${String(r.SYNC_NAME ?? r.sync_name)} ${Number(r.N ?? r.n)}`);

  beforeAll(async () => {
    emulator = await SnowflakeEmulator.start();
    await emulator.sql('CREATE SCHEMA analytics');
    await emulator.sql('CREATE TABLE analytics.customers (customer_id INTEGER, email VARCHAR)');
  });
  afterAll(() => emulator?.stop());

  it('two deploys at once: both exit 0, and each sync is in the catalog once', async () => {
    // Set up ebb's tables first, so that both deploys race on the catalog itself.
    expect((await ebb(await project([]), ['deploy'])).code).toBe(0);
    const names = ['a', 'b', 'c', 'd', 'e', 'f'];
    const [one, two] = [await project(names), await project(names)];
    // Each request a little slower, as on a distant account, so that the two deploys overlap.
    emulator.latencyMs = 50;
    const results = await Promise.all([ebbProcess(one, ['deploy']), ebbProcess(two, ['deploy'])]);
    emulator.latencyMs = 0;
    expect(results.map((r) => [r.code, r.stderr])).toEqual([
      [0, ''],
      [0, ''],
    ]);
    expect(await rows()).toEqual(names.map((n) => `${n} 1`));
    expect((await emulator.sql('SELECT holder FROM ebb.deploy_lock')).map((r) => Object.values(r))).toEqual([[null]]);
  });

  it("waits for a lock that another deploy holds, and takes over a killed deploy's lock once it expires", async () => {
    await emulator.sql(`UPDATE ebb.deploy_lock SET holder = 'gone:1', expires_at = ${fromNow(3)}`);
    const dir = await project(['a', 'b', 'g']);
    emulator.resetCounts();
    const deploy = await ebb(dir, ['deploy']);
    expect(deploy.stderr).toBe('');
    expect(deploy.code).toBe(0);
    const log = emulator.statements.map((s) => s.sql.trim());
    // Refused while held: more than one attempt, all before the first catalog write.
    const firstWrite = log.findIndex((s) => upsert.test(s));
    expect(log.slice(0, firstWrite).filter((s) => take.test(s)).length).toBeGreaterThan(1);
    // The syncs that left the project are deleted from the catalog, as by any deploy.
    expect(await rows()).toEqual(['a 1', 'b 1', 'g 1']);
  });

  it('takes at once a lock held by a deploy of this machine whose process is gone', async () => {
    const gone = Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }));
    const holder = `${hostname()}:${gone}/${lockHolder.split('/')[1]}#killed`;
    expect((await ebb(await project([]), ['deploy'])).code).toBe(0);
    await emulator.sql(`UPDATE ebb.deploy_lock SET holder = '${holder}', expires_at = ${fromNow(3600)}`);
    const dir = await project(['a', 'g']);
    // It would wait for the lock until it expires, for an hour, and be refused after 60 s (EBB_LOCK_TTL_SECONDS).
    const deploy = await ebb(dir, ['deploy']);
    expect(deploy.code, deploy.stderr).toBe(0);
    expect(await rows()).toEqual(['a 1', 'g 1']);
    expect(await emulator.sql('SELECT holder FROM ebb.deploy_lock')).toEqual([{ HOLDER: null }]);
  });

  it('refuses a deploy when the lock stays held for longer than EBB_LOCK_TTL_SECONDS, writing nothing', async () => {
    await emulator.sql(`UPDATE ebb.deploy_lock SET holder = 'busy:1', expires_at = ${fromNow(3600)}`);
    const dir = await project(['a', 'h']);
    emulator.resetCounts();
    const deploy = await ebb(dir, ['deploy'], { EBB_LOCK_TTL_SECONDS: '2' });
    expect(deploy.code).toBe(1);
    expect(deploy.stderr).toContain('another deploy has held the deploy lock of schema ebb for 2s; nothing was deployed. Try again when it is done.');
    expect(emulator.statements.filter((s) => upsert.test(s.sql) || /^(INSERT|DELETE)/.test(s.sql.trim()))).toEqual([]);
    expect(await rows()).not.toContain('h 1');
  });
});
