/**
 * Failures and manual control, end to end through the CLI against a local CRM (SPEC §2-§5):
 * rejected records and their retry in the next run, technical and business retries within a
 * run, source failures, the empty-source guard, paused syncs, `ebb skip` and `ebb resync`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { duck, ebb, makeProject, runHere } from './support/project.ts';
import { CrmApp, crmRequests, failOncePerRecord, rejectEmails, type Rule } from './support/crm-app.ts';

const apps: CrmApp[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.stop()));
});

/** A contact of the source: [id, email, name]; the id is the key. */
type Contact = [number | null, string, string];

interface Setup {
  app: CrmApp;
  dir: string;
  db: string;
  /** Replaces the source table `contacts`. */
  load(rows: Contact[]): Promise<void>;
  /** `ebb run <args> --json`, expecting an exit code; returns the first run. */
  run(exit: number, ...args: string[]): Promise<RunJson>;
  /** The run's history rows as `key action reason state`. */
  history(runId: string): Promise<string[]>;
}

interface RunJson {
  run_id: string;
  health: string;
  counts: Record<string, number>;
  error: string | null;
}

/** A project with a sync `s` of `contacts` to the CRM, and a running CRM. */
async function setup(options: { strategy?: string; retry?: number[]; rules?: Rule[] } = {}): Promise<Setup> {
  const app = await CrmApp.start();
  apps.push(app);
  app.rules = options.rules ?? [];
  const dir = await makeProject({
    version: 1,
    name: 'failures',
    warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
    connections: {
      crm: { plugin: 'http', config: { base_url: app.url }, concurrency: 2, retry: { delays_seconds: options.retry ?? [] } },
    },
    syncs: [
      {
        name: 's',
        source: { table: 'contacts', key: 'id' },
        destination: { connection: 'crm', object: 'contacts', requests: crmRequests },
        strategy: options.strategy ?? 'upsert',
        mapping: { email: 'email', name: 'name' },
      },
    ],
  });
  const db = join(dir, 'warehouse.duckdb');
  return {
    app,
    dir,
    db,
    load: (rows) => loadContacts(db, rows),
    async run(exit, ...args) {
      // A plain run of `s` in this process, as `ebb run s --json` makes it; the real command for other arguments.
      if (args.length === 0) {
        const result = await runHere(dir, ['s']);
        expect(result.code, `${result.warnings.join('\n')}\n${result.json}`).toBe(exit);
        return (JSON.parse(result.json) as { runs: RunJson[] }).runs[0];
      }
      const result = await ebb(dir, ['run', ...args, '--json']);
      expect(result.code, result.stderr + result.stdout).toBe(exit);
      return (JSON.parse(result.stdout) as { runs: RunJson[] }).runs[0];
    },
    async history(runId) {
      const rows = await duck(db, `SELECT record_key, action, apply_reason, apply_state FROM ebb.sync_record_history WHERE run_id = '${runId}'`);
      return rows.map((r) => `${r.record_key} ${r.action} ${r.apply_reason} ${r.apply_state}`).sort();
    },
  };
}

async function loadContacts(db: string, rows: Contact[]) {
  const values = rows.map(([id, email, name]) => `(${id ?? 'NULL'}, '${email}', '${name}')`).join(', ');
  await duck(db, `CREATE OR REPLACE TABLE contacts (id INTEGER, email VARCHAR, name VARCHAR);\n${values ? `INSERT INTO contacts VALUES ${values}` : 'SELECT 1'}`);
}

const three: Contact[] = [
  [1, 'ann@x.io', 'Ann'],
  [2, 'bob@x.io', 'Bob'],
  [3, 'cat@x.io', 'Cat'],
];

