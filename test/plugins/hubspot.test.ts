/**
 * The hubspot plugin against a local HubSpot contract server (test/support/hubspot-server.ts):
 * the request bodies of each batch endpoint, multi-status answers mapped to per-record outcomes,
 * the CONFLICT → update business retry, 429 with HubSpot's policies and headers, the 100-input
 * limit, check(), and end to end through the CLI (including `ebb init`'s demo project).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import hubspot, { idPropertyOf, properties } from '../../plugins/hubspot/index.ts';
import type { Change, Session, Strategy } from '../../plugins/plugin.ts';
import { HubSpotServer } from '../support/hubspot-server.ts';
import { pluginContext, sessionContext } from '../support/plugin-context.ts';
import { duck, ebb, makeProject, repoRoot, runHere, type CliResult } from '../support/project.ts';
import { parseDocument } from 'yaml';
import { describePlugin, type PluginHarness } from '../plugin-conformance.ts';
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';

let server: HubSpotServer;
let projectDir: string;
beforeAll(async () => {
  server = await HubSpotServer.start({ uniqueProperties: { companies: ['company_key'] } });
  projectDir = await mkdtemp(join(tmpdir(), 'ebb-hubspot-'));
});
afterAll(async () => {
  await server.stop();
  await rm(projectDir, { recursive: true, force: true });
});
/** Each test starts with an empty HubSpot. */
async function fresh(): Promise<HubSpotServer> {
  await server.stop();
  server = await HubSpotServer.start({ uniqueProperties: { companies: ['company_key'] } });
  return server;
}

interface OpenOptions {
  strategy?: Strategy;
  destination?: Record<string, unknown>;
  fields?: string[];
  dir?: string;
}

function open(options: OpenOptions = {}): Promise<Session> {
  return hubspot.open(
    sessionContext(hubspot, {
      config: { access_token: server.token, base_url: server.url },
      projectDir: options.dir ?? projectDir,
      destination: { connection: 'hs', object: 'contacts', ...options.destination },
      strategy: options.strategy ?? 'upsert',
      fields: options.fields ?? ['email', 'firstname', 'lastname'],
    }),
  );
}

const change = (action: Change['action'], key: string, record: Record<string, unknown>, appId?: string): Change => ({ key, action, record, appId });
const ann = { email: 'ann@x.io', firstname: 'Ann', lastname: 'Lee' };
const bob = { email: 'bob@x.io', firstname: 'Bob', lastname: 'Ray' };
const cat = { email: 'cat@x.io', firstname: 'Cat', lastname: 'Sun' };

describe('hubspot plugin: config and capabilities', () => {
  it('validates the config, defaulting base_url to the real API', () => {
    expect(hubspot.configSchema.parse({ access_token: 't' })).toEqual({ access_token: 't', base_url: 'https://api.hubapi.com', timeout_ms: 30_000 });
    const bad = hubspot.configSchema.safeParse({ access_token: '', base_url: 'ftp://x' });
    expect(bad.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      `access_token: give the private app's access token, e.g. "{{ env_var('HUBSPOT_TOKEN') }}"`,
      'base_url: must be an http:// or https:// URL',
    ]);
  });

  it('validates the destination: contacts or companies, and an optional id property', () => {
    const schema = hubspot.destinationSchema!;
    expect(schema.safeParse({ connection: 'hs', object: 'deals' }).error?.issues[0].message).toBe('must be one of contacts, companies');
    expect(schema.safeParse({ connection: 'hs', object: 'companies', id_property: 'company_key' }).success).toBe(true);
    expect(idPropertyOf({ object: 'contacts' })).toBe('email');
    expect(idPropertyOf({ object: 'contacts', id_property: null })).toBeNull();
    expect(idPropertyOf({ object: 'companies' })).toBeNull();
    expect(idPropertyOf({ object: 'companies', id_property: 'company_key' })).toBe('company_key');
  });

  it('declares the batch limit, the strategies, and idempotent creates when records are matched on a unique property', () => {
    const caps = hubspot.capabilities!;
    expect(caps.maxBatchSize).toBe(100);
    expect(caps.strategies).toEqual(['create', 'update', 'upsert', 'mirror']);
    const idempotent = caps.idempotentCreate as (d: Record<string, unknown>) => boolean;
    expect(idempotent({ connection: 'hs', object: 'contacts' })).toBe(true);
    expect(idempotent({ connection: 'hs', object: 'contacts', id_property: null })).toBe(false);
    expect(idempotent({ connection: 'hs', object: 'companies' })).toBe(false);
    expect(idempotent({ connection: 'hs', object: 'companies', id_property: 'company_key' })).toBe(true);
  });

  it('refuses to open a run whose mapping does not set the id property', async () => {
    await expect(open({ fields: ['firstname'] })).rejects.toThrow('HubSpot matches contacts on the property email, which the mapping does not set');
    await expect(open({ fields: ['firstname'], destination: { id_property: null } })).resolves.toBeDefined();
  });

  it('turns values into HubSpot property strings; null clears, except in a create', () => {
    const record = { email: 'a@x.io', score: 1.5, vip: true, tags: ['a'], gone: null };
    expect(properties(record, 'create')).toEqual({ email: 'a@x.io', score: '1.5', vip: 'true', tags: '["a"]' });
    expect(properties(record, 'write')).toEqual({ email: 'a@x.io', score: '1.5', vip: 'true', tags: '["a"]', gone: '' });
    expect(properties(record, 'clear')).toEqual({ email: '', score: '', vip: '', tags: '', gone: '' });
  });
});

