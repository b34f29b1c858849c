/**
 * The brevo plugin against a local Brevo contract server (test/support/brevo-server.ts): the
 * request bodies (templates), identifiers (contact ID, email, ext_id, SMS), error codes mapped to
 * outcomes (duplicate_parameter → conflict with the existing ID, document_not_found →
 * not_found), the batch import and its process, 429 with x-sib-ratelimit-reset, check(), and end
 * to end through the CLI (including `ebb init`'s demo project).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { parseDocument } from 'yaml';
import brevo, { contactOf, parseAppId } from '../../plugins/brevo/index.ts';
import type { Change, Session, Strategy } from '../../plugins/plugin.ts';
import { BrevoServer, type BrevoServerOptions } from '../support/brevo-server.ts';
import { pluginContext, sessionContext } from '../support/plugin-context.ts';
import { duck, ebb, makeProject, repoRoot, runHere, type CliResult } from '../support/project.ts';
import { describePlugin, type PluginHarness } from '../plugin-conformance.ts';

let server: BrevoServer;
let projectDir: string;
beforeAll(async () => {
  projectDir = await mkdtemp(join(tmpdir(), 'ebb-brevo-'));
});
afterAll(async () => {
  await server?.stop();
  await rm(projectDir, { recursive: true, force: true });
});

/** Each test starts with an empty Brevo account. */
async function fresh(options: BrevoServerOptions = {}): Promise<BrevoServer> {
  await server?.stop();
  server = await BrevoServer.start(options);
  return server;
}

interface OpenOptions {
  strategy?: Strategy;
  destination?: Record<string, unknown>;
  fields?: string[];
  dir?: string;
  schedule?: <T>(request: () => Promise<T>) => Promise<T>;
}

function open(options: OpenOptions = {}): Promise<Session> {
  return brevo.open(
    sessionContext(brevo, {
      config: { api_key: server.apiKey, base_url: server.url },
      projectDir: options.dir ?? projectDir,
      destination: { connection: 'brevo', object: 'contacts', ...options.destination },
      strategy: options.strategy ?? 'upsert',
      fields: options.fields ?? ['email', 'FIRSTNAME', 'score'],
      schedule: options.schedule,
    }),
  );
}

const change = (action: Change['action'], key: string, record: Record<string, unknown>, appId?: string): Change => ({ key, action, record, appId });
const ann = { email: 'ann@x.io', FIRSTNAME: 'Ann', score: 1.5 };
const bob = { email: 'bob@x.io', FIRSTNAME: 'Bob', score: 2 };

describe('brevo plugin: config and mapping', () => {
  it('validates the config, defaulting base_url to the real API', () => {
    expect(brevo.configSchema.parse({ api_key: 'k' })).toEqual({ api_key: 'k', base_url: 'https://api.brevo.com/v3', timeout_ms: 30_000 });
    expect(brevo.configSchema.safeParse({ api_key: '' }).error?.issues[0].message).toBe(`give the API key, e.g. "{{ env_var('BREVO_API_KEY') }}"`);
  });

  it('validates the destination', () => {
    const schema = brevo.destinationSchema!;
    expect(schema.parse({ connection: 'b', object: 'contacts' })).toEqual({
      connection: 'b',
      object: 'contacts',
      identifier: 'email',
      batch_import: false,
      import_wait_seconds: 600,
      import_poll_seconds: 2,
    });
    const issues = (d: Record<string, unknown>) => schema.safeParse({ connection: 'b', ...d }).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(issues({ object: 'deals' })).toEqual(['object: must be contacts']);
    expect(issues({ object: 'contacts', identifier: 'phone' })).toEqual(['identifier: must be one of email, ext_id, sms']);
    expect(issues({ object: 'contacts', batch_import: true })).toEqual(['list_ids: batch_import needs list_ids: Brevo imports contacts into lists (listIds)']);
    expect(brevo.capabilities).toMatchObject({ strategies: ['create', 'update', 'upsert', 'mirror'], idempotentCreate: true });
  });

  it('refuses to open a run whose mapping lacks the identifier', async () => {
    await fresh();
    await expect(open({ fields: ['FIRSTNAME'] })).rejects.toThrow('Brevo identifies contacts by email here, but the mapping has no email field');
    await expect(open({ fields: ['email'], destination: { identifier: 'ext_id' } })).rejects.toThrow('the mapping has no ext_id field');
    await expect(open({ fields: ['sms'], destination: { identifier: 'sms' } })).resolves.toBeDefined();
  });

  it('maps a record to a contact: own fields, attributes in capitals, nulls per action', () => {
    const record = { email: 'a@x.io', ext_id: 'E1', emailBlacklisted: false, first_name: 'A', score: null };
    expect(contactOf(record, 'create')).toEqual({ email: 'a@x.io', ext_id: 'E1', emailBlacklisted: false, attributes: { FIRST_NAME: 'A' } });
    expect(contactOf(record, 'update')).toEqual({ ext_id: 'E1', emailBlacklisted: false, attributes: { EMAIL: 'a@x.io', FIRST_NAME: 'A', SCORE: null } });
    expect(contactOf({ email: null, ext_id: null, first_name: null, SMS: null }, 'clear', 'sms')).toEqual({ attributes: { FIRST_NAME: null } });
    expect(contactOf(record, 'import')).toEqual({ email: 'a@x.io', ext_id: 'E1', emailBlacklisted: false, attributes: { FIRST_NAME: 'A', SCORE: '' } });
  });

  it('reads the identifiers ebb stores', () => {
    expect(parseAppId('42')).toEqual({ identifier: '42', type: 'contact_id' });
    expect(parseAppId('ann@x.io')).toEqual({ identifier: 'ann@x.io', type: 'email_id' });
    expect(parseAppId('ext_id:E-1')).toEqual({ identifier: 'E-1', type: 'ext_id' });
    expect(parseAppId('phone_id:+33600000000')).toEqual({ identifier: '+33600000000', type: 'phone_id' });
  });
});

