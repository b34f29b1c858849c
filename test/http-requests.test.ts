/**
 * The http plugin's requests go exactly where ebb.yml says, with exactly what ebb records, end to
 * end through `ebb validate` and `ebb run` against the fault server: redirects are never followed
 * (and a second server, another origin, receives nothing), warehouse values in a path are one
 * segment each, a URL never leaves base_url, undefined template variables are config errors, a
 * create without an identifier is a failure, and answers are read up to a cap.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { duck, ebb, makeProject, runHere } from './support/project.ts';
import { FaultServer, type Fault } from './support/fault-server.ts';

const servers: FaultServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function server(faults: Fault[] = []): Promise<FaultServer> {
  const s = await FaultServer.start({ faults });
  servers.push(s);
  return s;
}

const retry = { delays_seconds: [0.05, 0.1] };
const create = { method: 'POST', path: '/contacts', body: '{{ record | tojson }}', app_id: '{{ response.id }}' };
const update = { method: 'PATCH', path: '/contacts/{{ app_id }}', body: '{{ record | tojson }}' };

interface Row {
  id: string;
  email: string;
  name: string;
}

interface ProjectOptions {
  config: Record<string, unknown>;
  requests: Record<string, unknown>;
  strategy?: string;
  mapping?: Record<string, unknown>;
}

/** A project with a sync `s` of the table `contacts` (id, email, name) to the http plugin. */
async function project(options: ProjectOptions) {
  const dir = await makeProject({
    version: 1,
    name: 'requests',
    warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
    connections: { app: { plugin: 'http', config: options.config, retry } },
    syncs: [
      {
        name: 's',
        source: { table: 'contacts', key: 'id' },
        destination: { connection: 'app', object: 'contacts', requests: options.requests },
        strategy: options.strategy ?? 'upsert',
        mapping: options.mapping ?? { email: 'email', name: 'name' },
      },
    ],
  });
  const db = join(dir, 'warehouse.duckdb');
  return {
    dir,
    db,
    async load(rows: Row[]) {
      const values = rows.map((r) => `('${r.id.replace(/'/g, "''")}', '${r.email}', '${r.name}')`).join(', ');
      await duck(db, `CREATE OR REPLACE TABLE contacts (id VARCHAR, email VARCHAR, name VARCHAR);\nINSERT INTO contacts VALUES ${values}`);
    },
    /** A run of `s` as `ebb run s --json` makes it, in this process, expecting an exit code; returns the run. */
    async run(exit: number) {
      const result = await runHere(dir, ['s']);
      expect(result.code, `${result.warnings.join('\n')}\n${result.json}`).toBe(exit);
      return (JSON.parse(result.json) as { runs: Array<{ health: string; counts: Record<string, number> }> }).runs[0];
    },
    /** The real `ebb run s --json` (with these environment variables), expecting an exit code; returns the run. */
    async runCommand(exit: number, env: Record<string, string> = {}) {
      const result = await ebb(dir, ['run', 's', '--json'], env);
      expect(result.code, result.stderr + result.stdout).toBe(exit);
      return (JSON.parse(result.stdout) as { runs: Array<{ health: string; counts: Record<string, number> }> }).runs[0];
    },
    /** The history of the last run, by record key: state, app identifier and result (the last started: two runs in one second have run ids that do not sort by time). */
    async lastRun(): Promise<Record<string, { state: string; appId: string | null; result: { error?: { kind: string; message: string }; response?: unknown; body?: unknown } }>> {
      const rows = await duck(
        db,
        `SELECT record_key, apply_state, app_identifier, CAST(result AS VARCHAR) AS result FROM ebb.sync_record_history
         WHERE run_id = (SELECT run_id FROM ebb.sync_runs ORDER BY started_at DESC LIMIT 1)`,
      );
      return Object.fromEntries(
        rows.map((r) => [String(r.record_key), { state: String(r.apply_state), appId: (r.app_identifier as string | null) ?? null, result: JSON.parse(String(r.result)) as never }]),
      );
    },
  };
}