describe('hubspot plugin: batch endpoints', () => {
  beforeEach(fresh);

  it('upserts by email under upsert: a new contact is created, an existing one updated, each with its ID', async () => {
    const existing = server.insert('contacts', { email: 'bob@x.io', firstname: 'Old' });
    const session = await open();
    const outcomes = await session.apply([change('create', '1', ann), change('create', '2', { ...bob, email: 'BOB@x.io' })]);
    const annId = server.idOf('contacts', 'email', 'ann@x.io')!;
    expect(outcomes).toEqual([
      { key: '1', success: true, appId: annId, result: { status: 200, id: annId, new: true } },
      { key: '2', success: true, appId: existing, result: { status: 200, id: existing, new: false } },
    ]);
    const [request] = server.requests;
    expect(request).toMatchObject({ method: 'POST', path: '/crm/v3/objects/contacts/batch/upsert' });
    expect(request.headers).toMatchObject({ authorization: `Bearer ${server.token}`, 'content-type': 'application/json' });
    expect(request.body).toEqual({
      inputs: [
        { idProperty: 'email', id: 'ann@x.io', objectWriteTraceId: '0', properties: { email: 'ann@x.io', firstname: 'Ann', lastname: 'Lee' } },
        { idProperty: 'email', id: 'BOB@x.io', objectWriteTraceId: '1', properties: { email: 'BOB@x.io', firstname: 'Bob', lastname: 'Ray' } },
      ],
    });
    expect(server.records().map((r) => r.properties.firstname)).toEqual(['Bob', 'Ann']);
  });

  it('refuses, without a request, a record without the id property or a second record with the same one', async () => {
    const session = await open();
    const outcomes = await session.apply([change('create', '1', { ...ann, email: null }), change('create', '2', bob), change('create', '3', { ...bob, firstname: 'Twin' })]);
    expect(outcomes.map((o) => [o.key, o.success, o.error?.message])).toEqual([
      ['1', false, 'the record has no email, the property HubSpot matches contacts on'],
      ['2', true, undefined],
      ['3', false, 'record 2 of the same batch has the same email (bob@x.io); HubSpot holds one record per email'],
    ]);
    expect(server.requestsTo(/batch\/upsert/)[0].body).toMatchObject({ inputs: [{ id: 'bob@x.io' }] });
  });

  it('an upsert by email with an invalid email fails the whole batch, which the engine splits', async () => {
    server.rejectEmail('bob@x.io');
    const session = await open();
    const outcomes = await session.apply([change('create', '1', ann), change('create', '2', bob)]);
    for (const o of outcomes) expect(o.error).toMatchObject({ kind: 'rejected', wholeBatch: true, message: expect.stringContaining('INVALID_EMAIL') });
    expect(server.records()).toEqual([]);
    // Alone, the bad record is refused for itself, and the good one goes through.
    expect((await session.apply([change('create', '2', bob)]))[0].error).toEqual({ kind: 'rejected', message: expect.stringMatching(/^POST \/crm\/v3\/objects\/contacts\/batch\/upsert answered 400: VALIDATION_ERROR Property values were not valid/) });
    expect((await session.apply([change('create', '1', ann)]))[0].success).toBe(true);
  });

  it('creates under the create strategy; a 207 maps results and errors to their records by objectWriteTraceId', async () => {
    const existing = server.insert('contacts', { email: 'bob@x.io' });
    server.rejectEmail('cat@x.io');
    const session = await open({ strategy: 'create' });
    const outcomes = await session.apply([change('create', '1', ann), change('create', '2', bob), change('create', '3', cat)]);
    expect(server.requests[0]).toMatchObject({ path: '/crm/v3/objects/contacts/batch/create', status: 207 });
    expect(server.requests[0].body).toEqual({
      inputs: [
        { objectWriteTraceId: '0', properties: ann },
        { objectWriteTraceId: '1', properties: bob },
        { objectWriteTraceId: '2', properties: cat },
      ],
    });
    const annId = server.idOf('contacts', 'email', 'ann@x.io');
    expect(outcomes[0]).toEqual({ key: '1', success: true, appId: annId, result: { status: 207, id: annId } });
    expect(outcomes[1].error).toEqual({
      kind: 'conflict',
      existingAppId: existing,
      message: `POST /crm/v3/objects/contacts/batch/create (a batch of 3) answered 207: CONFLICT Contact already exists. Existing ID: ${existing}`,
    });
    expect(outcomes[2].error).toMatchObject({ kind: 'rejected', message: expect.stringContaining('Email address cat@x.io is invalid') });
    expect(outcomes[2].error).not.toHaveProperty('wholeBatch');
  });

  it("without objectWriteTraceId (a project's own template), HubSpot answers a batch with one 409: split, then a conflict with the ID", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ebb-hubspot-tpl-'));
    await mkdir(join(dir, 'templates', 'hubspot'), { recursive: true });
    await writeFile(
      join(dir, 'templates', 'hubspot', 'batch_create.json.njk'),
      '{"inputs": [{% for input in inputs %}{"properties": {{ input.properties | tojson }}}{{ "," if not loop.last }}{% endfor %}]}',
    );
    const existing = server.insert('contacts', { email: 'bob@x.io' });
    const session = await open({ strategy: 'create', dir });
    const batch = await session.apply([change('create', '1', ann), change('create', '2', bob)]);
    for (const o of batch) expect(o.error).toMatchObject({ kind: 'rejected', wholeBatch: true, message: expect.stringContaining('answered 409: CONFLICT Contact already exists') });
    expect(server.requests[0].body).toEqual({ inputs: [{ properties: ann }, { properties: bob }] });
    const alone = await session.apply([change('create', '2', bob)]);
    expect(alone[0].error).toMatchObject({ kind: 'conflict', existingAppId: existing });
    const other = await session.apply([change('create', '1', ann)]);
    expect(other[0]).toMatchObject({ success: true, appId: server.idOf('contacts', 'email', 'ann@x.io') });
    await rm(dir, { recursive: true, force: true });
  });

  it('upserts companies by a custom unique property; a 207 fails one record alone', async () => {
    const session = await open({ destination: { object: 'companies', id_property: 'company_key' }, fields: ['company_key', 'name', 'domain'] });
    const outcomes = await session.apply([
      change('create', 'a', { company_key: 'A', name: 'Acme', domain: 'acme.io' }),
      change('create', 'b', { company_key: null, name: 'Nokey' }),
      change('create', 'c', { company_key: 'C', name: 'Corp', domain: 'corp.io' }),
    ]);
    expect(outcomes.map((o) => o.success)).toEqual([true, false, true]);
    expect(server.records('companies').map((r) => r.properties.name)).toEqual(['Acme', 'Corp']);
    expect(server.requests[0].body).toMatchObject({ inputs: [{ idProperty: 'company_key', id: 'A' }, { idProperty: 'company_key', id: 'C' }] });
    // Upsert by a property that is not unique is refused by HubSpot for the whole batch.
    const bad = await open({ destination: { object: 'companies', id_property: 'domain' }, fields: ['domain', 'name'] });
    const refused = await bad.apply([change('create', 'x', { domain: 'x.io', name: 'X' })]);
    expect(refused[0].error?.message).toContain('Unable to perform update/upsert by non-unique 0-2 property');
  });

  it('companies without an id property are created with batch/create', async () => {
    const session = await open({ destination: { object: 'companies' }, fields: ['name', 'domain'] });
    const outcomes = await session.apply([change('create', 'a', { name: 'Acme', domain: 'acme.io' }), change('create', 'b', { name: 'Beta', domain: null })]);
    expect(outcomes.map((o) => o.appId)).toEqual(server.records('companies').map((r) => r.id));
    expect(server.requests[0]).toMatchObject({ path: '/crm/v3/objects/companies/batch/create' });
    expect(server.requests[0].body).toMatchObject({ inputs: [{ properties: { name: 'Acme', domain: 'acme.io' } }, { properties: { name: 'Beta' } }] });
  });

  it('updates by ID; a record HubSpot does not hold is not_found (context.ids), the others succeed', async () => {
    const annId = server.insert('contacts', ann);
    const session = await open();
    const outcomes = await session.apply([change('update', '1', { ...ann, firstname: 'Annie' }, annId), change('update', '2', bob, '999999')]);
    expect(outcomes[0]).toEqual({ key: '1', success: true, appId: annId, result: { status: 207, id: annId } });
    expect(outcomes[1]).toMatchObject({ key: '2', success: false, appId: '999999', error: { kind: 'not_found', message: expect.stringContaining('OBJECT_NOT_FOUND Could not get some CONTACT objects') } });
    expect(server.requests[0].body).toEqual({
      inputs: [
        { id: annId, objectWriteTraceId: '0', properties: { email: 'ann@x.io', firstname: 'Annie', lastname: 'Lee' } },
        { id: '999999', objectWriteTraceId: '1', properties: { email: 'bob@x.io', firstname: 'Bob', lastname: 'Ray' } },
      ],
    });
  });

  it('finds a record whose ID ebb does not know by its email (batch/read), then updates it by ID', async () => {
    const bobId = server.insert('contacts', bob);
    const session = await open({ strategy: 'update' });
    const outcomes = await session.apply([change('update', '2', { ...bob, email: 'Bob@X.io', firstname: 'Robert' }), change('update', '3', cat)]);
    expect(outcomes[0]).toMatchObject({ success: true, appId: bobId });
    expect(outcomes[1]).toMatchObject({ success: false, error: { kind: 'not_found', message: 'HubSpot has no contacts record with email cat@x.io' } });
    expect(server.requests.map((r) => `${r.path} ${r.status}`)).toEqual(['/crm/v3/objects/contacts/batch/read 207', '/crm/v3/objects/contacts/batch/update 200']);
    expect(server.requests[0].body).toEqual({ idProperty: 'email', properties: ['email'], inputs: [{ id: 'Bob@X.io' }, { id: 'cat@x.io' }] });
    expect(server.records()[0].properties.firstname).toBe('Robert');
  });

  it('clears every mapped property with an empty string, and archives deleted records', async () => {
    const annId = server.insert('contacts', { ...ann, phone: '123' });
    const session = await open();
    const cleared = await session.apply([change('clear', '1', { email: null, firstname: null, lastname: null }, annId)]);
    expect(cleared[0].success).toBe(true);
    expect(server.requests[0].body).toEqual({ inputs: [{ id: annId, objectWriteTraceId: '0', properties: { email: '', firstname: '', lastname: '' } }] });
    expect(server.records()[0].properties).toMatchObject({ email: '', firstname: '', phone: '123' });
    const deleted = await session.apply([change('delete', '1', ann, annId), change('delete', '2', bob, '424242')]);
    expect(deleted).toEqual([
      { key: '1', success: true, appId: annId, result: { status: 204 } },
      { key: '2', success: true, appId: '424242', result: { status: 204 } },
    ]);
    expect(server.requests[1]).toMatchObject({ path: '/crm/v3/objects/contacts/batch/archive', body: { inputs: [{ id: annId }, { id: '424242' }] } });
    expect(server.records()).toEqual([]);
  });

  it('sends at most 100 inputs per request', async () => {
    const session = await open();
    const many = Array.from({ length: 150 }, (_, i) => change('create', String(i), { email: `p${i}@x.io`, firstname: `P${i}`, lastname: 'X' }));
    const outcomes = await session.apply(many);
    expect(outcomes.every((o) => o.success)).toBe(true);
    expect(server.requests.map((r) => (r.body as { inputs: unknown[] }).inputs.length)).toEqual([100, 50]);
    expect(new Set(outcomes.map((o) => o.appId)).size).toBe(150);
  });

  it('does not create or update with other actions', async () => {
    const session = await open();
    expect((await session.apply([change('send', '1', ann)]))[0].error).toEqual({ kind: 'rejected', message: 'the hubspot plugin does not send records; use create, update, upsert or mirror' });
  });
});

