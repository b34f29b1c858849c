/**
 * Secrets, through the real CLI against a careless app that echoes the credentials it was sent
 * (raw, inside a JSON text, URL-encoded, as the URL parser wrote them) into its error answers:
 * they are masked in history, in `ebb run --json`, in run errors, in the scheduler's and the
 * worker's log lines and in the warehouse, a 4-character key too, while an ordinary env value
 * (the app's host) and a static mapping value stay readable. Then `ebb status`, `runs` and
 * `history` without the apps' secrets, on a warehouse file that the command cannot write to.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type SpawnOptions } from 'node:child_process';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { duck, ebb, makeProject, repoRoot, type CliResult } from './support/project.ts';
import { CrmApp, crmRequests, type CrmRequest } from './support/crm-app.ts';
import { loadProject } from '../engine/config/load.ts';
import { openEngine } from '../engine/engine.ts';
import { deployProject } from '../engine/ops/index.ts';

/** The CRM token: a quote, a backslash, a slash, a plus, an ampersand and a space, so that every form differs. */
const TOKEN = 'tok"en/w+th&sp ce\\x9Q';
/** A short API key: masked where it stands alone, not inside `Ak3y9b`. */
const SHORT = 'k3y9';

/** Every form of the token that an app or a message may hold, and the short key standing alone. */
function leaks(text: string): string[] {
  const escaped = (s: string) => JSON.stringify(s).slice(1, -1);
  const forms = [
    TOKEN,
    escaped(TOKEN),
    escaped(escaped(TOKEN)),
    encodeURIComponent(TOKEN),
    new URLSearchParams({ t: TOKEN }).toString().slice(2),
    new URL(`http://h/?${TOKEN}`).search.slice(1),
    escaped(new URL(`http://h/?${TOKEN}`).search.slice(1)),
  ];
  const found = forms.filter((f) => text.includes(f));
  if (/(?<![A-Za-z0-9])k3y9(?![A-Za-z0-9])/.test(text)) found.push(SHORT);
  return found;
}

/** A plugin of the project that logs in to the app when a run opens it, and fails the run with the app's refusal. */
const loginPlugin = `
export default {
  name: 'crm-login',
  configSchema: { safeParse: (v) => ({ success: true, data: v }), parse: (v) => v },
  async check() {},
  async open(ctx) {
    const res = await fetch(ctx.config.url + '/login', { method: 'POST', headers: { authorization: 'Bearer ' + ctx.config.token } });
    if (!res.ok) throw new Error('login refused: ' + res.status + ' ' + (await res.text()));
    return { apply: async (changes) => changes.map((c) => ({ key: c.key, success: true })), close: async () => {} };
  },
};
`;

/** The app quotes back what it was sent: the credentials, the URL, the record. */
function echo(r: CrmRequest) {
  const authorization = String(r.headers.authorization);
  if (r.path === '/login') return { status: 401, body: { error: `bad credentials: ${authorization}`, quoted: JSON.stringify({ authorization }), encoded: encodeURIComponent(authorization) } };
  if (r.body?.email !== 'echo@x.io') return undefined;
  return {
    status: 400,
    body: {
      error: `refused ${authorization} with key ${String(r.headers['x-api-key'])} at ${String(r.headers.host)}${r.path}`,
      quoted: JSON.stringify({ authorization, url: r.path }),
      encoded: encodeURIComponent(authorization),
      form: new URLSearchParams({ key: String(r.headers['x-api-key']), authorization }).toString(),
      record: r.body,
    },
  };
}

const source = `select * from (values (1, 'ann@x.io', 'Ann'), (2, 'echo@x.io', 'Ak3y9b')) t(id, email, name)`;