describe('brevo plugin: contacts', () => {
  beforeEach(() => fresh());

  it('creates a contact with updateEnabled, in the lists, and keeps its ID', async () => {
    const session = await open({ destination: { list_ids: [3, 4] } });
    const [outcome] = await session.apply([change('create', '1', ann)]);
    const id = server.idOf('ann@x.io')!;
    expect(outcome).toEqual({ key: '1', success: true, appId: String(id), result: { status: 201, id } });
    const [request] = server.requests;
    expect(request).toMatchObject({ method: 'POST', path: '/v3/contacts', status: 201 });
    expect(request.headers).toMatchObject({ 'api-key': server.apiKey, 'content-type': 'application/json' });
    expect(request.body).toEqual({ email: 'ann@x.io', attributes: { FIRSTNAME: 'Ann', SCORE: 1.5 }, listIds: [3, 4], updateEnabled: true });
    expect(server.list()[0]).toMatchObject({ email: 'ann@x.io', listIds: [3, 4], attributes: { FIRSTNAME: 'Ann', SCORE: 1.5 } });
  });

  it('a create that updated an existing contact (204) looks its ID up', async () => {
    const existing = server.insert({ email: 'bob@x.io', attributes: { FIRSTNAME: 'Old' } });
    const session = await open();
    const [outcome] = await session.apply([change('create', '2', { ...bob, email: 'Bob@X.io' })]);
    expect(outcome).toEqual({ key: '2', success: true, appId: String(existing), result: { status: 204, updated: true } });
    expect(server.requests.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual(['POST /v3/contacts 204', 'GET /v3/contacts/Bob%40X.io?identifierType=email_id 200']);
    expect(server.list()).toHaveLength(1);
    expect(server.list()[0].attributes.FIRSTNAME).toBe('Bob');
  });

  it('without updateEnabled, a duplicate is a conflict carrying the existing contact ID', async () => {
    const existing = server.insert({ email: 'bob@x.io' });
    const session = await open({ strategy: 'create' });
    const [outcome] = await session.apply([change('create', '2', bob)]);
    expect(server.requests[0].body).toMatchObject({ updateEnabled: false });
    expect(outcome.error).toEqual({
      kind: 'conflict',
      existingAppId: String(existing),
      message: 'POST /contacts answered 400: duplicate_parameter: Unable to create contact, email is already associated with another Contact',
    });
    expect(outcome.result).toMatchObject({ status: 400, error: { metadata: { duplicate_identifiers: ['email'] } } });
    // update_enabled: false under upsert too (the engine then updates the existing contact).
    const plain = await open({ destination: { update_enabled: false } });
    expect((await plain.apply([change('create', '2', bob)]))[0].error).toMatchObject({ kind: 'conflict', existingAppId: String(existing) });
  });

  it('refuses an invalid email, and a record without its identifier without asking Brevo', async () => {
    server.rejectEmail('bad@x.io');
    const session = await open();
    const outcomes = await session.apply([change('create', '1', { ...ann, email: 'bad@x.io' }), change('create', '2', { ...ann, email: null })]);
    expect(outcomes[0].error).toEqual({ kind: 'rejected', message: 'POST /contacts answered 400: invalid_parameter: Invalid email address' });
    expect(outcomes[1].error).toEqual({ kind: 'rejected', message: 'the record has no email, which identifies Brevo contacts here (destination.identifier: email)' });
    expect(server.requests).toHaveLength(1);
  });

  it('updates by contact ID: a new email goes in EMAIL, null clears an attribute; a missing contact is not_found', async () => {
    const id = String(server.insert({ email: 'ann@x.io', attributes: { FIRSTNAME: 'Ann', SCORE: 1 } }));
    const session = await open({ destination: { list_ids: [5] } });
    const outcomes = await session.apply([change('update', '1', { email: 'ann.lee@x.io', FIRSTNAME: 'Annie', score: null }, id), change('update', '9', bob, '999')]);
    expect(outcomes[0]).toEqual({ key: '1', success: true, appId: id, result: { status: 204 } });
    expect(outcomes[1]).toMatchObject({ success: false, appId: '999', error: { kind: 'not_found', message: 'PUT /contacts/999?identifierType=contact_id answered 404: document_not_found: Contact does not exist' } });
    expect(server.requests[0]).toMatchObject({ method: 'PUT', path: `/v3/contacts/${id}?identifierType=contact_id` });
    expect(server.requests[0].body).toEqual({ listIds: [5], attributes: { EMAIL: 'ann.lee@x.io', FIRSTNAME: 'Annie', SCORE: null } });
    expect(server.list()[0]).toMatchObject({ email: 'ann.lee@x.io', attributes: { FIRSTNAME: 'Annie' } });
  });

  it('a contact ebb did not create is updated by its email, which becomes its identifier in ebb', async () => {
    server.insert({ email: 'bob@x.io' });
    const session = await open({ strategy: 'update' });
    const [outcome] = await session.apply([change('update', '2', bob)]);
    expect(outcome).toEqual({ key: '2', success: true, appId: 'bob@x.io', result: { status: 204 } });
    expect(server.requests[0].path).toBe('/v3/contacts/bob%40x.io?identifierType=email_id');
    // A later change of email follows the contact.
    const [moved] = await session.apply([change('update', '2', { ...bob, email: 'robert@x.io' }, 'bob@x.io')]);
    expect(moved.appId).toBe('robert@x.io');
    expect(server.idOf('robert@x.io')).toBeDefined();
    // Another contact's email is refused.
    server.insert({ email: 'cat@x.io' });
    const [taken] = await session.apply([change('update', '2', { ...bob, email: 'cat@x.io' }, 'robert@x.io')]);
    expect(taken.error).toMatchObject({ kind: 'rejected', message: expect.stringContaining('duplicate_parameter: Unable to update contact, email is already associated with another Contact') });
  });

  it('clears the attributes of a contact it knows, and deletes contacts (404 is not_found)', async () => {
    const id = String(server.insert({ email: 'ann@x.io', attributes: { FIRSTNAME: 'Ann', SCORE: 1, OTHER: 'kept' } }));
    const session = await open();
    const [cleared] = await session.apply([change('clear', '1', { email: null, FIRSTNAME: null, score: null }, id)]);
    expect(cleared.success).toBe(true);
    expect(server.requests[0].body).toEqual({ attributes: { FIRSTNAME: null, SCORE: null } });
    expect(server.list()[0]).toMatchObject({ email: 'ann@x.io', attributes: { OTHER: 'kept' } });
    expect((await session.apply([change('clear', '2', { email: null })]))[0].error?.message).toBe("ebb does not know this contact's Brevo ID, so it cannot clear it");
    const deleted = await session.apply([change('delete', '1', ann, id), change('delete', '2', bob, '777')]);
    expect(deleted[0]).toEqual({ key: '1', success: true, appId: id, result: { status: 204 } });
    expect(deleted[1].error).toMatchObject({ kind: 'not_found' });
    expect(server.list()).toEqual([]);
  });

  it('identifies contacts by ext_id or by the SMS attribute', async () => {
    const byExt = await open({ destination: { identifier: 'ext_id' }, fields: ['ext_id', 'email', 'FIRSTNAME'] });
    await byExt.apply([change('create', '1', { ext_id: 'CUST-1', email: 'ann@x.io', FIRSTNAME: 'Ann' })]);
    expect(server.requests[0].body).toMatchObject({ ext_id: 'CUST-1', email: 'ann@x.io' });
    const [updated] = await byExt.apply([change('update', '1', { ext_id: 'CUST-1', email: 'ann@x.io', FIRSTNAME: 'Anna' })]);
    expect(updated.success).toBe(true);
    expect(server.requests.at(-1)!.path).toBe('/v3/contacts/CUST-1?identifierType=ext_id');
    const bySms = await open({ destination: { identifier: 'sms' }, fields: ['sms', 'FIRSTNAME'] });
    const [created] = await bySms.apply([change('create', '2', { sms: '+33612345678', FIRSTNAME: 'Sam' })]);
    expect(server.requests.at(-1)!.body).toMatchObject({ attributes: { SMS: '+33612345678', FIRSTNAME: 'Sam' } });
    expect(created.appId).toBe(String(server.list()[1].id));
    await bySms.apply([change('update', '2', { sms: '+33612345678', FIRSTNAME: 'Samuel' })]);
    expect(server.requests.at(-1)!.path).toBe('/v3/contacts/%2B33612345678?identifierType=phone_id');
    expect(server.list()[1].attributes.FIRSTNAME).toBe('Samuel');
  });

  it('sends every request through the connection schedule, one per record', async () => {
    let scheduled = 0;
    const session = await open({
      schedule: (request) => {
        scheduled += 1;
        return request();
      },
    });
    await session.apply([change('create', '1', ann), change('create', '2', bob)]);
    expect(scheduled).toBe(2);
  });
});

describe('brevo plugin: batch import', () => {
  it('imports a batch in one request and follows its process until completed', async () => {
    await fresh({ importLooks: 2 });
    server.insert({ email: 'bob@x.io', attributes: { FIRSTNAME: 'Old', SCORE: 9 } });
    const session = await open({ destination: { batch_import: true, list_ids: [7], import_poll_seconds: 0.01 } });
    const outcomes = await session.apply([change('create', '1', ann), change('create', '2', { ...bob, score: null }), change('create', '3', { ...ann, email: null })]);
    expect(outcomes.map((o) => [o.key, o.success, o.appId])).toEqual([
      ['1', true, 'ann@x.io'],
      ['2', true, 'bob@x.io'],
      ['3', false, undefined],
    ]);
    expect(outcomes[0].result).toEqual({ status: 202, processId: 77, processStatus: 'completed' });
    expect(server.requests.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual([
      'POST /v3/contacts/import 202',
      'GET /v3/processes/77 200',
      'GET /v3/processes/77 200',
      'GET /v3/processes/77 200',
    ]);
    expect(server.requests[0].body).toEqual({
      listIds: [7],
      updateExistingContacts: true,
      emptyContactsAttributes: true,
      disableNotification: true,
      jsonBody: [
        { email: 'ann@x.io', attributes: { FIRSTNAME: 'Ann', SCORE: 1.5 } },
        { email: 'bob@x.io', attributes: { FIRSTNAME: 'Bob', SCORE: '' } },
      ],
    });
    expect(server.list().map((c) => [c.email, c.attributes, c.listIds])).toEqual([
      ['bob@x.io', { FIRSTNAME: 'Bob' }, [7]],
      ['ann@x.io', { FIRSTNAME: 'Ann', SCORE: 1.5 }, [7]],
    ]);
    // Updates go one by one (an import matches contacts by email, which a record may change).
    await session.apply([change('update', '1', { ...ann, FIRSTNAME: 'Annie' }, 'ann@x.io')]);
    expect(server.requests.at(-1)).toMatchObject({ method: 'PUT', path: '/v3/contacts/ann%40x.io?identifierType=email_id' });
  });

  it('an import that is not completed in time is a transient failure; import_wait_seconds: 0 does not wait', async () => {
    await fresh({ importLooks: 1000 });
    const slow = await open({ destination: { batch_import: true, list_ids: [7], import_poll_seconds: 0.01, import_wait_seconds: 0.1 } });
    const [late] = await slow.apply([change('create', '1', ann)]);
    expect(late.error).toEqual({ kind: 'transient', message: expect.stringMatching(/^POST \/contacts\/import: import process 77 was not completed within 0.1 s \(last status: (queued|in_process)\)$/) });
    const eager = await open({ destination: { batch_import: true, list_ids: [7], import_wait_seconds: 0 } });
    const [sent] = await eager.apply([change('create', '1', ann)]);
    expect(sent).toMatchObject({ success: true, result: { processId: 78, processStatus: 'queued' } });
  });

  it('an import refused as a whole (400) is split by the engine', async () => {
    await fresh();
    server.answerOnce(400, { code: 'invalid_parameter', message: 'jsonBody is invalid' }, { match: /import/ });
    const session = await open({ destination: { batch_import: true, list_ids: [7] } });
    const outcomes = await session.apply([change('create', '1', ann), change('create', '2', bob)]);
    for (const o of outcomes) expect(o.error).toMatchObject({ kind: 'rejected', wholeBatch: true, message: 'POST /contacts/import (a batch of 2) answered 400: invalid_parameter: jsonBody is invalid' });
  });
});

describe('brevo plugin: rate limits, errors and check', () => {
  beforeEach(() => fresh());

  it('a 429 waits until x-sib-ratelimit-reset (or Retry-After)', async () => {
    const session = await open();
    server.rateLimitOnce({ resetSeconds: 2 });
    const [limited] = await session.apply([change('create', '1', ann)]);
    expect(limited.error).toEqual({ kind: 'rate_limited', retryAfterMs: 2000, message: 'POST /contacts answered 429: too_many_requests: The expected rate limit is exceeded.' });
    server.answerOnce(429, undefined, { headers: { 'retry-after': '3', 'x-sib-ratelimit-reset': '10' } });
    expect((await session.apply([change('create', '1', ann)]))[0].error).toMatchObject({ kind: 'rate_limited', retryAfterMs: 3000 });
    expect(server.list()).toEqual([]);
  });

  it('5xx and network failures are transient; 401 and not_enough_credits are rejected', async () => {
    const session = await open();
    server.answerOnce(503, 'Service Unavailable');
    expect((await session.apply([change('create', '1', ann)]))[0].error).toMatchObject({ kind: 'transient', message: expect.stringContaining('POST /contacts answered 503: "Service Unavailable"') });
    server.answerOnce(402, { code: 'not_enough_credits', message: 'Not enough credits' });
    expect((await session.apply([change('create', '1', ann)]))[0].error).toMatchObject({ kind: 'rejected', message: 'POST /contacts answered 402: not_enough_credits: Not enough credits' });
    const wrong = await brevo.open(
      sessionContext(brevo, { config: { api_key: 'nope', base_url: server.url }, projectDir, destination: { connection: 'b', object: 'contacts' }, strategy: 'upsert', fields: ['email'] }),
    );
    const [refused] = await wrong.apply([change('create', '1', ann)]);
    expect(refused.error).toEqual({ kind: 'rejected', message: 'POST /contacts answered 401: unauthorized: Key not found' });
    const down = await brevo.open(
      sessionContext(brevo, { config: { api_key: 'k', base_url: `http://127.0.0.1:${await closedPort()}/v3` }, projectDir, destination: { connection: 'b', object: 'contacts' }, strategy: 'upsert', fields: ['email'] }),
    );
    expect((await down.apply([change('create', '1', ann)]))[0].error).toMatchObject({ kind: 'transient', message: expect.stringContaining('POST /contacts failed: connect ECONNREFUSED') });
  });

  it('check reads the account with the key, and names what is wrong', async () => {
    const ctx = (config: Record<string, unknown>) => pluginContext(brevo, { config: { api_key: server.apiKey, base_url: server.url, ...config }, projectDir });
    await expect(brevo.check(ctx({}))).resolves.toBeUndefined();
    expect(server.requests[0]).toMatchObject({ method: 'GET', path: '/v3/account' });
    await expect(brevo.check(ctx({ api_key: 'wrong' }))).rejects.toThrow('Brevo refused the API key (401 unauthorized: Key not found); check api_key');
    const port = await closedPort();
    await expect(brevo.check(ctx({ base_url: `http://127.0.0.1:${port}/v3` }))).rejects.toThrow(`cannot reach Brevo at http://127.0.0.1:${port}/v3: connect ECONNREFUSED`);
  });

  it("a project's own template replaces ebb's", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ebb-brevo-tpl-'));
    await mkdir(join(dir, 'templates', 'brevo'), { recursive: true });
    await writeFile(
      join(dir, 'templates', 'brevo', 'create_contact.json.njk'),
      '{"email": {{ contact.email | tojson }}, "attributes": {{ contact.attributes | tojson }}, "listIds": [42], "updateEnabled": true, "smtpBlacklistSender": []}',
    );
    const session = await open({ dir });
    await session.apply([change('create', '1', ann)]);
    expect(server.requests[0].body).toEqual({ email: 'ann@x.io', attributes: { FIRSTNAME: 'Ann', SCORE: 1.5 }, listIds: [42], updateEnabled: true, smtpBlacklistSender: [] });
    await rm(dir, { recursive: true, force: true });
  });
});

// --- End to end, through the CLI ---------------------------------------------------------------

type Person = [number, string, string, string, number];

async function loadPeople(db: string, rows: Person[]): Promise<void> {
  const values = rows.map(([id, email, first, last, score]) => `(${id}, '${email}', '${first}', '${last}', ${score})`).join(', ');
  await duck(db, `CREATE OR REPLACE TABLE people (id INTEGER, email VARCHAR, first_name VARCHAR, last_name VARCHAR, score DOUBLE);\n${values ? `INSERT INTO people VALUES ${values}` : 'SELECT 1'}`);
}

async function brevoProject(destination: Record<string, unknown>, strategy: string, extra: Record<string, unknown> = {}): Promise<{ dir: string; db: string }> {
  const dir = await makeProject({
    version: 1,
    name: 'brevo_e2e',
    warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
    connections: {
      brevo: { plugin: 'brevo', config: { api_key: "{{ env_var('BREVO_API_KEY') }}", base_url: server.url }, retry: { delays_seconds: [0.05, 0.1, 1.5] } },
    },
    syncs: [
      {
        name: 'people_to_brevo',
        source: { table: 'people', key: 'id' },
        destination: { connection: 'brevo', object: 'contacts', ...destination },
        strategy,
        mapping: { email: 'email', FIRSTNAME: 'first_name', LASTNAME: 'last_name', SCORE: 'score' },
        ...extra,
      },
    ],
  });
  return { dir, db: join(dir, 'warehouse.duckdb') };
}

describe('brevo plugin: end to end', () => {
  beforeEach(() => fresh());
  const env = () => ({ BREVO_API_KEY: server.apiKey });

  it('upsert with on_remove delete: contacts are created, updated and deleted by their Brevo ID; the key stays out of history', async () => {
    const { dir, db } = await brevoProject({ list_ids: [2] }, 'upsert', { on_remove: 'delete' });
    await loadPeople(db, [
      [1, 'ann@x.io', 'Ann', 'Lee', 1],
      [2, 'bob@x.io', 'Bob', 'Ray', 2],
    ]);
    const first = await runHere(dir, ['people_to_brevo'], { env: env() });
    expect(first.code, first.stderr + first.json).toBe(0);
    await loadPeople(db, [
      [2, 'bob@x.io', 'Bobby', 'Ray', 2.5],
      [3, 'cat@x.io', 'Cat', 'Sun', 3],
    ]);
    const second = await runHere(dir, ['people_to_brevo'], { env: env() });
    expect(second.code, second.stderr + second.json).toBe(0);
    expect(server.list().map((c) => [c.email, c.attributes, c.listIds])).toEqual([
      ['bob@x.io', { FIRSTNAME: 'Bobby', LASTNAME: 'Ray', SCORE: 2.5 }, [2]],
      ['cat@x.io', { FIRSTNAME: 'Cat', LASTNAME: 'Sun', SCORE: 3 }, [2]],
    ]);
    const state = await duck(db, 'SELECT record_key, app_identifier FROM ebb.sync_record_state ORDER BY record_key');
    expect(state).toEqual(server.list().map((c, i) => ({ record_key: String(i + 2), app_identifier: String(c.id) })));
    expect(server.requestsTo(/^DELETE/).map((r) => r.path)).toEqual(['/v3/contacts/1?identifierType=contact_id']);
    const [{ all }] = await duck(db, "SELECT string_agg(result::VARCHAR, '') AS all FROM ebb.sync_record_history");
    expect(String(all)).not.toContain(server.apiKey);
  });

  it('batch import: a run sends its creates in one import and waits for the process', async () => {
    await fresh({ importLooks: 1 });
    const { dir, db } = await brevoProject({ batch_import: true, list_ids: [9], import_poll_seconds: 0.05 }, 'upsert');
    await loadPeople(db, [
      [1, 'ann@x.io', 'Ann', 'Lee', 1],
      [2, 'bob@x.io', 'Bob', 'Ray', 2],
      [3, 'cat@x.io', 'Cat', 'Sun', 3],
    ]);
    const run = await runHere(dir, ['people_to_brevo'], { env: env() });
    expect(run.code, run.stderr + run.json).toBe(0);
    expect(server.requestsTo(/import/)).toHaveLength(1);
    expect(server.list().map((c) => c.email).sort()).toEqual(['ann@x.io', 'bob@x.io', 'cat@x.io']);
    expect(await duck(db, 'SELECT app_identifier FROM ebb.sync_record_state ORDER BY record_key')).toEqual([{ app_identifier: 'ann@x.io' }, { app_identifier: 'bob@x.io' }, { app_identifier: 'cat@x.io' }]);
  });

  it("syncs the demo project's sample customers (ebb init) into Brevo contacts", async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'ebb-brevo-demo-')), 'demo');
    const init = await ebbInit(dir);
    expect(init.code, init.stderr).toBe(0);
    const yml = join(dir, 'ebb.yml');
    await writeFile(
      yml,
      addToDemo(await readFile(yml, 'utf8'), {
        connection: { brevo: { plugin: 'brevo', config: { api_key: "{{ env_var('BREVO_API_KEY') }}", base_url: server.url }, rate_limit: { requests: 100, per_seconds: 1 } } },
        sync: {
          name: 'customers_to_brevo',
          source: { table: 'analytics.customers', key: 'customer_id' },
          destination: { connection: 'brevo', object: 'contacts', list_ids: [2] },
          strategy: 'upsert',
          mapping: { email: 'email', FIRSTNAME: 'first_name', LASTNAME: 'last_name', LIFECYCLE_STAGE: 'lifecycle_stage' },
        },
      }),
    );
    const run = await ebb(dir, ['run', 'customers_to_brevo', '--json'], { BREVO_API_KEY: server.apiKey });
    expect(run.code, run.stderr + run.stdout).toBe(0);
    const [{ n }] = await duck(join(dir, 'warehouse.duckdb'), 'SELECT count(*)::INTEGER AS n FROM analytics.customers');
    expect(server.list()).toHaveLength(n as number);
    expect(server.list()[0]).toMatchObject({ email: expect.stringContaining('@'), listIds: [2], attributes: { FIRSTNAME: expect.any(String), LIFECYCLE_STAGE: expect.any(String) } });
  });
});