describe('redirects and credentials', () => {
  it('a 3xx is a failure that names the Location, never followed: the other origin receives nothing, credentials included', async () => {
    const elsewhere = await server();
    const app = await server([
      { kind: 'redirect', status: 307, location: `${elsewhere.url}/contacts`, match: /^POST / },
      { kind: 'redirect', status: 302, location: `${elsewhere.url}/contacts/moved`, match: /^PATCH / },
    ]);
    const p = await project({
      config: {
        base_url: app.url,
        headers: { authorization: "Bearer {{ env_var('APP_TOKEN') }}", 'x-api-key': "{{ env_var('APP_KEY') }}" },
      },
      // A secret in the query string too.
      requests: { create: { ...create, path: "/contacts?api-key={{ env_var('APP_KEY') }}" }, update },
    });
    await p.load([
      { id: '1', email: 'ann@x.io', name: 'Ann' },
      { id: '2', email: 'bob@x.io', name: 'Bob' },
    ]);
    const env = { APP_TOKEN: 'token-5ecret', APP_KEY: 'key-5ecret' };
    const run = await p.runCommand(1, env);
    expect(run.counts).toMatchObject({ succeeded: 0, failed: 2 });

    // Each create reached the app once (a redirect is not retried), with its credentials; none was followed.
    expect(app.requests.map((r) => `${r.method} ${r.path} ${String(r.answer)}`)).toEqual(Array(2).fill('POST /contacts?api-key=key-5ecret 307'));
    expect(app.requests[0].headers).toMatchObject({ authorization: 'Bearer token-5ecret', 'x-api-key': 'key-5ecret' });
    expect(elsewhere.requests).toEqual([]);
    const history = await p.lastRun();
    for (const key of ['1', '2']) {
      expect(history[key]).toMatchObject({ state: 'FAILED', appId: null });
      expect(history[key].result.error).toEqual({
        kind: 'rejected',
        message: `POST /contacts failed: answered 307 with a redirect to ${elsewhere.url}/contacts, which ebb does not follow: set the connection's URL to the address the app answers at`,
      });
    }

    // An update answered 302 (which fetch would have resent as a GET without its body) fails too.
    const updates = await project({ config: { base_url: app.url, headers: { authorization: "Bearer {{ env_var('APP_TOKEN') }}" } }, requests: { update: { ...update, path: '/contacts/{{ key }}' } }, strategy: 'update' });
    await updates.load([{ id: 'c1', email: 'ann@x.io', name: 'Ann' }]);
    await updates.runCommand(1, env);
    expect(app.requests.slice(2).map((r) => `${r.method} ${r.path} ${String(r.answer)}`)).toEqual(['PATCH /contacts/c1 302']);
    expect(elsewhere.requests).toEqual([]);
    expect((await updates.lastRun()).c1.result.error?.message).toMatch(new RegExp(`^PATCH /contacts/c1 failed: answered 302 with a redirect to ${elsewhere.url}/contacts/moved,`));
  });
});

describe('redirects in the other app plugins', () => {
  it('a webhook answered 308 fails its events (not retried, not followed), and the other origin receives nothing', async () => {
    const elsewhere = await server();
    const app = await server([{ kind: 'redirect', status: 308, location: `${elsewhere.url}/hook` }]);
    const dir = await makeProject({
      version: 1,
      name: 'hooks',
      warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
      connections: {
        hook: { plugin: 'webhook', config: { url: `${app.url}/hook`, secret: "{{ env_var('HOOK_SECRET') }}", headers: { authorization: "Bearer {{ env_var('HOOK_TOKEN') }}" } }, retry },
      },
      syncs: [{ name: 'h', source: { table: 'contacts', key: 'id' }, destination: { connection: 'hook', object: 'contacts' }, strategy: 'send', mapping: { email: 'email' } }],
    });
    await duck(join(dir, 'warehouse.duckdb'), `CREATE TABLE contacts AS SELECT * FROM (VALUES (1, 'ann@x.io'), (2, 'bob@x.io')) t(id, email)`);
    const run = await ebb(dir, ['run', 'h'], { HOOK_SECRET: 'a-secret-of-16-chars-or-more', HOOK_TOKEN: 'token-5ecret' });
    expect(run.code, run.stderr).toBe(1);
    expect(app.requests.map((r) => `${r.method} ${r.path} ${String(r.answer)}`)).toEqual(Array(2).fill('POST /hook 308'));
    expect(app.requests[0].headers.authorization).toBe('Bearer token-5ecret');
    expect(elsewhere.requests).toEqual([]);
    const rows = await duck(join(dir, 'warehouse.duckdb'), `SELECT apply_state, CAST(result AS VARCHAR) AS result FROM ebb.sync_record_history`);
    expect(rows.map((r) => r.apply_state)).toEqual(['FAILED', 'FAILED']);
    expect(String(rows[0].result)).toContain(`answered 308 with a redirect to ${elsewhere.url}/hook, which ebb does not follow`);
  });
});