function config() {
  return {
    version: 1,
    name: 'secrets',
    warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
    connections: {
      crm: {
        plugin: 'http',
        config: {
          base_url: "http://{{ env_var('CRM_HOST') }}",
          headers: { authorization: "Bearer {{ env_var('CRM_TOKEN') }}", 'x-api-key': "{{ env_var('CRM_SHORT') }}" },
        },
        retry: { delays_seconds: [] },
      },
      login: { plugin: './crm-login.mjs', config: { url: "http://{{ env_var('CRM_HOST') }}", token: "{{ env_var('CRM_TOKEN') }}" } },
    },
    syncs: [
      {
        name: 'contacts',
        source: { query: source, key: 'id' },
        destination: {
          connection: 'crm',
          object: 'contacts',
          requests: { ...crmRequests, create: { ...crmRequests.create, path: "/contacts?token={{ env_var('CRM_TOKEN') }}&k={{ env_var('CRM_SHORT') }}" } },
        },
        strategy: 'upsert',
        mapping: { email: 'email', name: 'name', source_system: { value: "{{ env_var('SOURCE_SYSTEM') }}" } },
      },
      { name: 'logins', source: { query: source, key: 'id' }, destination: { connection: 'login', object: 'contacts' }, strategy: 'upsert', mapping: { email: 'email' }, schedule: 'once' },
    ],
  };
}

/** Runs a long-running command until a line of its JSON log matches; then SIGTERM, and its whole output. */
function untilLogged(dir: string, args: string[], env: Record<string, string>, done: (entry: Record<string, unknown>) => boolean): Promise<{ lines: Record<string, unknown>[]; text: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'ebb.js'), ...args, '--project-dir', dir], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.split('\n').some((l) => l.startsWith('{') && done(JSON.parse(l) as Record<string, unknown>))) child.kill('SIGTERM');
    });
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ lines, text: out + err });
    });
  });
}

/** The real `ebb` as another user (when the tests run as root, for whom file modes do not count). */
function ebbAs(uid: number | undefined, dir: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const options: SpawnOptions = { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], ...(uid !== undefined && { uid, gid: uid }) };
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'ebb.js'), ...args, '--project-dir', dir], options);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