/**
 * The harness of the shared conformance suite (test/plugin-conformance.ts). Creates without
 * updateEnabled: a contact Brevo holds already is refused as duplicate_parameter, and the plugin
 * answers with its ID, which the suite expects to see turned into an update. (With the default,
 * updateEnabled under upsert and mirror, the create itself updates that contact.)
 */
export async function makeBrevoHarness(): Promise<PluginHarness> {
  const app = await BrevoServer.start();
  return {
    connection: { plugin: 'brevo', config: { api_key: app.apiKey, base_url: app.url } },
    destination: { object: 'contacts', update_enabled: false },
    mapping: { email: 'email', FIRSTNAME: 'first_name', LASTNAME: 'last_name', SCORE: 'score' },
    strategies: ['create', 'update', 'upsert', 'mirror'],
    async read() {
      return app.list().map((c) => ({ email: c.email ?? null, FIRSTNAME: c.attributes.FIRSTNAME ?? null, LASTNAME: c.attributes.LASTNAME ?? null, SCORE: c.attributes.SCORE ?? null }));
    },
    async seed(record) {
      const { email, ...attributes } = record;
      app.insert({ email: String(email), attributes });
    },
    faults: {
      rateLimitOnce: () => app.rateLimitOnce({ resetSeconds: 1 }),
      rejectEmail: (email) => app.rejectEmail(email),
      clear: () => app.clear(),
    },
    close: () => app.stop(),
  };
}

describePlugin('brevo', makeBrevoHarness);

/** Adds a connection and a sync to a project's ebb.yml, as a user would by hand (comments stay). */
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
