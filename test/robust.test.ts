/**
 * The engine never dies of an error it could report, through the CLI: a lost run lock stops the
 * sending and fails the run with a message; admin overrides are read field by field; a sync
 * without its connection is refused while `run --all` goes on; an automatic deploy commits
 * nothing that `ebb deploy` would refuse.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { stringify } from 'yaml';
import { duck, ebb, makeProject, repoRoot } from './support/project.ts';
import { FaultServer } from './support/fault-server.ts';
import { SnowflakeEmulator } from './snowflake/emulator.ts';
import { CrmApp } from './support/crm-app.ts';
import { until } from './support/wait.ts';

const stops: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  await Promise.all(stops.splice(0).map((stop) => stop()));
});

const singleRequests = {
  create: { method: 'POST', path: '/contacts', body: '{{ record | tojson }}', app_id: '{{ response.id }}' },
  update: { method: 'PATCH', path: '/contacts/{{ app_id | urlencode }}', body: '{{ record | tojson }}' },
  delete: { method: 'DELETE', path: '/contacts/{{ app_id | urlencode }}' },
};

/** Runs `ebb` and resolves with its exit code and output; `started` resolves once it prints to stderr. */
function ebbChild(dir: string, args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [join(repoRoot, 'bin', 'ebb.js'), ...args, '--project-dir', dir], { env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr })));
}

/**
 * A sync of 200 contacts to a slow app, one record per request, on Snowflake (emulated): the test
 * can change ebb's tables while a run holds its session.
 */
async function slowSnowflakeProject() {
  const emulator = await SnowflakeEmulator.start({ users: { ebb_user: { password: 'pw' } } });
  stops.push(() => emulator.stop());
  const app = await FaultServer.start({ latencyMs: 100 });
  stops.push(() => app.stop());
  await emulator.sql('CREATE SCHEMA analytics');
  await emulator.sql('CREATE TABLE analytics.contacts (id INTEGER, email VARCHAR, name VARCHAR)');
  await emulator.sql(`INSERT INTO analytics.contacts SELECT i, 'p' || i || '@x.io', 'P' || i FROM range(1, 201) t(i)`);
  const dir = await makeProject(
    stringify({
      version: 1,
      name: 'slow',
      warehouse: { type: 'snowflake', account: 'emulated', username: 'ebb_user', password: 'pw', database: 'DB', access_url: emulator.url },
      connections: { app: { plugin: 'http', config: { base_url: app.url }, concurrency: 1, retry: { delays_seconds: [] } } },
      syncs: [{ name: 's', source: { table: 'analytics.contacts', key: 'id' }, destination: { connection: 'app', object: 'contacts', requests: singleRequests }, strategy: 'upsert', mapping: { email: 'email', name: 'name' }, batch_size: 1 }],
    }),
  );
  return { emulator, app, dir };
}

interface RunReport {
  run_id: string;
  health: string;
  error: string;
  counts: Record<string, number>;
}

describe('a lost run lock', () => {
  it('stops the run from sending; the run ends FAILED with a message, exit 1, no stack trace', async () => {
    const { emulator, app, dir } = await slowSnowflakeProject();
    const run = ebbChild(dir, ['run', 's', '--json'], { EBB_LOCK_TTL_SECONDS: '1.5' });
    await until('five requests in the app', () => app.requests.length >= 5);
    // Another run takes the lock (as one would after this one's lock expired).
    await emulator.sql(`UPDATE ebb.syncs SET lock_run_id = 'thief', lock_holder = 'elsewhere', lock_expires_at = '2999-01-01 00:00:00' WHERE sync_name = 's'`);
    const takenAt = app.requests.length;
    const result = await run;

    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).not.toMatch(/\n\s+at |internal error|Unhandled/);
    const [report] = (JSON.parse(result.stdout) as { runs: RunReport[] }).runs;
    expect(report.health).toBe('FAILED');
    expect(report.error).toMatch(/the run lock of sync s was taken by another run; this run stopped sending/);
    // The renewal (every 0.5 s) found the lock taken: what was in flight finished, nothing new was sent.
    expect(app.requests.length).toBeLessThan(takenAt + 10);
    expect(app.requests.length).toBeLessThan(200);
    expect(report.counts.succeeded).toBe(app.requests.length);
    expect(report.counts.delayed).toBe(200 - app.requests.length);
    const [row] = await emulator.sql(`SELECT status, error FROM ebb.sync_runs WHERE run_id = '${report.run_id}'`);
    expect(row).toMatchObject({ STATUS: 'FAILED', ERROR: expect.stringContaining('taken by another run') });
    // The thief's lock is left alone.
    expect(await emulator.sql(`SELECT lock_run_id FROM ebb.syncs WHERE sync_name = 's'`)).toEqual([{ LOCK_RUN_ID: 'thief' }]);
  });
});