describe('URLs', () => {
  it('a warehouse value in a path is one segment: "/", "?", ".." cannot change the path or add a query', async () => {
    const app = await server();
    const p = await project({
      config: { base_url: `${app.url}/` },
      requests: { update: { ...update, path: '/contacts/{{ key }}' } },
      strategy: 'update',
    });
    const c1 = app.insert({ email: 'ann@x.io', name: 'Ann' });
    await p.load([
      { id: c1, email: 'ann@x.io', name: 'Ann 2' },
      { id: `${c1}?admin=1`, email: 'x1@x.io', name: 'X' },
      { id: `../${c1}`, email: 'x2@x.io', name: 'X' },
      { id: `a/b#c`, email: 'x3@x.io', name: 'X' },
      { id: '..', email: 'x4@x.io', name: 'X' },
    ]);
    await p.run(2);
    expect(app.requests.map((r) => `${r.method} ${r.path}`).sort()).toEqual(
      [`PATCH /contacts/${c1}`, `PATCH /contacts/${c1}%3Fadmin%3D1`, `PATCH /contacts/..%2F${c1}`, 'PATCH /contacts/a%2Fb%23c'].sort(),
    );
    // Only its own record changed contact c1.
    expect(app.contacts.get(c1)).toEqual({ email: 'ann@x.io', name: 'Ann 2' });
    const history = await p.lastRun();
    expect(history[c1].state).toBe('SUCCESS');
    expect(history['..']).toMatchObject({ state: 'FAILED' });
    expect(history['..'].result.error).toEqual({ kind: 'rejected', message: `cannot render requests.update.path: {{ key }} is "..", which cannot be a URL path segment` });
  });

  it('a rendered URL never leaves base_url: ebb validate reports a path that would, and a run refuses the records whose `| safe` value does', async () => {
    const app = await server();
    const base = `${app.url}/contacts`;
    const escape = await project({ config: { base_url: base }, requests: { update: { ...update, path: '/../admin/{{ app_id }}' } }, strategy: 'update' });
    await escape.load([{ id: '1', email: 'ann@x.io', name: 'Ann' }]);
    const validated = await ebb(escape.dir, ['validate']);
    expect(validated.code, validated.stderr).toBe(3);
    expect(validated.stderr).toContain(
      `syncs[0].destination.requests.update.path: requests.update.path renders /../admin/sample-id, which leads to ${app.url}/admin/sample-id, outside base_url ${base}; ebb only sends requests under base_url`,
    );

    const c1 = app.insert({ email: 'ann@x.io', name: 'Ann' });
    const p = await project({ config: { base_url: base }, requests: { update: { ...update, path: '/{{ record.name | safe }}' } }, strategy: 'update', mapping: { name: 'id' } });
    await p.load([
      { id: c1, email: '', name: '' },
      { id: `../../admin`, email: '', name: '' },
    ]);
    await p.run(2);
    expect(app.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`PATCH /contacts/${c1}`]);
    expect((await p.lastRun())['../../admin'].result.error).toEqual({
      kind: 'rejected',
      message: `requests.update.path renders /../../admin, which leads to ${app.url}/admin, outside base_url ${base}; ebb only sends requests under base_url`,
    });
  });
});

