/**
 * `ebb serve` and its REST API, against a real server (real HTTP on a free port) over a real DuckDB
 * project. Every answer is checked against the server's own OpenAPI document (test/support/api.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { duck, ebb, makeProject, repoRoot } from './support/project.ts';
import { documentOf, startServer, type TestServer } from './support/api.ts';
import { until } from './support/wait.ts';
import { loadProject } from '../engine/config/load.ts';
import { createServer } from '../engine/server/server.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** An app of items whose every answer waits `delayMs`, so that a run lasts long enough to be watched and cancelled. */
async function itemsApp(delayMs: number): Promise<{ url: string; requests: Array<{ start: number; end: number }> }> {
  const requests: Array<{ start: number; end: number }> = [];
  let next = 1;
  const server = createHttpServer((req, res) => {
    const start = Date.now();
    req.resume();
    req.on('end', () => {
      setTimeout(() => {
        requests.push({ start, end: Date.now() });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: String(next++) }));
      }, delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

/** The sync `slow`: one record per request to the items app, one request at a time. */
function slowSync(schedule: unknown = 'manual') {
  return {
    name: 'slow',
    source: { table: 'people', key: 'id' },
    destination: {
      connection: 'app',
      object: 'items',
      requests: { create: { method: 'POST', path: '/items', body: '{{ record | tojson }}', app_id: '{{ response.id }}' }, update: { method: 'PUT', path: '/items/{{ app_id }}', body: '{{ record | tojson }}' } },
    },
    strategy: 'upsert',
    mapping: { id: 'id', name: 'name' },
    batch_size: 1,
    schedule,
  };
}

/** A project with syncs of a `people` table to JSONL files (and `slow`, to the items app, when given its URL). */
async function fileProject(rows = 3, slow?: { url: string; schedule?: unknown }): Promise<{ dir: string; db: string }> {
  const sync = (name: string, tags: string[]) => ({
    name,
    tags,
    source: { table: 'people', key: 'id' },
    destination: { connection: 'out', object: `${name}.jsonl` },
    strategy: 'upsert',
    mapping: { id: 'id', name: 'name' },
  });
  const dir = await makeProject({
    version: 1,
    name: 'served',
    warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
    connections: {
      out: { plugin: 'file', config: { directory: './out' } },
      ...(slow && { app: { plugin: 'http', config: { base_url: slow.url }, concurrency: 1, retry: { delays_seconds: [] } } }),
    },
    syncs: [sync('people_a', ['daily']), sync('people_b', ['hourly', 'daily']), ...(slow ? [slowSync(slow.schedule)] : [])],
  });
  const db = join(dir, 'warehouse.duckdb');
  await duck(db, `CREATE TABLE people AS SELECT range AS id, 'person ' || range AS name FROM range(${rows})`);
  return { dir, db };
}

async function serve(dir: string, options: Parameters<typeof startServer>[1] = {}): Promise<TestServer> {
  const server = await startServer(dir, options);
  cleanups.push(() => server.close());
  return server;
}

describe('the OpenAPI document and the docs page', () => {
  it('is a valid OpenAPI 3.1 document, and the docs page and its assets are served without a CDN', async () => {
    const { dir } = await fileProject();
    const api = await serve(dir);
    const doc = await documentOf(api.url);
    expect(doc.errors).toBeUndefined();
    expect(doc.valid).toBe(true);
    expect(doc.raw.openapi).toBe('3.1.0');
    const page = await fetch(`${api.url}/api/v1/docs`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('/api/v1/openapi.json');
    expect(html).not.toMatch(/https?:\/\//);
    const bundle = await fetch(`${api.url}/api/v1/docs/swagger-ui-bundle.js`);
    expect(bundle.status).toBe(200);
    expect((await bundle.text()).length).toBeGreaterThan(100_000);
  });

  it('answers an unknown endpoint with a problem+json 404', async () => {
    const { dir } = await fileProject();
    const api = await serve(dir);
    const answer = await fetch(`${api.url}/api/v1/nothing-here`);
    expect(answer.status).toBe(404);
    expect(answer.headers.get('content-type')).toContain('application/problem+json');
    expect(await answer.json()).toMatchObject({ type: 'urn:ebb:problem:not-found', status: 404, detail: expect.stringContaining('/api/v1/openapi.json') });
  });
});

/**
 * Runs SQL on the warehouse file from another process, as another ebb would: DuckDB must not open
 * a file twice in one process, and the server under test may open it at any time.
 */
function inAnotherProcess(db: string, sql: string): Promise<void> {
  const script = `import { DuckDBInstance } from '@duckdb/node-api'; const i = await DuckDBInstance.create(${JSON.stringify(db)}); const c = await i.connect(); await c.run(${JSON.stringify(sql)}); c.closeSync(); i.closeSync();`;
  return new Promise((resolve, reject) => execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot }, (error) => (error ? reject(error) : resolve())));
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- answers are checked against the document first (support/api.ts)

/** Triggers a run and waits for its end; returns the run as GET /runs/{id} shows it. */
async function runToEnd(api: TestServer, sync: string, body?: Json): Promise<Json> {
  const started = await api.call<Json>('POST', `/api/v1/syncs/${sync}/runs`, { body });
  expect(started.status, JSON.stringify(started.body)).toBe(202);
  return until(`the end of ${started.body.run_id}`, async () => {
    const run = await api.call<Json>('GET', started.body.url);
    return run.body.status !== 'RUNNING' ? run.body : undefined;
  });
}

describe('syncs, runs, records and plans', () => {
  it('lists the syncs with their state, filtered and paginated, and shows one in full', async () => {
    const { dir } = await fileProject();
    const api = await serve(dir);
    const before = await api.call<Json>('GET', '/api/v1/syncs');
    expect(before.status).toBe(200);
    expect(before.body.items.map((s: Json) => [s.sync_name, s.status, s.health])).toEqual([
      ['people_a', 'NOT DEPLOYED', 'PENDING'],
      ['people_b', 'NOT DEPLOYED', 'PENDING'],
    ]);
    const run = await runToEnd(api, 'people_a');
    expect(run).toMatchObject({ sync_name: 'people_a', trigger: 'api', status: 'HEALTHY', succeeded: 3, phase: null, progress: null });
    const all = await api.call<Json>('GET', '/api/v1/syncs');
    const a = all.body.items.find((s: Json) => s.sync_name === 'people_a');
    expect(a).toMatchObject({ status: 'ACTIVE', health: 'HEALTHY', last_run_id: run.run_id, records: 3, failing_records: 0, tags: ['daily'] });
    expect((await api.call<Json>('GET', '/api/v1/syncs?tag=hourly')).body.items.map((s: Json) => s.sync_name)).toEqual(['people_b']);
    expect((await api.call<Json>('GET', '/api/v1/syncs?health=HEALTHY')).body.items.map((s: Json) => s.sync_name)).toEqual(['people_a']);
    expect((await api.call<Json>('GET', '/api/v1/syncs?status=ACTIVE&tag=daily')).body.items.map((s: Json) => s.sync_name)).toEqual(['people_a', 'people_b']);
    const first = await api.call<Json>('GET', '/api/v1/syncs?limit=1');
    expect(first.body).toMatchObject({ limit: 1, offset: 0, next_offset: 1, items: [{ sync_name: 'people_a' }] });
    const second = await api.call<Json>('GET', '/api/v1/syncs?limit=1&offset=1');
    expect(second.body).toMatchObject({ next_offset: null, items: [{ sync_name: 'people_b' }] });
    const one = await api.call<Json>('GET', '/api/v1/syncs/people_a');
    expect(one.body).toMatchObject({ sync_name: 'people_a', status: 'ACTIVE', health: 'HEALTHY', origin: 'code', records: 3, code: { name: 'people_a' }, deployed: { name: 'people_a' } });
    const missing = await api.call<Json>('GET', '/api/v1/syncs/nope');
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ type: 'urn:ebb:problem:not-found', detail: expect.stringContaining('nope') });
  });

  it('triggers runs, lists them paginated, and shows each', async () => {
    const { dir } = await fileProject();
    const api = await serve(dir);
    const started = await api.call<Json>('POST', '/api/v1/syncs/people_a/runs');
    expect(started.status).toBe(202);
    expect(started.headers.get('location')).toBe(`/api/v1/runs/${started.body.run_id}`);
    expect(started.body).toMatchObject({ sync_name: 'people_a', status: 'RUNNING', url: `/api/v1/runs/${started.body.run_id}` });
    await until('the first run to end', async () => (await api.call<Json>('GET', started.body.url)).body.status !== 'RUNNING');
    const resync = await runToEnd(api, 'people_a', { full_resync: true });
    expect(resync).toMatchObject({ status: 'HEALTHY', planned: { update: 3 }, succeeded: 3 });
    await runToEnd(api, 'people_a');
    const page = await api.call<Json>('GET', '/api/v1/syncs/people_a/runs?limit=2');
    expect(page.body.items).toHaveLength(2);
    expect(page.body.next_offset).toBe(2);
    expect(page.body.items[1].run_id).toBe(resync.run_id);
    const last = await api.call<Json>('GET', '/api/v1/syncs/people_a/runs?limit=2&offset=2');
    expect(last.body).toMatchObject({ next_offset: null, items: [{ run_id: started.body.run_id, trigger: 'api', status: 'HEALTHY', planned: { create: 3 } }] });
    expect(last.body.items[0].duration_s).toBeGreaterThanOrEqual(0);
    expect((await api.call<Json>('GET', '/api/v1/syncs/nope/runs')).status).toBe(404);
    expect((await api.call<Json>('GET', '/api/v1/runs/nope')).body).toMatchObject({ status: 404, type: 'urn:ebb:problem:not-found' });
    expect((await api.call<Json>('POST', '/api/v1/syncs/nope/runs')).body).toMatchObject({ status: 404, type: 'urn:ebb:problem:not-found' });
  });

  it("shows a sync's records by state and key, paginated, and each record's history", async () => {
    const { dir } = await fileProject(12);
    const api = await serve(dir);
    await runToEnd(api, 'people_a');
    await runToEnd(api, 'people_a', { full_resync: true });
    const records = await api.call<Json>('GET', '/api/v1/syncs/people_a/records?limit=5');
    expect(records.body.items).toHaveLength(5);
    expect(records.body.next_offset).toBe(5);
    expect(records.body.items[0]).toMatchObject({ apply_state: 'SUCCESS', transformed_record: { name: expect.stringMatching(/^person /) } });
    expect((await api.call<Json>('GET', '/api/v1/syncs/people_a/records?offset=10&limit=5')).body).toMatchObject({ next_offset: null, items: [{}, {}] });
    expect((await api.call<Json>('GET', '/api/v1/syncs/people_a/records?apply_state=FAILED,DELAYED')).body.items).toEqual([]);
    expect((await api.call<Json>('GET', '/api/v1/syncs/people_a/records?apply_state=SUCCESS&key=11')).body.items.map((r: Json) => r.record_key)).toEqual(['11']);
    const history = await api.call<Json>('GET', '/api/v1/syncs/people_a/records/7/history');
    expect(history.body.items.map((h: Json) => [h.action, h.apply_reason, h.success])).toEqual([
      ['update', 'FULL_RESYNC', true],
      ['create', 'NEW', true],
    ]);
    expect(history.body.items[1].transformed_record).toEqual({ id: 7, name: 'person 7' });
    expect((await api.call<Json>('GET', '/api/v1/syncs/people_a/records/7/history?limit=1')).body).toMatchObject({ next_offset: 1, items: [{ action: 'update' }] });
    expect((await api.call<Json>('GET', '/api/v1/syncs/nope/records')).status).toBe(404);
  });

  it('plans a sync as `ebb plan` does, sending nothing', async () => {
    const { dir } = await fileProject(4);
    const api = await serve(dir);
    const plan = await api.call<Json>('GET', '/api/v1/syncs/people_b/plan?limit=2');
    expect(plan.status).toBe(200);
    expect(plan.body).toMatchObject({ sync: 'people_b', strategy: 'upsert', actions: { create: 4 }, reasons: { NEW: 4 }, total: 4 });
    expect(plan.body.samples).toHaveLength(2);
    expect((await api.call<Json>('GET', '/api/v1/syncs/people_b/runs')).body.items).toEqual([]);
    expect((await api.call<Json>('GET', '/api/v1/syncs/nope/plan')).status).toBe(404);
  });

  it('answers a bad request with 422 and the path of each problem', async () => {
    const { dir } = await fileProject();
    const api = await serve(dir);
    const limit = await api.call<Json>('GET', '/api/v1/syncs?limit=0');
    expect(limit.status).toBe(422);
    expect(limit.body).toMatchObject({ type: 'urn:ebb:problem:invalid-request', errors: [{ path: 'query.limit' }] });
    const body = await api.call<Json>('POST', '/api/v1/syncs/people_a/runs', { body: { full_resync: 'yes' } });
    expect(body.status).toBe(422);
    expect(body.body.errors).toEqual([expect.objectContaining({ path: 'json.full_resync' })]);
    const malformed = await api.call<Json>('POST', '/api/v1/syncs/people_a/runs', { body: undefined, headers: { 'content-type': 'application/json' } });
    expect(malformed.status).toBe(422);
  });
});

describe("an admin's changes", () => {
  it('sets overrides checked as ebb.yml is, pauses and resumes, and reverts', async () => {
    const { dir } = await fileProject();
    const api = await serve(dir);
    await runToEnd(api, 'people_a');
    const paused = await api.call<Json>('PATCH', '/api/v1/syncs/people_a', { body: { status: 'PAUSED' } });
    expect(paused.status).toBe(200);
    expect(paused.body).toMatchObject({ sync_name: 'people_a', status: 'PAUSED', overrides: { status: 'PAUSED' } });
    const refused = await api.call<Json>('POST', '/api/v1/syncs/people_a/runs');
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ type: 'urn:ebb:problem:run-refused', reason: 'paused' });
    const bad = await api.call<Json>('PATCH', '/api/v1/syncs/people_a', { body: { batch_size: 0, schedule: { every: 'often' } } });
    expect(bad.status).toBe(422);
    expect(new Set(bad.body.errors.map((e: Json) => e.path.split('.').slice(0, 2).join('.')))).toEqual(new Set(['json.batch_size', 'json.schedule']));
    expect(bad.body.detail).toContain('expected a positive integer');
    expect((await api.call<Json>('PATCH', '/api/v1/syncs/people_a', { body: { colour: 'red' } })).status).toBe(422);
    const set = await api.call<Json>('PATCH', '/api/v1/syncs/people_a', { body: { schedule: { every: '15m' }, batch_size: 10, rate_limit: { requests: 5, per_seconds: 1 } } });
    expect(set.body).toMatchObject({ status: 'PAUSED', overrides: { status: 'PAUSED', schedule: { every: '15m' }, batch_size: 10, rate_limit: { requests: 5, per_seconds: 1 } } });
    const resumed = await api.call<Json>('PATCH', '/api/v1/syncs/people_a', { body: { status: null, batch_size: null } });
    expect(resumed.body).toMatchObject({ status: 'ACTIVE', overrides: { schedule: { every: '15m' }, rate_limit: { requests: 5, per_seconds: 1 } } });
    expect(resumed.body.overrides).not.toHaveProperty('batch_size');
    expect((await api.call<Json>('GET', '/api/v1/syncs?tag=daily')).body.items.find((s: Json) => s.sync_name === 'people_a').schedule).toBe('{"every":"15m"}');
    const reverted = await api.call<Json>('POST', '/api/v1/syncs/people_a/revert');
    expect(reverted.body).toMatchObject({ status: 'ACTIVE', overrides: {} });
    expect((await api.call<Json>('PATCH', '/api/v1/syncs/nope', { body: { status: 'PAUSED' } })).status).toBe(404);
    expect((await api.call<Json>('POST', '/api/v1/syncs/nope/revert')).status).toBe(404);
  });

  it('deletes a sync only when confirmed with its name', async () => {
    const { dir } = await fileProject();
    const api = await serve(dir);
    await runToEnd(api, 'people_a');
    for (const query of ['', '?confirm=true', '?confirm=people_b']) {
      const refused = await api.call<Json>('DELETE', `/api/v1/syncs/people_a${query}`);
      expect(refused.status, query).toBe(422);
      expect(refused.body).toMatchObject({ type: 'urn:ebb:problem:confirmation-required', detail: expect.stringContaining('?confirm=people_a') });
    }
    expect((await api.call<Json>('GET', '/api/v1/syncs/people_a')).body.records).toBe(3);
    const deleted = await api.call<Json>('DELETE', '/api/v1/syncs/people_a?confirm=people_a');
    expect(deleted.status).toBe(200);
    expect(deleted.body).toEqual({ sync: 'people_a', records: 3 });
    // Still in ebb.yml: it is listed as not deployed, without state.
    expect((await api.call<Json>('GET', '/api/v1/syncs/people_a')).body).toMatchObject({ status: 'NOT DEPLOYED', records: 0 });
    expect((await api.call<Json>('DELETE', '/api/v1/syncs/nope?confirm=nope')).status).toBe(404);
  });

  it('resyncs and skips records, traced in their history', async () => {
    const { dir } = await fileProject(4);
    const api = await serve(dir);
    await runToEnd(api, 'people_a');
    const resync = await api.call<Json>('POST', '/api/v1/syncs/people_a/records/resync', { body: { keys: ['1'] } });
    expect(resync.status).toBe(200);
    expect(resync.body).toEqual({ sync: 'people_a', marked: 1, in_doubt: [] });
    expect((await api.call<Json>('GET', '/api/v1/syncs/people_a/records?apply_state=RESYNC_REQUESTED')).body.items.map((r: Json) => r.record_key)).toEqual(['1']);
    const skip = await api.call<Json>('POST', '/api/v1/syncs/people_a/records/skip', { body: { keys: ['2'], always: true } });
    expect(skip.body).toEqual({ sync: 'people_a', skipped: 1 });
    expect((await api.call<Json>('GET', '/api/v1/syncs/people_a/records/2/history')).body.items[0]).toMatchObject({ action: 'skip' });
    const run = await runToEnd(api, 'people_a');
    expect(run).toMatchObject({ status: 'HEALTHY', planned: { update: 1 } });
    const all = await api.call<Json>('POST', '/api/v1/syncs/people_a/records/resync');
    expect(all.body.marked).toBe(4);
    expect((await api.call<Json>('POST', '/api/v1/syncs/people_a/records/skip', { body: { keys: ['99'] } })).status).toBe(422);
    expect((await api.call<Json>('POST', '/api/v1/syncs/people_a/records/skip', { body: {} })).status).toBe(422);
    expect((await api.call<Json>('POST', '/api/v1/syncs/people_a/records/resync', { body: { keys: [] } })).status).toBe(422);
    expect((await api.call<Json>('POST', '/api/v1/syncs/nope/records/resync')).status).toBe(404);
  });

  it("shows the sync's audit trail, by run and failures", async () => {
    const { dir } = await fileProject(3);
    const api = await serve(dir);
    const first = await runToEnd(api, 'people_a');
    await runToEnd(api, 'people_a', { full_resync: true });
    const all = await api.call<Json>('GET', '/api/v1/syncs/people_a/history?limit=4');
    expect(all.body.items).toHaveLength(4);
    expect(all.body.next_offset).toBe(4);
    expect(all.body.items[0]).toMatchObject({ action: 'update', apply_reason: 'FULL_RESYNC' });
    const ofRun = await api.call<Json>('GET', `/api/v1/syncs/people_a/history?run_id=${first.run_id}`);
    expect(ofRun.body.items.map((h: Json) => [h.record_key, h.action, h.success]).sort()).toEqual([
      ['0', 'create', true],
      ['1', 'create', true],
      ['2', 'create', true],
    ]);
    expect((await api.call<Json>('GET', '/api/v1/syncs/people_a/history?failed=true')).body.items).toEqual([]);
    expect((await api.call<Json>('GET', '/api/v1/syncs/nope/history')).status).toBe(404);
  });

  it('refuses to resend records in doubt (409) and settles them', async () => {
    const { dir, db } = await fileProject(3);
    const api = await serve(dir);
    await runToEnd(api, 'people_a');
    await inAnotherProcess(db, `UPDATE ebb.sync_record_state SET apply_state = 'NEEDS_REVIEW' WHERE sync_name = 'people_a' AND record_key = '1'`);
    const refused = await api.call<Json>('POST', '/api/v1/syncs/people_a/records/resync', { body: { keys: ['1', '2'] } });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ type: 'urn:ebb:problem:records-in-doubt', keys: ['1'], detail: expect.stringContaining('ebb resolve') });
    expect((await api.call<Json>('GET', '/api/v1/syncs/people_a/records?apply_state=NEEDS_REVIEW')).body.items.map((r: Json) => r.record_key)).toEqual(['1']);
    expect((await api.call<Json>('POST', '/api/v1/syncs/people_a/records/resolve', { body: { keys: ['1'] } })).status).toBe(422);
    expect((await api.call<Json>('POST', '/api/v1/syncs/people_a/records/resolve', { body: { keys: ['2'], not_in_app: true } })).status).toBe(422);
    expect((await api.call<Json>('POST', '/api/v1/syncs/people_a/records/resolve', { body: { keys: ['1'], app_ids: ['a', 'b'] } })).status).toBe(422);
    const resolved = await api.call<Json>('POST', '/api/v1/syncs/people_a/records/resolve', { body: { keys: ['1'], app_ids: ['app-1'] } });
    expect(resolved.status).toBe(200);
    expect(resolved.body).toEqual({ sync: 'people_a', resolved: 1 });
    expect((await api.call<Json>('GET', '/api/v1/syncs/people_a/records?apply_state=NEEDS_REVIEW')).body.items).toEqual([]);
    expect((await api.call<Json>('GET', '/api/v1/syncs/people_a/records/1/history')).body.items[0]).toMatchObject({ action: 'resolve' });
  });

  it('deploys the project, or plans the deploy', async () => {
    const { dir } = await fileProject();
    const api = await serve(dir);
    const dry = await api.call<Json>('POST', '/api/v1/deploy', { body: { dry_run: true } });
    expect(dry.status).toBe(200);
    expect(dry.body).toMatchObject({ project: 'served', committed: false, tasks: null });
    expect(dry.body.steps.map((s: Json) => [s.sync, s.kind])).toEqual([
      ['people_a', 'new'],
      ['people_b', 'new'],
    ]);
    expect((await api.call<Json>('GET', '/api/v1/syncs?status=ACTIVE')).body.items).toEqual([]);
    const done = await api.call<Json>('POST', '/api/v1/deploy');
    expect(done.body.committed).toBe(true);
    expect((await api.call<Json>('GET', '/api/v1/syncs?status=ACTIVE')).body.items).toHaveLength(2);
  });
});