describe('hubspot plugin: rate limits and technical errors', () => {
  beforeEach(fresh);

  it("a 429 is rate_limited, waiting as HubSpot's policy says", async () => {
    const session = await open();
    server.rateLimitOnce();
    const secondly = await session.apply([change('create', '1', ann)]);
    expect(secondly[0].error).toEqual({ kind: 'rate_limited', retryAfterMs: 1000, message: 'POST /crm/v3/objects/contacts/batch/upsert answered 429: You have reached your secondly limit.' });
    expect(secondly[0].result).toMatchObject({ status: 429, error: { policyName: 'SECONDLY', errorType: 'RATE_LIMIT' } });
    server.rateLimitOnce({ policy: 'TEN_SECONDLY_ROLLING' });
    expect((await session.apply([change('create', '1', ann)]))[0].error).toMatchObject({ kind: 'rate_limited', retryAfterMs: 10_000 });
    server.rateLimitOnce({ policy: 'TEN_SECONDLY_ROLLING', retryAfterSeconds: 3 });
    expect((await session.apply([change('create', '1', ann)]))[0].error).toMatchObject({ kind: 'rate_limited', retryAfterMs: 3000 });
    server.answerOnce(429, { status: 'error', message: 'You have reached your daily limit.', errorType: 'RATE_LIMIT', policyName: 'DAILY' });
    const daily = await session.apply([change('create', '1', ann)]);
    expect(daily[0].error).toEqual({ kind: 'rate_limited', message: expect.stringContaining('daily limit') });
    expect(server.records()).toEqual([]);
  });

  it('423 Locked waits 2 seconds, 5xx and network failures are transient, 401 fails each record as it is', async () => {
    const session = await open();
    server.answerOnce(423, { status: 'error', message: 'Locked', category: 'LOCKED' });
    expect((await session.apply([change('create', '1', ann), change('create', '2', bob)]))[0].error).toMatchObject({ kind: 'transient', retryAfterMs: 2000 });
    server.answerOnce(502, '<html>Bad gateway</html>');
    expect((await session.apply([change('create', '1', ann)]))[0].error).toMatchObject({ kind: 'transient', message: expect.stringContaining('answered 502') });
    const wrong = await hubspot.open(
      sessionContext(hubspot, { config: { access_token: 'nope', base_url: server.url }, projectDir, destination: { connection: 'hs', object: 'contacts' }, strategy: 'upsert', fields: ['email'] }),
    );
    const refused = await wrong.apply([change('create', '1', ann), change('create', '2', bob)]);
    expect(refused[0].error).toMatchObject({ kind: 'rejected', message: expect.stringContaining('401: INVALID_AUTHENTICATION') });
    expect(refused[0].error).not.toHaveProperty('wholeBatch');
    expect(JSON.stringify(refused)).not.toContain('nope');
    const down = await hubspot.open(
      sessionContext(hubspot, { config: { access_token: 't', base_url: `http://127.0.0.1:${await closedPort()}`, timeout_ms: 2000 }, projectDir, destination: { connection: 'hs', object: 'contacts' }, strategy: 'upsert', fields: ['email'] }),
    );
    expect((await down.apply([change('create', '1', ann)]))[0].error).toMatchObject({ kind: 'transient', message: expect.stringContaining("failed: connect ECONNREFUSED") });
  });

  it('sends every request through the connection schedule', async () => {
    let scheduled = 0;
    const session = await hubspot.open({
      ...sessionContext(hubspot, { config: { access_token: server.token, base_url: server.url }, projectDir, destination: { connection: 'hs', object: 'contacts' }, strategy: 'update', fields: ['email'] }),
      schedule: (request) => {
        scheduled += 1;
        return request();
      },
    });
    server.insert('contacts', ann);
    await session.apply([change('update', '1', ann)]);
    expect(scheduled).toBe(2); // the lookup and the update
  });
});