describe('secrets echoed back by the app', () => {
  let app: CrmApp;
  let dir: string;
  let db: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    app = await CrmApp.start();
    app.rules = [echo];
    env = { CRM_HOST: app.url.replace('http://', ''), CRM_TOKEN: TOKEN, CRM_SHORT: SHORT, SOURCE_SYSTEM: 'warehouse-eu' };
    dir = await makeProject(config(), { 'crm-login.mjs': loginPlugin });
    db = join(dir, 'warehouse.duckdb');
  });
  afterAll(async () => {
    await app.stop();
  });

  it('the scheduler logs the failed run of a once sync with the credentials masked', async () => {
    const { lines, text } = await untilLogged(dir, ['scheduler', '--json', '--tick-seconds', '0.2'], env, (e) => e.event === 'result' || e.event === 'error');
    const result = lines.find((l) => l.event === 'result' && l.sync === 'logins');
    expect(result, text).toBeDefined();
    // The app quoted the token back, and the run's error says so, masked.
    expect((result!.result as { error: string }).error).toMatch(/^login refused: 401 .*bad credentials: Bearer \*\*\*/);
    expect(String(result!.message)).toContain('Bearer ***');
    expect(leaks(text)).toEqual([]);
  });

  it('`ebb run --json` and history mask every form of the echoed secrets, a 4-character key too; the host and the mapping value stay readable', async () => {
    const run = await ebb(dir, ['run', 'contacts', 'logins', '--json'], env);
    expect(run.code, run.stderr).toBe(1);
    // The app was sent the real credentials: there was something to leak.
    const echoed = app.requests.find((r) => r.body?.email === 'echo@x.io')!;
    expect(echoed.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(echoed.headers['x-api-key']).toBe(SHORT);
    expect(app.byEmail()['ann@x.io'].source_system).toBe('warehouse-eu');

    const out = JSON.parse(run.stdout) as { runs: Array<{ sync: string; error: string | null; counts: { failed: number } }> };
    expect(out.runs.find((r) => r.sync === 'contacts')!.counts.failed).toBe(1);
    expect(out.runs.find((r) => r.sync === 'logins')!.error).toContain('bad credentials: Bearer ***');
    expect(leaks(run.stdout + run.stderr)).toEqual([]);

    const history = await ebb(dir, ['history', 'contacts', '--failed', '--json'], env);
    expect(history.code, history.stderr).toBe(0);
    const [failure] = JSON.parse(history.stdout) as Array<{ result: { response: { body: Record<string, unknown> } }; transformed_record: Record<string, unknown> }>;
    const body = failure.result.response.body;
    expect(body.error).toBe(`refused Bearer *** with key *** at ${env.CRM_HOST}/contacts?token=***&k=***`);
    expect(body.quoted).toBe(JSON.stringify({ authorization: 'Bearer ***', url: '/contacts?token=***&k=***' }));
    expect(body.encoded).toBe(`Bearer%20***`);
    expect(body.form).toBe('key=***&authorization=Bearer+***');
    // Not secrets: the record's data (`Ak3y9b` holds the short key inside a word) and the static mapping value.
    expect(body.record).toEqual({ email: 'echo@x.io', name: 'Ak3y9b', source_system: 'warehouse-eu' });
    expect(failure.transformed_record).toEqual({ email: 'echo@x.io', name: 'Ak3y9b', source_system: 'warehouse-eu' });
    expect(leaks(history.stdout + history.stderr)).toEqual([]);

    const text = await ebb(dir, ['history', 'contacts', '--failed'], env);
    expect(text.stdout).toContain('FAILED');
    expect(leaks(text.stdout + text.stderr)).toEqual([]);

    // The plan shows the payload as it will be sent, the static value from env_var() included.
    const plan = await ebb(dir, ['plan', 'contacts', '--json'], env);
    expect(plan.code, plan.stderr).toBe(0);
    expect((JSON.parse(plan.stdout) as { samples: Array<{ transformed_record: unknown }> }).samples.map((r) => (typeof r.transformed_record === 'string' ? JSON.parse(r.transformed_record) : r.transformed_record))).toEqual([
      expect.objectContaining({ email: 'echo@x.io', source_system: 'warehouse-eu' }),
    ]);
    expect(leaks(plan.stdout + plan.stderr)).toEqual([]);
  });

  it('the worker logs its runs with the credentials masked', async () => {
    await duck(db, `INSERT INTO ebb.run_requests (request_id, sync_name, "trigger", requested_at) VALUES ('r1', 'logins', 'api', now() - INTERVAL 1 SECOND), ('r2', 'contacts', 'api', now())`);
    const worker = await ebb(dir, ['worker', '--once', '--json'], env);
    const lines = worker.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const results = lines.filter((l) => l.event === 'result');
    expect(results.map((l) => l.sync), worker.stdout + worker.stderr).toEqual(['logins', 'contacts']);
    expect((results[0].result as { error: string }).error).toContain('bad credentials: Bearer ***');
    expect(leaks(worker.stdout + worker.stderr)).toEqual([]);
  });

  it('no table of the warehouse holds the secrets', async () => {
    const tables = await duck(db, `SELECT table_name FROM duckdb_tables() WHERE schema_name = 'ebb'`);
    expect(tables.map((t) => t.table_name)).toEqual(expect.arrayContaining(['syncs', 'sync_runs', 'sync_record_state', 'sync_record_history']));
    for (const { table_name } of tables) {
      const rows = JSON.stringify(await duck(db, `SELECT * FROM ebb."${String(table_name)}"`));
      expect(leaks(rows), String(table_name)).toEqual([]);
    }
    const [{ error }] = await duck(db, `SELECT error FROM ebb.sync_runs WHERE sync_name = 'logins' ORDER BY started_at LIMIT 1`);
    expect(error).toContain('Bearer ***');
    // The catalog keeps the env_var() calls of the secrets, and the plain value of the host.
    const [{ definition }] = await duck(db, `SELECT definition::VARCHAR AS definition FROM ebb.syncs WHERE sync_name = 'contacts'`);
    expect(definition).toContain("token={{ env_var('CRM_TOKEN') }}&k={{ env_var('CRM_SHORT') }}");
    expect(definition).toContain('warehouse-eu');
  });

  it('`ebb status`, `runs` and `history` work without the apps\' secrets, on a warehouse file they cannot write to', async () => {
    // As root, file modes do not stop a write: run the commands as `nobody` then.
    const uid = process.getuid?.() === 0 ? 65534 : undefined;
    await chmod(db, 0o444);
    await chmod(dir, 0o555);
    try {
      // Without the variables the connections need, a run is refused: the config needs them.
      const run = await ebbAs(uid, dir, ['run', 'contacts']);
      expect(run.code).toBe(3);
      expect(run.stderr).toContain('environment variable CRM_HOST is not set');

      const status = await ebbAs(uid, dir, ['status', '--json']);
      expect(status.code, status.stderr).toBe(0);
      expect((JSON.parse(status.stdout) as Array<{ sync_name: string; health: string }>).map((s) => [s.sync_name, s.health])).toEqual([
        ['contacts', 'FAILED'],
        ['logins', 'FAILED'],
      ]);
      const runs = await ebbAs(uid, dir, ['runs', 'logins', '--json']);
      expect(runs.code, runs.stderr).toBe(0);
      expect((JSON.parse(runs.stdout) as Array<{ error: string }>).map((r) => r.error)).toEqual(Array(3).fill(expect.stringContaining('bad credentials: Bearer ***')));
      const history = await ebbAs(uid, dir, ['history', 'contacts', '--json']);
      expect(history.code, history.stderr).toBe(0);
      expect((JSON.parse(history.stdout) as unknown[]).length).toBeGreaterThan(0);
      // The file cannot be written: a command that writes cannot even open it.
      const pause = await ebbAs(uid, dir, ['pause', 'contacts'], env);
      expect(pause.code).toBe(1);
      expect(pause.stderr).toMatch(/cannot open the DuckDB warehouse .*Permission denied/);
    } finally {
      await chmod(dir, 0o755);
      await chmod(db, 0o644);
    }
  });
});

