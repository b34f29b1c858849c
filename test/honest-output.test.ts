/**
 * Honest counts and honest output against a local CRM (runs in process, the other commands through
 * the CLI): an untracked record is not a success, a run whose records all failed is FAILED,
 * `skipped` counts what `ebb skip` held back, and the result line (on a terminal too) and
 * `ebb status` name the most common error. And the executable exits with its command's code.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { duck, ebb, ebbProcess, makeProject, repoRoot, runHere } from './support/project.ts';
import { CrmApp, crmRequests, rejectEmails, type Rule } from './support/crm-app.ts';

const apps: CrmApp[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.stop()));
});

type Contact = [number, string, string];

interface RunJson {
  run_id: string;
  health: string;
  counts: Record<string, number>;
  error: string | null;
  top_error: { error: string; records: number; failures: number } | null;
}

/** A sync `s` of `contacts` to the CRM, upsert with on_remove none (or mirror), no technical retries. */
async function setup(strategy = 'upsert') {
  const app = await CrmApp.start();
  apps.push(app);
  const dir = await makeProject({
    version: 1,
    name: 'honest',
    warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
    connections: { crm: { plugin: 'http', config: { base_url: app.url }, retry: { delays_seconds: [] } } },
    syncs: [{ name: 's', source: { table: 'contacts', key: 'id' }, destination: { connection: 'crm', object: 'contacts', requests: crmRequests }, strategy, mapping: { email: 'email', name: 'name' } }],
  });
  const db = join(dir, 'warehouse.duckdb');
  return {
    app,
    dir,
    db,
    async load(rows: Contact[]) {
      const values = rows.map(([id, e, n]) => `(${id}, '${e}', '${n}')`).join(', ');
      await duck(db, `CREATE OR REPLACE TABLE contacts (id INTEGER, email VARCHAR, name VARCHAR);\n${values ? `INSERT INTO contacts VALUES ${values}` : 'SELECT 1'}`);
    },
    /** A run of `s` as `ebb run s --json` makes it, in this process. */
    async run(exit: number): Promise<RunJson> {
      const result = await runHere(dir, ['s']);
      expect(result.code, result.stderr + result.json).toBe(exit);
      return (JSON.parse(result.json) as { runs: RunJson[] }).runs[0];
    },
  };
}

/** Every create is answered 500 with the same message: one error that a run names once. */
const createsDown: Rule = (r) => (r.method === 'POST' ? { status: 500, body: { error: 'database unavailable' } } : undefined);

describe('honest counts', () => {
  it('an untracked record is not a success: a run whose records sent all failed is FAILED (exit 1), untracks counted apart', async () => {
    const s = await setup();
    await s.load([
      [1, 'ann@x.io', 'Ann'],
      [2, 'bob@x.io', 'Bob'],
      [3, 'cat@x.io', 'Cat'],
    ]);
    await s.run(0);

    // Ann leaves the source (on_remove none: untrack), and both new contacts are refused.
    await s.load([
      [2, 'bob@x.io', 'Bob'],
      [3, 'cat@x.io', 'Cat'],
      [4, 'dan@x.io', 'Dan'],
      [5, 'eve@x.io', 'Eve'],
    ]);
    s.app.rules = [createsDown];
    const run = await s.run(1);
    expect(run.health).toBe('FAILED');
    expect(run.counts).toMatchObject({ succeeded: 0, failed: 2, untracked: 1 });
    expect(run.top_error).toEqual({ error: expect.stringMatching(/^POST \/contacts answered 500/), records: 2, failures: 2 });
    const [row] = await duck(s.db, `SELECT status, succeeded, failed FROM ebb.sync_runs WHERE run_id = '${run.run_id}'`);
    expect(row).toEqual({ status: 'FAILED', succeeded: 0, failed: 2 });

    const runs = await ebb(s.dir, ['runs', 's', '--json']);
    expect(JSON.parse(runs.stdout)[0]).toMatchObject({ run_id: run.run_id, status: 'FAILED', succeeded: 0, failed: 2, untracked: 1 });

    // `ebb status` names the most common error of the last run and how to see every failed record.
    const status = await ebb(s.dir, ['status']);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`s: most common error of its last run: 2 × POST /contacts answered 500.*; see them all: ebb history s --run ${run.run_id} --failed`));
    const statusJson = JSON.parse((await ebb(s.dir, ['status', '--json'])).stdout) as Array<Record<string, unknown>>;
    expect(statusJson[0]).toMatchObject({ sync_name: 's', health: 'FAILED', top_error: { records: 2, failures: 2 } });
    const failed = JSON.parse((await ebb(s.dir, ['history', 's', '--run', run.run_id, '--failed', '--json'])).stdout) as Array<{ record_key: string }>;
    expect(failed.map((h) => h.record_key).sort()).toEqual(['4', '5']);
  });

  it('`skipped` counts the records that `ebb skip` held back from the run', async () => {
    const s = await setup();
    await s.load([
      [1, 'ann@x.io', 'Ann'],
      [2, 'bob@x.io', 'Bob'],
      [3, 'cat@x.io', 'Cat'],
    ]);
    s.app.rules = [rejectEmails(['bob@x.io'])];
    expect((await s.run(2)).counts).toMatchObject({ succeeded: 2, failed: 1, skipped: 0 });
    // Bob is skipped once (until his data changes); 9, not seen yet, always.
    expect((await ebb(s.dir, ['skip', 's', '--key', '2'])).code).toBe(0);
    expect((await ebb(s.dir, ['skip', 's', '--key', '9', '--always'])).code).toBe(0);
    await s.load([
      [1, 'ann@x.io', 'Ann'],
      [2, 'bob@x.io', 'Bob'],
      [3, 'cat@x.io', 'Cat'],
      [9, 'nine@x.io', 'Nine'],
    ]);
    s.app.requests.length = 0;
    const held = await s.run(0);
    expect(held.counts).toMatchObject({ succeeded: 0, failed: 0, skipped: 2 });
    expect(s.app.requests).toEqual([]);
    const [row] = await duck(s.db, `SELECT skipped FROM ebb.sync_runs WHERE run_id = '${held.run_id}'`);
    expect(row.skipped).toBe(2);

    // Bob's data changes: the once-skip ends and he is sent; 9 stays skipped.
    s.app.rules = [];
    await s.load([
      [1, 'ann@x.io', 'Ann'],
      [2, 'bob@x.io', 'Robert'],
      [3, 'cat@x.io', 'Cat'],
      [9, 'nine@x.io', 'Nine'],
    ]);
    expect((await s.run(0)).counts).toMatchObject({ succeeded: 1, skipped: 1 });
  });
});