describe('hubspot plugin: check', () => {
  beforeEach(fresh);

  it('reads one contact with the token', async () => {
    await expect(hubspot.check(pluginContext(hubspot, { config: { access_token: server.token, base_url: server.url }, projectDir }))).resolves.toBeUndefined();
    expect(server.requests[0]).toMatchObject({ method: 'GET', path: '/crm/v3/objects/contacts?limit=1&archived=false' });
  });

  it('names what is wrong: the token, a scope, or the network', async () => {
    await expect(hubspot.check(pluginContext(hubspot, { config: { access_token: 'bad', base_url: server.url }, projectDir }))).rejects.toThrow(
      'HubSpot refused the access token (401 INVALID_AUTHENTICATION: Authentication credentials not found.',
    );
    server.answerOnce(403, { status: 'error', message: "This app hasn't been granted all required scopes to make this call.", category: 'MISSING_SCOPES' });
    await expect(hubspot.check(pluginContext(hubspot, { config: { access_token: server.token, base_url: server.url }, projectDir }))).rejects.toThrow('the access token lacks a scope (403 MISSING_SCOPES');
    const port = await closedPort();
    await expect(hubspot.check(pluginContext(hubspot, { config: { access_token: 't', base_url: `http://127.0.0.1:${port}` }, projectDir }))).rejects.toThrow(
      `cannot reach HubSpot at http://127.0.0.1:${port}: connect ECONNREFUSED`,
    );
  });
});