describe('a secret in a mapping', () => {
  it('is a config error: mapping values are payload, sent to the app and stored in history', async () => {
    const c = config();
    (c.syncs[0].mapping as Record<string, unknown>).api = { value: "{{ env_var('CRM_TOKEN') }}" };
    const dir = await makeProject(stringify(c), { 'crm-login.mjs': loginPlugin });
    const result = await ebb(dir, ['validate'], { CRM_HOST: '127.0.0.1:9', CRM_TOKEN: TOKEN, CRM_SHORT: SHORT, SOURCE_SYSTEM: 'warehouse-eu' });
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('syncs[0].mapping.api: holds the value of CRM_TOKEN, a secret');
    expect(leaks(result.stdout + result.stderr)).toEqual([]);
  });

  it("is this project's own: a project loaded in the same process as another never takes the other's secrets", async () => {
    const saved = { CRM_TOKEN: process.env.CRM_TOKEN, OTHER_TOKEN: process.env.OTHER_TOKEN };
    Object.assign(process.env, { CRM_TOKEN: 'crm-secret-0123456789', OTHER_TOKEN: 'other-secret-9876543210' });
    const project = (name: string, variable: string, literal: string) => ({
      version: 1,
      name,
      warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
      connections: { crm: { plugin: 'http', config: { base_url: 'http://127.0.0.1:9', headers: { authorization: `{{ env_var('${variable}') }}` } } } },
      syncs: [{ name: 's', source: { query: 'select 1 as id', key: 'id' }, destination: { connection: 'crm', object: 'contacts', requests: crmRequests }, strategy: 'upsert', mapping: { note: { value: literal } } }],
    });
    try {
      // The other project's secret is plain text in this one's mapping: no secret of this project.
      const other = await loadProject(await makeProject(project('other', 'OTHER_TOKEN', 'plain')));
      const dir = await makeProject(project('mine', 'CRM_TOKEN', 'other-secret-9876543210'));
      const mine = await loadProject(dir);
      expect(mine.secrets.secretIn('other-secret-9876543210')).toBeUndefined();
      expect(other.secrets.secretIn('other-secret-9876543210')).toBe('OTHER_TOKEN');
      const engine = await openEngine(mine);
      try {
        await deployProject(engine);
        const [row] = await engine.sql.runAndRead('catalog_list');
        // The catalog holds this project's variable for its secret, and the text of its mapping as it is.
        expect(JSON.parse(String(row.definition))).toMatchObject({
          mapping: { note: { value: 'other-secret-9876543210' } },
        });
        expect(mine.secrets.unresolve({ authorization: 'crm-secret-0123456789' })).toEqual({ authorization: "{{ env_var('CRM_TOKEN') }}" });
        expect(other.secrets.unresolve({ authorization: 'crm-secret-0123456789' })).toEqual({ authorization: 'crm-secret-0123456789' });
      } finally {
        await engine.close();
      }
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});