describe('a run lock that cannot be renewed', () => {
  it('stops the run from sending once the lock may have expired; the run ends FAILED with a message', async () => {
    const { emulator, app, dir } = await slowSnowflakeProject();
    const run = ebbChild(dir, ['run', 's', '--json'], { EBB_LOCK_TTL_SECONDS: '1.5' });
    // Once the run sends (its plan done, however slow the machine), the catalog table goes at the
    // next renewal: every renewal from then on fails.
    await until('a first request in the app', () => app.requests.length >= 1);
    const broken = emulator.interpose(/^UPDATE "EBB"\."SYNCS" SET lock_expires_at/, 'ALTER TABLE ebb.syncs RENAME TO syncs_gone');
    const result = await run;
    await broken;

    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).not.toMatch(/\n\s+at |internal error|Unhandled/);
    const [report] = (JSON.parse(result.stdout) as { runs: RunReport[] }).runs;
    expect(report.health).toBe('FAILED');
    expect(report.error).toMatch(/^the run lock of sync s could not be renewed for 1\.5s \(.*\); this run stopped sending/);
    expect(app.requests.length).toBeLessThan(200);
  });
});

describe('an outcome write that fails', () => {
  it('stops the sending and ends the run FAILED with a message, exit 1, no stack trace', async () => {
    const { emulator, app, dir } = await slowSnowflakeProject();
    // The warehouse refuses ebb's first write of outcomes (as a full disk would): the table is gone.
    const refused = emulator.interpose(/^INSERT INTO "EBB"\."SYNC_OUTCOMES"/, 'ALTER TABLE ebb.sync_outcomes RENAME TO sync_outcomes_gone');
    const result = await ebbChild(dir, ['run', 's', '--json'], {});
    await refused;

    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).not.toMatch(/\n\s+at |internal error|Unhandled/);
    const [report] = (JSON.parse(result.stdout) as { runs: RunReport[] }).runs;
    expect(report.health).toBe('FAILED');
    expect(report.error).toMatch(/SYNC_OUTCOMES.*; then its outcomes could not be recorded: .*The next run of s records what this one did/is);
    // What was sent after the write failed: at most the batches already in flight.
    const sentAtFailure = app.requests.length;
    expect(sentAtFailure).toBeLessThan(200);
  });
});

/** A project of syncs of `people` into files; returns its dir and DuckDB file. */
async function fileProject(syncs: Array<Record<string, unknown>>, connections: Record<string, unknown> = { files: { plugin: 'file', config: { directory: 'out' } } }) {
  const config = { version: 1, name: 'robust', warehouse: { type: 'duckdb', path: 'warehouse.duckdb' }, connections, syncs };
  const dir = await makeProject(config);
  const db = join(dir, 'warehouse.duckdb');
  await duck(db, `CREATE TABLE people AS SELECT * FROM (VALUES (1, 'Ann', 9.5), (2, 'Bob', 7.25)) t(id, name, score)`);
  return { dir, db, config };
}

const fileSync = (name: string, connection = 'files') => ({
  name,
  source: { table: 'people', key: 'id' },
  destination: { connection, object: `${name}.jsonl` },
  strategy: 'upsert',
  mapping: { name: 'name', score: 'score' },
});