// --- End to end, through the CLI ---------------------------------------------------------------

/** Rows of the standard `people` source: [id, email, first_name, last_name, score]. */
type Person = [number, string, string, string, number];

async function loadPeople(db: string, rows: Person[]): Promise<void> {
  const values = rows.map(([id, email, first, last, score]) => `(${id}, '${email}', '${first}', '${last}', ${score})`).join(', ');
  await duck(db, `CREATE OR REPLACE TABLE people (id INTEGER, email VARCHAR, first_name VARCHAR, last_name VARCHAR, score DOUBLE);\n${values ? `INSERT INTO people VALUES ${values}` : 'SELECT 1'}`);
}

async function hubspotProject(destination: Record<string, unknown>, strategy: string, extra: Record<string, unknown> = {}): Promise<{ dir: string; db: string }> {
  const dir = await makeProject({
    version: 1,
    name: 'hubspot_e2e',
    warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
    connections: {
      hs: { plugin: 'hubspot', config: { access_token: "{{ env_var('HUBSPOT_TOKEN') }}", base_url: server.url }, retry: { delays_seconds: [0.05, 0.1, 1.5] } },
    },
    syncs: [
      {
        name: 'people_to_hubspot',
        source: { table: 'people', key: 'id' },
        destination: { connection: 'hs', object: 'contacts', ...destination },
        strategy,
        mapping: { email: 'email', firstname: 'first_name', lastname: 'last_name', score: 'score' },
        ...extra,
      },
    ],
  });
  return { dir, db: join(dir, 'warehouse.duckdb') };
}