/** Runs `ebb` under a pseudo-terminal (util-linux `script`), so that stderr is a TTY; returns what the terminal showed. */
function ebbOnTty(dir: string, args: string[]): Promise<{ code: number; output: string }> {
  const command = [process.execPath, join(repoRoot, 'bin', 'ebb.js'), ...args, '--project-dir', dir].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  return new Promise((resolve) => {
    execFile('script', ['-qec', command, '/dev/null'], { env: { ...process.env, COLUMNS: '120' } }, (error, stdout) => {
      resolve({ code: error ? Number(error.code) : 0, output: stdout });
    });
  });
}

describe('honest output on a terminal', () => {
  it('`ebb run` prints the result line and the most common error after its progress bar', async () => {
    const s = await setup();
    await s.load([
      [1, 'ann@x.io', 'Ann'],
      [2, 'bob@x.io', 'Bob'],
    ]);
    s.app.rules = [createsDown];
    const { code, output } = await ebbOnTty(s.dir, ['run', 's']);
    expect(code, output).toBe(1);
    const text = output.replaceAll('\r', '');
    // The bar was drawn, then the result line after it, on its own line.
    expect(text).toMatch(/ s \[.*\] \d+\/2 records/);
    const result = text.lastIndexOf('s: FAILED in ');
    expect(result, text).toBeGreaterThan(text.lastIndexOf('records |'));
    expect(text.slice(result)).toMatch(/^s: FAILED in [\d.]+s — 0 succeeded, 2 failed, 0 delayed, 0 source failures \(run \S+\)\n {2}most common error: 2 × POST \/contacts answered 500.*; see them all: ebb history s --run \S+ --failed\n/);
    expect(text).not.toMatch(/\n\s+at /);
  });

  it('a run error is printed after the bar too', async () => {
    const s = await setup('mirror');
    await s.load([[1, 'ann@x.io', 'Ann']]);
    await s.run(0);
    await s.load([]);
    const { code, output } = await ebbOnTty(s.dir, ['run', 's']);
    expect(code, output).toBe(1);
    expect(output.replaceAll('\r', '')).toMatch(/s: FAILED in [\d.]+s — 0 succeeded, 0 failed.*\n {2}error: sync s: the source returned no rows.*--allow-empty-source\.\n/);
    expect(s.app.sentEmails('DELETE')).toEqual([]);
  });
});

describe('the executable', () => {
  it('exits with the exit code of its command: 0, 3 for a usage or config error, with a message and no stack trace', async () => {
    const dir = await makeProject({ version: 1, name: 'exe', warehouse: { type: 'duckdb', path: 'warehouse.duckdb' }, syncs: [] });
    const version = await ebbProcess(dir, ['--version']);
    expect(version).toMatchObject({ code: 0, stderr: '' });
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    expect(await ebbProcess(dir, ['validate'])).toMatchObject({ code: 0, stderr: '' });
    const unknown = await ebbProcess(dir, ['sync-all']);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain("error: unknown command 'sync-all'");
    const invalid = await makeProject('version: 1\nname: exe\nwarehouse: { type: duckdb }\nsyncs: 3\n');
    const refused = await ebbProcess(invalid, ['validate']);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/syncs/);
    expect(refused.stderr + unknown.stderr).not.toMatch(/\n\s+at /);
  });

  it('`ebb init` into a place it cannot write says so (exit 3), without an internal error', async () => {
    const dir = await makeProject('not a directory');
    const refused = await ebb(dir, ['init', join(dir, 'ebb.yml', 'demo')]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toBe(`error: cannot create a project in ${join(dir, 'ebb.yml', 'demo')} (ENOTDIR); choose a directory that you can write to\n`);
  });
});