describe('admin overrides, field by field', () => {
  it('a bad field is reported with its path and ignored; it never takes a PAUSED status with it', async () => {
    const { dir, db } = await fileProject([fileSync('s')]);
    expect((await ebb(dir, ['deploy'])).code).toBe(0);
    await duck(db, `UPDATE ebb.syncs SET overrides = '{"status": "PAUSED", "batch_size": "x"}' WHERE sync_name = 's'`);

    const refused = await ebb(dir, ['run', 's', '--json']);
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.stderr).toContain('warning: sync s: overrides.batch_size: expected a positive integer; ignored, the value from the code applies');
    expect(JSON.parse(refused.stdout).skipped).toEqual([{ sync: 's', reason: expect.stringContaining('paused'), reason_code: 'paused' }]);
    expect(await duck(db, `SELECT count(*) AS n FROM ebb.sync_runs`)).toEqual([{ n: 0 }]);

    const status = await ebb(dir, ['status', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject([{ sync_name: 's', status: 'PAUSED', overrides: { status: 'PAUSED' }, override_issues: [expect.stringMatching(/^overrides\.batch_size: expected a positive integer/)] }]);
    expect((await ebb(dir, ['status'])).stdout).toContain('s: warning: overrides.batch_size: expected a positive integer');

    // A status that cannot be read keeps the sync paused too.
    await duck(db, `UPDATE ebb.syncs SET status = 'ACTIVE', overrides = '{"status": "paused", "max_run_seconds": 30}' WHERE sync_name = 's'`);
    const unclear = await ebb(dir, ['run', 's']);
    expect(unclear.code).toBe(1);
    expect(unclear.stderr).toContain('warning: sync s: overrides.status: expected "ACTIVE" or "PAUSED"; the sync stays PAUSED until this is fixed');
    expect(unclear.stderr).toMatch(/refused: sync s is paused/);

    // Fixed by the admin: the good fields apply, the sync runs.
    await duck(db, `UPDATE ebb.syncs SET overrides = '{"max_run_seconds": 30}' WHERE sync_name = 's'`);
    const ran = await ebb(dir, ['run', 's']);
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stderr).not.toContain('warning');
  });
});

describe('a sync whose connection is not in ebb.yml', () => {
  it('gets a clear error, and `run --all` runs the others', async () => {
    const { dir, db, config } = await fileProject([fileSync('a'), fileSync('b', 'other')], {
      files: { plugin: 'file', config: { directory: 'out' } },
      other: { plugin: 'file', config: { directory: 'out2' } },
    });
    expect((await ebb(dir, ['deploy'])).code).toBe(0);
    // An admin owns b; then the code drops it and its connection.
    await duck(db, `UPDATE ebb.syncs SET origin = 'admin' WHERE sync_name = 'b'`);
    const { other: _other, ...connections } = config.connections as Record<string, unknown>;
    await writeFile(join(dir, 'ebb.yml'), stringify({ ...config, connections, syncs: [fileSync('a')] }));

    const all = await ebb(dir, ['run', '--all', '--json']);
    expect(all.code, all.stderr).toBe(1);
    expect(all.stderr).not.toMatch(/internal error|\n\s+at /);
    const report = JSON.parse(all.stdout) as { runs: Array<{ sync: string; health: string }>; skipped: Array<{ sync: string; reason: string; reason_code: string }> };
    expect(report.runs).toMatchObject([{ sync: 'a', health: 'HEALTHY' }]);
    expect(report.skipped).toEqual([{ sync: 'b', reason_code: 'no_connection', reason: expect.stringContaining('its connection "other" is not in ebb.yml') }]);
    const named = await ebb(dir, ['run', 'b']);
    expect(named.code).toBe(1);
    expect(named.stderr).toMatch(/^refused: sync b: its connection "other" is not in ebb\.yml.*ebb delete b --yes/m);
  });
});