describe('hubspot plugin: end to end', () => {
  beforeEach(fresh);
  const env = () => ({ HUBSPOT_TOKEN: server.token });

  it('mirror: creates, updates and archives contacts over two runs; the token never reaches the history', async () => {
    const { dir, db } = await hubspotProject({}, 'mirror');
    await loadPeople(db, [
      [1, 'ann@x.io', 'Ann', 'Lee', 1],
      [2, 'bob@x.io', 'Bob', 'Ray', 2],
    ]);
    expect((await runHere(dir, ['people_to_hubspot'], { env: env() })).code).toBe(0);
    expect(server.records().map((r) => r.properties.email)).toEqual(['ann@x.io', 'bob@x.io']);
    await loadPeople(db, [
      [2, 'bob@x.io', 'Bobby', 'Ray', 2.5],
      [3, 'cat@x.io', 'Cat', 'Sun', 3],
    ]);
    const second = await runHere(dir, ['people_to_hubspot'], { env: env() });
    expect(second.code, second.stderr).toBe(0);
    expect(server.records().map((r) => [r.properties.email, r.properties.firstname, r.properties.score])).toEqual([
      ['bob@x.io', 'Bobby', '2.5'],
      ['cat@x.io', 'Cat', '3'],
    ]);
    const state = await duck(db, 'SELECT record_key, app_identifier FROM ebb.sync_record_state ORDER BY record_key');
    expect(state).toEqual(server.records().map((r, i) => ({ record_key: String(i + 2), app_identifier: r.id })));
    const history = await duck(db, 'SELECT string_agg(result::VARCHAR, \'\') AS all_results FROM ebb.sync_record_history');
    expect(String(history[0].all_results)).not.toContain(server.token);
  });

  it('upsert with plain creates (id_property: null): a contact already in HubSpot answers CONFLICT, and the create becomes an update of it', async () => {
    const existing = server.insert('contacts', { email: 'bob@x.io', firstname: 'Old' });
    const { dir, db } = await hubspotProject({ id_property: null }, 'upsert');
    await loadPeople(db, [
      [1, 'ann@x.io', 'Ann', 'Lee', 1],
      [2, 'bob@x.io', 'Bob', 'Ray', 2],
    ]);
    const run = await runHere(dir, ['people_to_hubspot'], { env: env() });
    expect(run.code, run.stderr + run.json).toBe(0);
    expect(server.records().map((r) => [r.id === existing, r.properties.email, r.properties.firstname])).toEqual([
      [true, 'bob@x.io', 'Bob'],
      [false, 'ann@x.io', 'Ann'],
    ]);
    const history = await duck(db, "SELECT record_key, action, apply_state, app_identifier FROM ebb.sync_record_history WHERE record_key = '2'");
    expect(history).toEqual([{ record_key: '2', action: 'update', apply_state: 'SUCCESS', app_identifier: existing }]);
    // The batch of two was refused whole (409), split, and the lone conflict retried as an update.
    expect(server.requests.map((r) => `${r.path.replace('/crm/v3/objects/contacts/batch/', '')} ${r.status}`)).toEqual(['create 207', 'update 200']);
  });

  it('a rejected email fails that record alone (exit 2); after the fix the next run heals it as PREVIOUSLY_FAILED', async () => {
    server.rejectEmail('bob@x.io');
    const { dir, db } = await hubspotProject({}, 'upsert');
    await loadPeople(db, [
      [1, 'ann@x.io', 'Ann', 'Lee', 1],
      [2, 'bob@x.io', 'Bob', 'Ray', 2],
      [3, 'cat@x.io', 'Cat', 'Sun', 3],
    ]);
    const first = await runHere(dir, ['people_to_hubspot'], { env: env() });
    expect(first.code).toBe(2);
    expect(server.records().map((r) => r.properties.email).sort()).toEqual(['ann@x.io', 'cat@x.io']);
    const [failed] = await duck(db, "SELECT apply_state, last_result::VARCHAR AS result FROM ebb.sync_record_state WHERE record_key = '2'");
    expect(failed.apply_state).toBe('FAILED');
    expect(failed.result).toContain('INVALID_EMAIL');
    server.clear();
    const second = await runHere(dir, ['people_to_hubspot'], { env: env() });
    expect(second.code).toBe(0);
    expect(await duck(db, "SELECT action, apply_reason, apply_state FROM ebb.sync_record_history WHERE record_key = '2' ORDER BY recorded_at")).toEqual([
      { action: 'create', apply_reason: 'NEW', apply_state: 'FAILED' },
      { action: 'create', apply_reason: 'PREVIOUSLY_FAILED', apply_state: 'SUCCESS' },
    ]);
  });

  it('`ebb check` tests the token', async () => {
    const { dir } = await hubspotProject({}, 'upsert');
    expect((await ebb(dir, ['check', 'hs'], env())).code).toBe(0);
    const bad = await ebb(dir, ['check', 'hs'], { HUBSPOT_TOKEN: 'wrong-token' });
    expect(bad.code).not.toBe(0);
    expect(bad.stdout + bad.stderr).toContain('HubSpot refused the access token');
    expect(bad.stdout + bad.stderr).not.toContain('wrong-token');
  });

  it("syncs the demo project's sample customers (ebb init) into HubSpot contacts", async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'ebb-hubspot-demo-')), 'demo');
    const init = await ebbInit(dir);
    expect(init.code, init.stderr).toBe(0);
    const yml = join(dir, 'ebb.yml');
    await writeFile(
      yml,
      addToDemo(await readFile(yml, 'utf8'), {
        connection: { hubspot: { plugin: 'hubspot', config: { access_token: "{{ env_var('HUBSPOT_TOKEN') }}", base_url: server.url }, rate_limit: { requests: 100, per_seconds: 10 } } },
        sync: {
          name: 'customers_to_hubspot',
          source: { table: 'analytics.customers', key: 'customer_id' },
          destination: { connection: 'hubspot', object: 'contacts' },
          strategy: 'upsert',
          mapping: { email: 'email', firstname: 'first_name', lastname: 'last_name', lifecyclestage: 'lifecycle_stage' },
        },
      }),
    );
    const run = await ebb(dir, ['run', 'customers_to_hubspot', '--json'], { HUBSPOT_TOKEN: server.token });
    expect(run.code, run.stderr + run.stdout).toBe(0);
    const [{ n }] = await duck(join(dir, 'warehouse.duckdb'), 'SELECT count(*)::INTEGER AS n FROM analytics.customers');
    expect(server.records()).toHaveLength(n as number);
    expect(server.records()[0].properties).toMatchObject({ email: expect.stringContaining('@'), firstname: expect.any(String), lifecyclestage: expect.any(String) });
  });
});