describe('a run in progress', () => {
  it('is shown with its phase and progress while other reads go on; a second trigger is a 409 naming it; a cancel leaves every record with an outcome', async () => {
    const app = await itemsApp(60);
    const { dir } = await fileProject(40, { url: app.url });
    const api = await serve(dir);
    const started = await api.call<Json>('POST', '/api/v1/syncs/slow/runs');
    expect(started.status).toBe(202);
    const runId = started.body.run_id;
    const applying = await until('some records sent', async () => {
      const run = (await api.call<Json>('GET', `/api/v1/runs/${runId}`)).body;
      return run.phase === 'apply' && run.progress.applied >= 3 ? run : undefined;
    });
    expect(applying).toMatchObject({ status: 'RUNNING', progress: { planned: 40 } });
    // Reads go on while the run holds the warehouse.
    const syncs = await api.call<Json>('GET', '/api/v1/syncs');
    expect(syncs.body.items.find((s: Json) => s.sync_name === 'slow')).toMatchObject({ status: 'ACTIVE' });
    const again = await api.call<Json>('POST', '/api/v1/syncs/slow/runs');
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ type: 'urn:ebb:problem:run-in-progress', reason: 'locked', run_id: runId, detail: expect.stringContaining(runId) });
    const cancelled = await api.call<Json>('POST', `/api/v1/runs/${runId}/cancel`);
    expect(cancelled.status).toBe(202);
    const ended = await until('the cancelled run to end', async () => {
      const run = (await api.call<Json>('GET', `/api/v1/runs/${runId}`)).body;
      return run.status !== 'RUNNING' ? run : undefined;
    });
    expect(ended).toMatchObject({ status: 'DELAYED', error: null, phase: null });
    expect(ended.delayed).toBeGreaterThan(0);
    expect(ended.succeeded + ended.delayed).toBe(40);
    expect(app.requests.length).toBe(ended.succeeded);
    const delayed = await api.call<Json>('GET', '/api/v1/syncs/slow/records?apply_state=DELAYED&limit=1000');
    const sent = await api.call<Json>('GET', '/api/v1/syncs/slow/records?apply_state=SUCCESS&limit=1000');
    expect(delayed.body.items.length + sent.body.items.length).toBe(40);
    expect([...delayed.body.items, ...sent.body.items].every((r: Json) => r.last_run_id === runId)).toBe(true);
    const late = await api.call<Json>('POST', `/api/v1/runs/${runId}/cancel`);
    expect(late.status).toBe(409);
    expect(late.body.type).toBe('urn:ebb:problem:run-finished');
    // The next run sends what the cancelled one did not.
    const next = await runToEnd(api, 'slow');
    expect(next).toMatchObject({ status: 'HEALTHY', succeeded: ended.delayed });
  });

  it('cancels a run of the in-process scheduler; a run of another process is refused with 409 run-elsewhere', async () => {
    const app = await itemsApp(60);
    const { dir, db } = await fileProject(40, { url: app.url, schedule: { every: '1h' } });
    const api = await serve(dir, { scheduler: { tickMs: 100, refreshMs: 200 } });
    // An admin's override makes the hourly sync due every second.
    await api.call('PATCH', '/api/v1/syncs/slow', { body: { schedule: { every: '1s' } } });
    const scheduled = await until('a scheduled run sending', async () => {
      const [run] = (await api.call<Json>('GET', '/api/v1/syncs/slow/runs?limit=1')).body.items;
      return run?.status === 'RUNNING' && app.requests.length >= 3 ? run : undefined;
    });
    expect(scheduled).toMatchObject({ trigger: 'schedule', phase: 'apply', progress: { planned: 40 } });
    // The scheduler is not to start the next one right away.
    await api.call('PATCH', '/api/v1/syncs/slow', { body: { schedule: 'manual' } });
    expect((await api.call<Json>('POST', `/api/v1/runs/${scheduled.run_id}/cancel`)).status).toBe(202);
    const ended = await until('the cancelled run to end', async () => {
      const run = (await api.call<Json>('GET', `/api/v1/runs/${scheduled.run_id}`)).body;
      return run.status !== 'RUNNING' ? run : undefined;
    });
    expect(ended).toMatchObject({ status: 'DELAYED', error: null });
    expect(ended.succeeded + ended.delayed).toBe(40);
    expect(ended.delayed).toBeGreaterThan(0);
    await api.close();
    // A run that another process has going (its row says RUNNING).
    await inAnotherProcess(db, `INSERT INTO ebb.sync_runs (run_id, sync_name, "trigger", status, started_at) VALUES ('elsewhere-1', 'slow', 'manual', 'RUNNING', now())`);
    const again = await serve(dir);
    const refused = await again.call<Json>('POST', '/api/v1/runs/elsewhere-1/cancel');
    expect(refused.status, JSON.stringify(refused.body)).toBe(409);
    expect(refused.body).toMatchObject({ type: 'urn:ebb:problem:run-elsewhere', detail: expect.stringContaining('SIGTERM') });
  });

  it('answers 503 warehouse-busy while another process holds the DuckDB file', async () => {
    const { dir, db } = await fileProject();
    const api = await serve(dir);
    const holder = spawn(process.execPath, ['--input-type=module', '-e', `import { DuckDBInstance } from '@duckdb/node-api'; await DuckDBInstance.create(${JSON.stringify(db)}); console.log('held'); setTimeout(() => {}, 60000);`], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(() => void holder.kill('SIGKILL'));
    await new Promise<void>((resolve) => holder.stdout!.once('data', () => resolve()));
    const before = process.env.EBB_BUSY_WAIT_SECONDS;
    process.env.EBB_BUSY_WAIT_SECONDS = '0.2';
    try {
      const busy = await api.call<Json>('GET', '/api/v1/syncs');
      expect(busy.status).toBe(503);
      expect(busy.headers.get('retry-after')).toBe('5');
      expect(busy.body).toMatchObject({ type: 'urn:ebb:problem:warehouse-busy', detail: expect.stringContaining(`PID ${holder.pid}`) });
    } finally {
      if (before === undefined) delete process.env.EBB_BUSY_WAIT_SECONDS;
      else process.env.EBB_BUSY_WAIT_SECONDS = before;
    }
    holder.kill('SIGKILL');
    await until('the file to be free', async () => ((await api.call('GET', '/api/v1/syncs')).status === 200 ? true : undefined));
  });

  it('never overlaps a scheduled run of the same sync: the in-process scheduler and manual triggers take turns', async () => {
    // Runs of about 1.2 s, due every second: the scheduler wants the sync whenever it is free.
    const app = await itemsApp(150);
    const { dir } = await fileProject(8, { url: app.url, schedule: { every: '1s' } });
    const api = await serve(dir, { scheduler: { tickMs: 100, refreshMs: 200 } });
    const answers = new Map<number, number>();
    // Eight seconds of manual triggers, and on until the scheduler has had its turn too (on a busy
    // machine the triggers can win every turn for a while), within half a minute.
    const deadline = Date.now() + 8000;
    const giveUp = Date.now() + 30_000;
    const scheduled = async () => ((await api.call<Json>('GET', '/api/v1/syncs/slow/runs?limit=50')).body.items as Array<{ trigger: string }>).some((r) => r.trigger === 'schedule');
    while (Date.now() < deadline || (Date.now() < giveUp && !(await scheduled()))) {
      const { status } = await api.call('POST', '/api/v1/syncs/slow/runs', { body: { full_resync: true } });
      answers.set(status, (answers.get(status) ?? 0) + 1);
      await sleep(400);
    }
    expect([...answers.keys()].sort()).toEqual([202, 409]);
    await until('the runs to end', async () => (await api.call<Json>('GET', '/api/v1/syncs/slow/runs?limit=1')).body.items[0].status !== 'RUNNING');
    await api.close();
    const runs = (await duck(join(dir, 'warehouse.duckdb'), `SELECT "trigger", started_at, finished_at FROM ebb.sync_runs WHERE sync_name = 'slow' ORDER BY started_at`)) as Array<{ trigger: string; started_at: Date; finished_at: Date }>;
    expect(new Set(runs.map((r) => r.trigger))).toEqual(new Set(['schedule', 'api']));
    for (let i = 1; i < runs.length; i++) expect(runs[i].started_at.getTime()).toBeGreaterThanOrEqual(runs[i - 1].finished_at.getTime());
    const requests = [...app.requests].sort((x, y) => x.start - y.start);
    for (let i = 1; i < requests.length; i++) expect(requests[i].start).toBeGreaterThanOrEqual(requests[i - 1].end);
  });
});