describe('record failures', () => {
  it('a record the app rejects fails the run (INCOMPLETE, exit 2), then is retried alone as PREVIOUSLY_FAILED', async () => {
    const s = await setup({ rules: [rejectEmails(['bob@x.io'])] });
    await s.load(three);
    const first = await s.run(2);
    expect(first.health).toBe('INCOMPLETE');
    expect(first.counts).toMatchObject({ succeeded: 2, failed: 1 });
    expect(await s.history(first.run_id)).toEqual(['1 create NEW SUCCESS', '2 create NEW FAILED', '3 create NEW SUCCESS']);
    const [failed] = await duck(s.db, `SELECT apply_state, failure_count, last_result::VARCHAR AS result FROM ebb.sync_record_state WHERE record_key = '2'`);
    expect(failed).toMatchObject({ apply_state: 'FAILED', failure_count: 1 });
    expect(failed.result).toContain('422');
    const [run] = await duck(s.db, `SELECT status FROM ebb.sync_runs WHERE run_id = '${first.run_id}'`);
    expect(run.status).toBe('INCOMPLETE');

    s.app.rules = [];
    s.app.requests.length = 0;
    const second = await s.run(0);
    expect(await s.history(second.run_id)).toEqual(['2 create PREVIOUSLY_FAILED SUCCESS']);
    expect(s.app.requests.map((r) => `${r.method} ${r.path} ${String(r.body?.email)}`)).toEqual(['POST /contacts bob@x.io']);
    expect(Object.keys(s.app.byEmail()).sort()).toEqual(['ann@x.io', 'bob@x.io', 'cat@x.io']);

    const status = await ebb(s.dir, ['status', '--json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject([{ sync_name: 's', health: 'HEALTHY', failing_records: 0 }]);
    const [state] = await duck(s.db, `SELECT apply_state, failure_count, app_identifier FROM ebb.sync_record_state WHERE record_key = '2'`);
    expect(state).toEqual({ apply_state: 'SUCCESS', failure_count: 0, app_identifier: s.app.idOf('bob@x.io') });
  });

  it.each([
    { answer: 503, retry: [0.05, 0.05], exit: 0, health: 'HEALTHY', requestsPerRecord: 2 },
    { answer: 429, retry: [0.05], exit: 0, health: 'HEALTHY', requestsPerRecord: 2 },
    { answer: 503, retry: [], exit: 1, health: 'FAILED', requestsPerRecord: 1 },
  ])('a transient $answer with retry delays $retry: the run ends $health', async ({ answer, retry, exit, health, requestsPerRecord }) => {
    const s = await setup({ retry, rules: [failOncePerRecord(answer)] });
    await s.load(three);
    const result = await s.run(exit);
    expect(result.health).toBe(health);
    const state = health === 'HEALTHY' ? 'SUCCESS' : 'FAILED';
    expect(await s.history(result.run_id)).toEqual([1, 2, 3].map((k) => `${k} create NEW ${state}`));
    for (const [, email] of three) expect(s.app.sentEmails('POST').filter((e) => e === email)).toHaveLength(requestsPerRecord);
  });
});

describe('business retries (SPEC §3)', () => {
  it('an update answered 404 under upsert is retried as a create', async () => {
    const s = await setup();
    await s.load(three);
    await s.run(0);
    const [{ app_identifier: oldId }] = await duck(s.db, `SELECT app_identifier FROM ebb.sync_record_state WHERE record_key = '2'`);
    s.app.contacts.delete(String(oldId)); // someone deleted Bob in the CRM
    s.app.requests.length = 0;
    await s.load([three[0], [2, 'bob@x.io', 'Robert'], three[2]]);

    const run = await s.run(0);
    expect(await s.history(run.run_id)).toEqual(['2 create CHANGED SUCCESS']);
    expect(s.app.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`PATCH /contacts/${oldId}`, 'POST /contacts']);
    const [state] = await duck(s.db, `SELECT app_identifier FROM ebb.sync_record_state WHERE record_key = '2'`);
    expect(state.app_identifier).not.toBe(oldId);
    expect(s.app.contacts.get(String(state.app_identifier))).toEqual({ email: 'bob@x.io', name: 'Robert' });
  });

  it('a create answered 409 with the existing id is retried as an update of that id', async () => {
    const s = await setup();
    const existing = s.app.seed({ email: 'bob@x.io', name: 'Bobby', owner: 'sales' });
    await s.load(three);
    const run = await s.run(0);
    expect(await s.history(run.run_id)).toEqual(['1 create NEW SUCCESS', '2 update NEW SUCCESS', '3 create NEW SUCCESS']);
    expect(s.app.requests.filter((r) => r.body?.email === 'bob@x.io').map((r) => `${r.method} ${r.path}`)).toEqual(['POST /contacts', `PATCH /contacts/${existing}`]);
    expect(s.app.contacts.get(existing)).toEqual({ email: 'bob@x.io', name: 'Bob', owner: 'sales' });
    expect(s.app.contacts.size).toBe(3);
    const [state] = await duck(s.db, `SELECT app_identifier FROM ebb.sync_record_state WHERE record_key = '2'`);
    expect(state.app_identifier).toBe(existing);
  });
});

describe('source failures', () => {
  it('a null or duplicate key is recorded as SOURCE_FAILURE and never sent; once fixed, it is sent', async () => {
    const s = await setup();
    await s.load([three[0], [null, 'nokey@x.io', 'No key'], [7, 'twin1@x.io', 'Twin 1'], [7, 'twin2@x.io', 'Twin 2']]);
    const first = await s.run(2);
    expect(first.health).toBe('INCOMPLETE');
    expect(await s.history(first.run_id)).toEqual(['1 create NEW SUCCESS', '7 none NEW SOURCE_FAILURE', '7 none NEW SOURCE_FAILURE', 'null none NEW SOURCE_FAILURE']);
    const errors = await duck(s.db, `SELECT record_key, result->>'error' AS error FROM ebb.sync_record_history WHERE apply_state = 'SOURCE_FAILURE' ORDER BY 1`);
    expect(errors.map((e) => [e.record_key, String(e.error).split(':')[0]])).toEqual([
      ['7', 'duplicate key'],
      ['7', 'duplicate key'],
      [null, 'null key'],
    ]);
    expect(s.app.sentEmails()).toEqual(['ann@x.io']);

    await s.load([three[0], [7, 'twin1@x.io', 'Twin 1']]);
    const second = await s.run(0);
    expect(await s.history(second.run_id)).toEqual(['7 create PREVIOUSLY_FAILED SUCCESS']);
    expect(s.app.sentEmails()).toEqual(['ann@x.io', 'twin1@x.io']);
  });

  it('a mirror whose source became empty refuses to delete everything, unless --allow-empty-source', async () => {
    const s = await setup({ strategy: 'mirror' });
    await s.load(three);
    await s.run(0);
    await s.load([]);

    const refused = await ebb(s.dir, ['run', 's']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('--allow-empty-source');
    expect(s.app.contacts.size).toBe(3);
    expect(s.app.sentEmails('DELETE')).toEqual([]);
    expect(await duck(s.db, `SELECT count(*) AS n FROM ebb.sync_record_state`)).toEqual([{ n: 3 }]);

    const allowed = await s.run(0, 's', '--allow-empty-source');
    expect(await s.history(allowed.run_id)).toEqual([1, 2, 3].map((k) => `${k} delete REMOVED SUCCESS`));
    expect(s.app.contacts.size).toBe(0);
    expect(await duck(s.db, `SELECT count(*) AS n FROM ebb.sync_record_state`)).toEqual([{ n: 0 }]);
  });
});

describe('manual control', () => {
  it('a paused sync is refused by `ebb run`, skipped by `ebb run --all`, and runs again after `ebb resume`', async () => {
    const sync = (name: string) => ({
      name,
      source: { table: 'contacts', key: 'id' },
      destination: { connection: 'files', object: `${name}.jsonl` },
      strategy: 'upsert',
      mapping: { email: 'email' },
    });
    const dir = await makeProject({
      version: 1,
      name: 'paused',
      warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
      connections: { files: { plugin: 'file', config: { directory: 'out' } } },
      syncs: [sync('a'), sync('b')],
    });
    const db = join(dir, 'warehouse.duckdb');
    await loadContacts(db, three);
    const runsOf = async (name: string) => (await duck(db, `SELECT count(*) AS n FROM ebb.sync_runs WHERE sync_name = '${name}'`))[0].n;
    const output = (name: string) => readFile(join(dir, 'out', `${name}.jsonl`), 'utf8').catch(() => null);

    expect((await ebb(dir, ['deploy'])).code).toBe(0); // pause acts on the catalog
    expect((await ebb(dir, ['pause', 'a'])).code).toBe(0);
    expect(await duck(db, `SELECT sync_name, status FROM ebb.syncs ORDER BY 1`)).toEqual([
      { sync_name: 'a', status: 'PAUSED' },
      { sync_name: 'b', status: 'ACTIVE' },
    ]);
    const refused = await ebb(dir, ['run', 'a']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/\ba\b.*paused/);
    expect(refused.stderr).toContain('ebb resume a');
    // The status is read beside the statement that takes the run lock: a refused run holds no lock.
    expect(await duck(db, `SELECT lock_run_id, lock_holder FROM ebb.syncs WHERE sync_name = 'a'`)).toEqual([{ lock_run_id: null, lock_holder: null }]);

    const all = await ebb(dir, ['run', '--all', '--json']);
    expect(all.code, all.stderr).toBe(0);
    const report = JSON.parse(all.stdout) as { runs: Array<{ sync: string }>; skipped: Array<{ sync: string; reason: string }> };
    expect(report.runs.map((r) => r.sync)).toEqual(['b']);
    expect(report.skipped).toEqual([{ sync: 'a', reason: expect.stringContaining('paused'), reason_code: 'paused' }]);
    expect(await runsOf('a')).toBe(0);
    expect(await output('a')).toBeNull();
    expect(await runsOf('b')).toBe(1);

    expect((await ebb(dir, ['resume', 'a'])).code).toBe(0);
    expect((await ebb(dir, ['run', 'a'])).code).toBe(0);
    expect(await runsOf('a')).toBe(1);
    expect(await output('a')).toBe(three.map(([, email]) => `${JSON.stringify({ email })}\n`).join(''));
  });

  it('`ebb skip --always` keeps a record from being sent, even one not seen yet; `ebb resync` sends it again', async () => {
    const s = await setup();
    await s.load(three);
    await s.run(0);
    for (const key of ['2', '9']) expect((await ebb(s.dir, ['skip', 's', '--key', key, '--always'])).code).toBe(0);

    s.app.requests.length = 0;
    await s.load([three[0], [2, 'bob@x.io', 'Robert'], three[2], [9, 'nine@x.io', 'Nine']]);
    for (let i = 0; i < 2; i++) {
      const run = await s.run(0);
      expect(await s.history(run.run_id)).toEqual([]);
    }
    expect(s.app.requests).toEqual([]);
    const skipped = await duck(s.db, `SELECT record_key, apply_state FROM ebb.sync_record_state WHERE apply_state LIKE 'SKIPPED%' ORDER BY 1`);
    expect(skipped).toEqual([
      { record_key: '2', apply_state: 'SKIPPED_ALWAYS' },
      { record_key: '9', apply_state: 'SKIPPED_ALWAYS' },
    ]);

    expect((await ebb(s.dir, ['resync', 's', '--key', '2'])).code).toBe(0);
    const run = await s.run(0);
    expect(await s.history(run.run_id)).toEqual(['2 update RESYNC_REQUESTED SUCCESS']);
    expect(s.app.requests.map((r) => `${r.method} ${String(r.body?.name)}`)).toEqual(['PATCH Robert']);

    const trail = await ebb(s.dir, ['history', 's', '--key', '2', '--json']);
    expect(trail.code).toBe(0);
    const actions = (JSON.parse(trail.stdout) as Array<{ action: string; apply_state: string }>).map((h) => `${h.action} ${h.apply_state}`).reverse();
    expect(actions).toEqual(['create SUCCESS', 'skip SKIPPED_ALWAYS', 'resync RESYNC_REQUESTED', 'update SUCCESS']);
    const nine = await duck(s.db, `SELECT action FROM ebb.sync_record_history WHERE record_key = '9'`);
    expect(nine).toEqual([{ action: 'skip' }]);
  });
});