/**
 * The harness of the shared conformance suite (test/plugin-conformance.ts). Plain creates
 * (`upsert: false`): a contact HubSpot holds already is refused with CONFLICT and its ID, which
 * the suite's business retry expects to see turned into an update. (With the default upserts by
 * email, that contact is updated by the create itself: no duplicate either, but no `update` in the
 * history; the end-to-end tests above cover that path.)
 */
export async function makeHubSpotHarness(): Promise<PluginHarness> {
  const app = await HubSpotServer.start();
  return {
    connection: { plugin: 'hubspot', config: { access_token: app.token, base_url: app.url } },
    destination: { object: 'contacts', upsert: false },
    mapping: { email: 'email', firstname: 'first_name', lastname: 'last_name', score: 'score' },
    strategies: ['create', 'update', 'upsert', 'mirror'],
    async read() {
      // HubSpot keeps every value as text; "" is a cleared property.
      return app.records('contacts').map((r) => Object.fromEntries(['email', 'firstname', 'lastname', 'score'].map((p) => [p, r.properties[p] || null])));
    },
    async seed(record) {
      app.insert('contacts', record);
    },
    faults: {
      rateLimitOnce: () => app.rateLimitOnce(),
      rejectEmail: (email) => app.rejectEmail(email),
      clear: () => app.clear(),
    },
    close: () => app.stop(),
  };
}

describePlugin('hubspot', makeHubSpotHarness);

/**
 * Adds a connection and a sync to a project's ebb.yml, as a user would by hand: the YAML document
 * is edited in place, so its comments stay.
 */
function addToDemo(text: string, add: { connection: Record<string, unknown>; sync: Record<string, unknown> }): string {
  const doc = parseDocument(text);
  for (const [name, value] of Object.entries(add.connection)) doc.setIn(['connections', name], value);
  doc.addIn(['syncs'], add.sync);
  return doc.toString();
}

/** `node bin/ebb.js init DIR`, as a new user runs it. */
function ebbInit(dir: string): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(repoRoot, 'bin', 'ebb.js'), 'init', dir], (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** A local port where nothing listens. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