describe('templates', () => {
  it('ebb validate reports every undefined variable, unknown filter and syntax error with its path (exit 3); ebb run sends nothing', async () => {
    const app = await server();
    const p = await project({
      config: { base_url: app.url },
      requests: {
        create: { ...create, body: '{{ recrod | tojson }}', headers: { 'x-name': '{{ record.nmae }}' } },
        update: { ...update, body: '{{ record | tojson }', app_id: '{{ response.id | nosuch }}' },
        delete: { method: 'DELETE', path: '/contacts/{{ app_id }}/{{ missing }}' },
      },
      strategy: 'mirror',
    });
    await p.load([{ id: '1', email: 'ann@x.io', name: 'Ann' }]);
    const validated = await ebb(p.dir, ['validate']);
    expect(validated.code, validated.stderr).toBe(3);
    const problems = validated.stderr.split('\n').filter((l) => l.startsWith('  syncs['));
    expect(problems).toEqual([
      '  syncs[0].destination.requests.create.headers.x-name: undefined variable "record.nmae"',
      '  syncs[0].destination.requests.create.body: undefined variable "recrod"',
      expect.stringMatching(/^ {2}syncs\[0\]\.destination\.requests\.update\.body: .*\(line 1, column \d+\)$/) as unknown,
      '  syncs[0].destination.requests.update.app_id: filter not found: nosuch',
      '  syncs[0].destination.requests.delete.path: undefined variable "missing"',
    ]);
    const run = await ebb(p.dir, ['run', 's']);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain('syncs[0].destination.requests.create.body: undefined variable "recrod"');
    expect(app.requests).toEqual([]);
  });

  it('ebb validate checks a webhook body template the same way', async () => {
    const dir = await makeProject({
      version: 1,
      name: 'hooks',
      warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
      connections: { hook: { plugin: 'webhook', config: { url: 'http://127.0.0.1:9/hook', secret: 'a-secret-of-16-chars-or-more' } } },
      syncs: [
        {
          name: 'h',
          source: { table: 'contacts', key: 'id' },
          destination: { connection: 'hook', object: 'contacts', body: '{"email": {{ record.emial | tojson }}, "at": {{ sent_at | tojson }}}' },
          strategy: 'send',
          mapping: { email: 'email' },
        },
      ],
    });
    await duck(join(dir, 'warehouse.duckdb'), `CREATE TABLE contacts AS SELECT 1 AS id, 'ann@x.io' AS email`);
    const validated = await ebb(dir, ['validate']);
    expect(validated.code, validated.stderr).toBe(3);
    expect(validated.stderr).toContain('syncs[0].destination.body: undefined variable "record.emial"');
  });

  it('a null field still renders empty', async () => {
    const app = await server();
    const p = await project({ config: { base_url: app.url }, requests: { create: { ...create, body: '{"email": "{{ record.email }}", "name": "{{ record.name }}"}' } }, strategy: 'create' });
    await p.load([{ id: '1', email: 'ann@x.io', name: 'Ann' }]);
    await duck(p.db, `UPDATE contacts SET name = NULL`);
    const validated = await ebb(p.dir, ['validate']);
    expect(validated.code, validated.stderr).toBe(0);
    await p.run(0);
    expect(app.requests.map((r) => r.records)).toEqual([[{ email: 'ann@x.io', name: '' }]]);
  });
});