describe('the Airflow example (docs/airflow/ebb_api_dag.py)', () => {
  it('makes its requests as written: trigger with trigger airflow, then poll the run until it has ended', async () => {
    const dag = await readFile(join(repoRoot, 'docs', 'airflow', 'ebb_api_dag.py'), 'utf8');
    const tested = Object.fromEntries([...dag.matchAll(/^([A-Z_]+) = (.+?) {2}# tested$/gm)].map((m) => [m[1], m[2]]));
    const endpoint = /^f"(.+)"$/.exec(tested.TRIGGER_ENDPOINT)![1].replace('{SYNC}', 'people_a');
    const body = JSON.parse(/^json\.dumps\((.+)\)$/.exec(tested.TRIGGER_BODY)![1]) as Json;
    const ended = [...tested.ENDED.matchAll(/"([A-Z]+)"/g)].map((m) => m[1]);
    const { dir } = await fileProject();
    const api = await serve(dir);
    // HttpOperator: response_check (202) and response_filter (run_id).
    const started = await api.call<Json>('POST', endpoint, { body });
    expect(started.status).toBe(202);
    const runEndpoint = /^"(.+)"$/.exec(tested.RUN_ENDPOINT)![1].replace(/\{\{.+?\}\}/, started.body.run_id);
    // HttpSensor: polls until the status is one of ENDED.
    const run = await until('the run to end', async () => {
      const answer = await api.call<Json>('GET', runEndpoint);
      return ended.includes(answer.body.status) ? answer.body : undefined;
    });
    expect(run).toMatchObject({ sync_name: 'people_a', trigger: 'airflow', status: 'HEALTHY' });
    // Every status a run can end with is one the DAG knows.
    const doc = (await documentOf(api.url)).raw as Json;
    const statuses: Array<string | null> = doc.components.schemas.Run.properties.status.enum;
    expect(new Set(statuses.filter((s) => s !== null && s !== 'RUNNING'))).toEqual(new Set(ended));
  });
});

describe('/metrics', () => {
  it('serves runs by sync and status, records by outcome, health, failing records, duration and last success in the Prometheus format', async () => {
    const { dir } = await fileProject(5);
    const api = await serve(dir);
    const before = Date.now() / 1000;
    await runToEnd(api, 'people_a');
    await runToEnd(api, 'people_a');
    const answer = await fetch(`${api.url}/metrics`);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await answer.text();
    const value = (series: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    expect(text).toContain('# TYPE ebb_sync_runs gauge');
    expect(value('ebb_sync_runs{sync="people_a",status="HEALTHY"}')).toBe(2);
    expect(value('ebb_sync_records{sync="people_a",apply_state="SUCCESS"}')).toBe(5);
    expect(value('ebb_sync_failing_records{sync="people_a"}')).toBe(0);
    expect(value('ebb_sync_health{sync="people_a",health="HEALTHY"}')).toBe(1);
    expect(value('ebb_sync_health{sync="people_b",health="PENDING"}')).toBe(1);
    expect(value('ebb_sync_paused{sync="people_a"}')).toBe(0);
    expect(value('ebb_sync_last_run_duration_seconds{sync="people_a"}')).toBeGreaterThanOrEqual(0);
    expect(value('ebb_sync_last_success_timestamp_seconds{sync="people_a"}')).toBeGreaterThanOrEqual(Math.floor(before) - 1);
    expect(value('ebb_sync_last_success_timestamp_seconds{sync="people_b"}')).toBeUndefined();
  });
});

describe('read-only mode', () => {
  it('refuses every change with 403 and answers every read', async () => {
    const app = await itemsApp(1);
    const { dir } = await fileProject(3, { url: app.url });
    const api = await serve(dir, { readOnly: true });
    for (const [method, path] of [
      ['POST', '/api/v1/syncs/people_a/runs'],
      ['POST', '/api/v1/runs/x/cancel'],
      ['PATCH', '/api/v1/syncs/people_a'],
      ['POST', '/api/v1/syncs/people_a/revert'],
      ['DELETE', '/api/v1/syncs/people_a?confirm=people_a'],
      ['POST', '/api/v1/syncs/people_a/records/resync'],
      ['POST', '/api/v1/syncs/people_a/records/skip'],
      ['POST', '/api/v1/syncs/people_a/records/resolve'],
      ['POST', '/api/v1/deploy'],
    ]) {
      const answer = await api.call<Json>(method, path);
      expect(answer.status, `${method} ${path}`).toBe(403);
      expect(answer.body).toMatchObject({ type: 'urn:ebb:problem:read-only', status: 403 });
    }
    expect((await api.call('GET', '/api/v1/syncs')).status).toBe(200);
    expect((await api.call('GET', '/api/v1/syncs/people_a/plan')).status).toBe(200);
    expect(app.requests).toEqual([]);
  });
});

describe('the token', () => {
  it('refuses to listen beyond loopback without a token', async () => {
    const { dir } = await fileProject();
    const server = createServer({ project: await loadProject(dir), log: () => undefined });
    cleanups.push(() => server.close());
    await expect(server.listen({ host: '0.0.0.0', port: 0 })).rejects.toThrow(/refusing to listen on 0\.0\.0\.0 without a token.*EBB_SERVER_TOKEN/);
  });

  it('says so when the port is taken', async () => {
    const { dir } = await fileProject();
    const api = await serve(dir);
    const port = Number(new URL(api.url).port);
    const second = createServer({ project: await loadProject(dir), log: () => undefined });
    cleanups.push(() => second.close());
    await expect(second.listen({ port })).rejects.toThrow(`port ${port} on 127.0.0.1 is in use (another ebb serve?)`);
  });

  it('with a token, every API request and /metrics needs it as a bearer token; the docs page does not', async () => {
    const { dir } = await fileProject();
    const token = 'a-long-random-token-0123456789';
    const api = await serve(dir, { token });
    for (const path of ['/api/v1/openapi.json', '/metrics']) {
      for (const authorization of [undefined, 'Bearer wrong', `Basic ${token}`, 'Bearer ', `Bearer ${token}x`]) {
        const answer = await fetch(api.url + path, { headers: authorization ? { authorization } : {} });
        expect(answer.status, `${path} with ${authorization}`).toBe(401);
        expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer/);
        expect(await answer.json()).toMatchObject({ type: 'urn:ebb:problem:unauthorized', status: 401 });
      }
    }
    expect((await fetch(`${api.url}/api/v1/openapi.json`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect((await fetch(`${api.url}/api/v1/docs`)).status).toBe(200);
  });
});

describe('ebb serve, the command', () => {
  const bin = join(repoRoot, 'bin', 'ebb.js');

  it('refuses --host 0.0.0.0 without EBB_SERVER_TOKEN, with exit 3 and what to do', async () => {
    const { dir } = await fileProject();
    const result = await ebb(dir, ['serve', '--host', '0.0.0.0', '--port', '0'], { EBB_SERVER_TOKEN: '' });
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/^error: refusing to listen on 0\.0\.0\.0 without a token/);
    expect(result.stderr).toContain('EBB_SERVER_TOKEN');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('serves the API from a process, with the token beyond loopback, and stops on SIGTERM', async () => {
    const { dir } = await fileProject();
    const token = 'process-token-0123456789abcdef';
    const child = spawn(process.execPath, [bin, 'serve', '--project-dir', dir, '--host', '0.0.0.0', '--port', '0'], { env: { ...process.env, EBB_SERVER_TOKEN: token }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    cleanups.push(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let log = '';
    child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no address in the log: ${log}`)), 20_000);
      child.stderr!.on('data', () => {
        const found = /is at (http:\/\/\S+?)\/ /.exec(log);
        if (found) {
          clearTimeout(timer);
          resolve(found[1].replace('0.0.0.0', '127.0.0.1'));
        }
      });
    });
    expect((await fetch(`${url}/api/v1/openapi.json`)).status).toBe(401);
    expect((await fetch(`${url}/api/v1/openapi.json`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(log).not.toContain(token);
  });
});