describe('the automatic deploy of `ebb run`', () => {
  it('commits nothing unless the checks of `ebb deploy` pass', async () => {
    const { dir, db, config } = await fileProject([fileSync('a'), fileSync('b')]);
    expect((await ebb(dir, ['deploy'])).code).toBe(0);
    const before = await duck(db, `SELECT sync_name, definition_hash FROM ebb.syncs ORDER BY 1`);
    // a changes, and b now maps a column that does not exist.
    const broken = { ...fileSync('b'), mapping: { name: 'name', score: 'scroe' } };
    await writeFile(join(dir, 'ebb.yml'), stringify({ ...config, syncs: [{ ...fileSync('a'), batch_size: 7 }, broken] }));

    const run = await ebb(dir, ['run', 'a']);
    expect(run.code, run.stderr).toBe(3);
    expect(run.stderr).toContain('syncs[1].mapping.score: unknown column "scroe"; did you mean "score"?');
    expect(await duck(db, `SELECT sync_name, definition_hash FROM ebb.syncs ORDER BY 1`)).toEqual(before);
    expect(await duck(db, `SELECT count(*) AS n FROM ebb.sync_runs`)).toEqual([{ n: 0 }]);
  });
});

/** A project plugin as the README describes it: TypeScript, a default export, a zod config schema. */
const myAppPlugin = `import { z } from 'zod';
import type { Change, Outcome, Plugin } from 'ebb/plugins/plugin.ts';

const configSchema = z.object({ base_url: z.string() });

const plugin = {
  name: 'my-app',
  configSchema,
  async check() {},
  async open({ config }: { config: z.infer<typeof configSchema> }) {
    return {
      async apply(changes: Change[]): Promise<Outcome[]> {
        return Promise.all(
          changes.map(async (c) => {
            const answer = await fetch(\`\${config.base_url}/contacts\`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(c.record) });
            const body = (await answer.json()) as { id?: string };
            return answer.ok ? { key: c.key, success: true, appId: body.id } : { key: c.key, success: false, error: { kind: 'rejected', message: \`answered \${answer.status}\` } };
          }),
        );
      },
      async close() {},
    };
  },
};
export default plugin as unknown as Plugin;
`;

describe('a project plugin written in TypeScript', () => {
  it('loads from an `ebb init` project outside the repository, as the README shows, and runs', async () => {
    const app = await CrmApp.start();
    stops.push(() => app.stop());
    const dir = join(await mkdtemp(join(tmpdir(), 'ebb-init-')), 'my-project');
    const bin = join(repoRoot, 'bin', 'ebb.js');
    const inProject = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(process.execPath, [bin, ...args], { cwd: dir }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr })),
      );
    const init = await ebb(tmpdir(), ['init', dir]);
    expect(init.code, init.stderr).toBe(0);
    await mkdir(join(dir, 'plugins'));
    await writeFile(join(dir, 'plugins', 'my-app.ts'), myAppPlugin);
    const yml = (await readFile(join(dir, 'ebb.yml'), 'utf8'))
      .replace('connections:\n', `connections:\n  my_app:\n    plugin: ./plugins/my-app.ts\n    config: { base_url: "${app.url}" }\n`)
      .replace('syncs:\n', 'syncs:\n  - name: to_my_app\n    source: { table: analytics.customers, key: customer_id }\n    destination: { connection: my_app, object: contacts }\n    strategy: create\n    mapping: { email: email }\n');
    await writeFile(join(dir, 'ebb.yml'), yml);

    const validate = await inProject(['validate']);
    expect(validate.code, validate.stderr).toBe(0);
    const run = await inProject(['run', 'to_my_app', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const [customers] = await duck(join(dir, 'warehouse.duckdb'), 'SELECT count(*) AS n FROM analytics.customers');
    expect(JSON.parse(run.stdout).runs[0]).toMatchObject({ health: 'HEALTHY', counts: { succeeded: customers.n } });
    expect(app.contacts.size).toBe(customers.n);
    expect(app.sentEmails('POST')).toHaveLength(Number(customers.n));
  });
});