describe('answers', () => {
  it('a create whose app_id renders empty (a non-JSON 200) is in doubt, never SUCCESS without an id nor sent again blindly; a lookup settles it', async () => {
    const app = await server([{ kind: 'text', status: 200, text: '<html>Saved!</html>', afterApply: true, firstRequests: 1 }]);
    const lookup = { method: 'GET', path: '/contacts?email={{ record.email | urlencode }}', app_id: '{{ response.id }}' };
    const p = await project({ config: { base_url: app.url }, requests: { create, update } });
    await p.load([{ id: '1', email: 'ann@x.io', name: 'Ann' }]);
    // Its one record ended in doubt, none succeeded: FAILED (exit 1).
    const run = await p.run(1);
    expect(run.counts).toMatchObject({ succeeded: 0, failed: 0, needs_review: 1 });
    const [first] = Object.values(await p.lastRun());
    expect(first).toMatchObject({ state: 'NEEDS_REVIEW', appId: null, result: { response: { status: 200, body: '<html>Saved!</html>' } } });
    expect(first.result.error).toEqual({
      kind: 'rejected',
      noAnswer: 'sent',
      message:
        'POST /contacts answered 200, but requests.create.app_id ({{ response.id }}) rendered empty: the answer is not JSON (<html>Saved!</html>). ' +
        "Without the record's identifier, ebb could not update or delete it later; make app_id read the identifier from the answer",
    });

    // Without a way to find it, the next run leaves it in doubt (INCOMPLETE, exit 2): the create is not sent again.
    expect((await p.run(2)).health).toBe('INCOMPLETE');
    expect(app.requests).toHaveLength(1);

    // With requests.lookup, the next run finds the contact the app holds, takes its id and updates it: one contact, no duplicate.
    const yml = parseDocument(await readFile(join(p.dir, 'ebb.yml'), 'utf8'));
    yml.setIn(['syncs', 0, 'destination', 'requests', 'lookup'], lookup);
    await writeFile(join(p.dir, 'ebb.yml'), yml.toString());
    await p.run(0);
    const id = app.idOf('ann@x.io')!;
    expect(await duck(p.db, `SELECT apply_state, app_identifier FROM ebb.sync_record_state`)).toEqual([{ apply_state: 'SUCCESS', app_identifier: id }]);
    expect(app.requests.map((r) => `${r.method} ${r.path.split('?')[0]} ${String(r.answer)}`)).toEqual(['POST /contacts 200', 'GET /contacts 200', `PATCH /contacts/${id} 200`]);
    expect(app.createdPerEmail().get('ann@x.io')).toBe(1);
  });

  it('an update of a record whose app_id ebb does not know is refused, never sent to the collection URL', async () => {
    const app = await server();
    const p = await project({ config: { base_url: app.url }, requests: { create, update } });
    await p.load([{ id: '1', email: 'ann@x.io', name: 'Ann' }]);
    await p.run(0);
    // A record that an older ebb recorded as created without an identifier.
    await duck(p.db, `UPDATE ebb.sync_record_state SET app_identifier = NULL`);
    await duck(p.db, `UPDATE contacts SET name = 'Annie'`);
    await p.run(1);
    expect(app.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /contacts']);
    expect((await p.lastRun())['1'].result.error).toEqual({
      kind: 'rejected',
      message: 'cannot render requests.update.path: {{ app_id }} is empty, and a URL path segment needs a value',
    });
  });

  it('a single request can declare how the app signals an error inside a 2xx answer', async () => {
    const app = await server([{ kind: 'text', status: 200, text: '{"ok": false, "error": "quota exceeded"}', match: /^PATCH /, firstRequests: 1 }]);
    const p = await project({ config: { base_url: app.url }, requests: { create: { ...create, error: '{{ response.error }}' }, update: { ...update, error: '{{ response.error }}' } } });
    await p.load([{ id: '1', email: 'ann@x.io', name: 'Ann' }]);
    await p.run(0);
    await duck(p.db, `UPDATE contacts SET name = 'Annie'`);
    await p.run(1);
    expect((await p.lastRun())['1']).toMatchObject({ state: 'FAILED', result: { error: { kind: 'rejected', message: 'quota exceeded' } } });
    await p.run(0);
    expect(app.contacts.get(app.idOf('ann@x.io')!)).toEqual({ email: 'ann@x.io', name: 'Annie' });
  });

  it('an answer is read up to 1 MiB: a longer one is cut, noted in the result, and cannot give an identifier', async () => {
    const huge = `{"id": "c1", "padding": "${'x'.repeat(3 * 1024 * 1024)}"}`;
    const app = await server([{ kind: 'text', status: 201, text: huge, match: /^POST / }]);
    const p = await project({ config: { base_url: app.url }, requests: { create }, strategy: 'create' });
    await p.load([{ id: '1', email: 'ann@x.io', name: 'Ann' }]);
    await p.run(1);
    const { result } = (await p.lastRun())['1'];
    expect(result.error?.message).toMatch(/^POST \/contacts answered 201, but requests\.create\.app_id \(\{\{ response\.id \}\}\) rendered empty: the answer was cut at 1048576 bytes\./);
    expect(result.response).toEqual({ status: 201, body: `${huge.slice(0, 4096)}… (truncated; the answer was longer than 1048576 bytes, and ebb read no further)` });
  });

  it('a compressed answer (a connection header may ask for one) is inflated before it is read', async () => {
    const seen: Array<string | undefined> = [];
    const app = createServer((req, res) => {
      seen.push(req.headers['accept-encoding']);
      req.resume().on('end', () => {
        res.writeHead(201, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        res.end(gzipSync(JSON.stringify({ id: `c-${seen.length}`, padding: 'x'.repeat(10_000) })));
      });
    });
    await new Promise<void>((done) => app.listen(0, '127.0.0.1', done));
    try {
      const p = await project({ config: { base_url: `http://127.0.0.1:${(app.address() as AddressInfo).port}`, headers: { 'accept-encoding': 'gzip' } }, requests: { create }, strategy: 'create' });
      await p.load([{ id: '1', email: 'ann@x.io', name: 'Ann' }]);
      await p.run(0);
      expect(seen).toEqual(['gzip']);
      expect((await p.lastRun())['1']).toMatchObject({ state: 'SUCCESS', appId: 'c-1' });
    } finally {
      await new Promise((done) => app.close(done));
    }
  });
});
