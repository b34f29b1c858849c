import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import salesforce, { soqlEscape } from '../../plugins/salesforce/index.ts';
import { forgetSessions, signJwt } from '../../plugins/salesforce/auth.ts';
import type { Change, Session, Strategy } from '../../plugins/plugin.ts';
import { SalesforceServer, to18 } from '../support/salesforce-server.ts';
import { pluginContext, sessionContext } from '../support/plugin-context.ts';
import { duck, ebb, repoRoot } from '../support/project.ts';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describePlugin, type PluginHarness } from '../plugin-conformance.ts';

const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const privatePem = keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const publicPem = keys.publicKey.export({ type: 'spki', format: 'pem' }) as string;
const clientId = '3MVG9test.consumer.key';
const username = 'integration@acme.example';
const token = '00Dxx0000000001!AQ4AQstatic.token.value';

let server: SalesforceServer;
let projectDir: string;
beforeAll(async () => {
  server = await SalesforceServer.start({ connectedApp: { clientId, usernames: [username], publicKey: publicPem }, tokens: [token] });
  projectDir = await mkdtemp(join(tmpdir(), 'ebb-salesforce-'));
  await writeFile(join(projectDir, 'salesforce.key'), privatePem);
});
afterAll(async () => {
  await server.stop();
  await rm(projectDir, { recursive: true, force: true });
});
beforeEach(() => {
  server.reset();
  forgetSessions();
});

const jwtConfig = () => ({ base_url: server.url, client_id: clientId, username, private_key_path: 'salesforce.key' });
const tokenConfig = () => ({ instance_url: server.url, access_token: token });
const fields = ['Email', 'FirstName', 'LastName', 'Score__c'];

interface OpenOptions {
  config?: Record<string, unknown>;
  destination?: Record<string, unknown>;
  strategy?: Strategy;
  fields?: string[];
  dir?: string;
}

function open(options: OpenOptions = {}): Promise<Session> {
  return salesforce.open(
    sessionContext(salesforce, {
      config: options.config ?? jwtConfig(),
      projectDir: options.dir ?? projectDir,
      destination: { connection: 'sf', object: 'Contact', ...options.destination },
      strategy: options.strategy ?? 'upsert',
      fields: options.fields ?? fields,
    }),
  );
}

const change = (action: Change['action'], key: string, record: Record<string, unknown>, appId?: string): Change => ({ key, action, record, appId });
const ada = { Email: 'ada@example.com', FirstName: 'Ada', LastName: 'Lovelace', Score__c: 9.5 };
const alan = { Email: 'alan@example.com', FirstName: 'Alan', LastName: 'Turing', Score__c: 7 };
const issues = (schema: { safeParse(v: unknown): { error?: { issues: Array<{ path: PropertyKey[]; message: string }> } } }, value: unknown) =>
  schema.safeParse(value).error?.issues.map((i) => `${i.path.join('.') || '(config)'}: ${i.message}`);

describe('salesforce plugin: config', () => {
  it('takes an access token with the instance URL, or the JWT bearer flow settings', () => {
    expect(salesforce.configSchema.parse(tokenConfig())).toMatchObject({ base_url: 'https://login.salesforce.com', api_version: '62.0', access_token: token });
    expect(salesforce.configSchema.parse(jwtConfig())).toMatchObject({ client_id: clientId, username, private_key_path: 'salesforce.key' });
    expect(issues(salesforce.configSchema, {})).toEqual(['(config): give access_token (with instance_url), or client_id, username and private_key_path for the JWT bearer flow']);
    expect(issues(salesforce.configSchema, { access_token: token })).toEqual(["instance_url: is required with access_token: the org's URL, such as https://acme.my.salesforce.com"]);
    expect(issues(salesforce.configSchema, { client_id: clientId })).toEqual(['username: is required for the JWT bearer flow', 'private_key_path: is required for the JWT bearer flow (or give private_key)']);
    expect(issues(salesforce.configSchema, { ...tokenConfig(), client_id: clientId })).toEqual(['access_token: give access_token or the JWT bearer flow settings (client_id, username, private_key_path), not both']);
    expect(issues(salesforce.configSchema, { ...tokenConfig(), api_version: '45.0' })).toEqual(['api_version: must be 46.0 or later (upsert through sObject Collections arrived in 46.0)']);
    expect(issues(salesforce.configSchema, { ...tokenConfig(), api_version: 'v62' })).toEqual(['api_version: must look like 62.0']);
  });

  it('checks the destination names an sObject and an external id field by API name', () => {
    const schema = salesforce.destinationSchema!;
    expect(schema.safeParse({ connection: 'sf', object: 'Invoice__c', external_id_field: 'Ext_Id__c' }).success).toBe(true);
    expect(issues(schema, { connection: 'sf', object: 'my contacts', external_id_field: 'a.b' })).toEqual([
      'object: must be an sObject API name, such as Contact or Invoice__c',
      'external_id_field: must be a field API name, such as External_Id__c',
    ]);
  });

  it('declares its strategies, the 200-record collection limit, and idempotent creates with an external id', () => {
    expect(salesforce.capabilities).toMatchObject({ strategies: ['create', 'update', 'upsert', 'mirror'], maxBatchSize: 200 });
    const idempotent = salesforce.capabilities!.idempotentCreate as (d: Record<string, unknown>) => boolean;
    expect(idempotent({ object: 'Contact' })).toBe(false);
    expect(idempotent({ object: 'Contact', external_id_field: 'External_Id__c' })).toBe(true);
  });
});

describe('salesforce plugin: authentication', () => {
  it('gets a session through the JWT bearer flow, signed RS256 and verified by the org', async () => {
    await salesforce.check(pluginContext(salesforce, { config: jwtConfig(), projectDir }));
    const [tokenRequest] = server.requestsTo(/^POST \/services\/oauth2\/token/);
    const form = new URLSearchParams(tokenRequest.body);
    expect(form.get('grant_type')).toBe('urn:ietf:params:oauth:grant-type:jwt-bearer');
    const [header, claims] = form.get('assertion')!.split('.').slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>);
    expect(header).toEqual({ alg: 'RS256' });
    expect(claims).toMatchObject({ iss: clientId, sub: username, aud: server.url });
    expect(Number(claims.exp) - Date.now() / 1000).toBeGreaterThan(100);
    expect(Number(claims.exp) - Date.now() / 1000).toBeLessThanOrEqual(180);
    // The session is used on the instance URL from the token answer.
    const [limits] = server.requestsTo(/^GET \/services\/data\/v62\.0\/limits/);
    expect(limits.headers.authorization).toMatch(/^Bearer 00D5g000000abcd!/);
  });

  it('takes the key inline, and shares one session between the runs of a connection', async () => {
    const config = { base_url: server.url, client_id: clientId, username, private_key: privatePem };
    await salesforce.check(pluginContext(salesforce, { config, projectDir }));
    await salesforce.check(pluginContext(salesforce, { config, projectDir }));
    expect(server.requestsTo(/oauth2\/token/)).toHaveLength(1);
    expect(server.requestsTo(/\/limits/)).toHaveLength(2);
  });

  it('explains a refused assertion with what to fix', async () => {
    const check = (config: Record<string, unknown>) => salesforce.check(pluginContext(salesforce, { config: { ...jwtConfig(), ...config }, projectDir }));
    await expect(check({ username: 'someone@else.example' })).rejects.toThrow(
      /^salesforce: the JWT bearer flow was refused \(invalid_grant: user hasn't approved this consumer\)\. Pre-authorize someone@else\.example/,
    );
    await expect(check({ audience: 'https://login.salesforce.com' })).rejects.toThrow(/invalid_grant: audience is invalid\)\. The audience was https:\/\/login\.salesforce\.com/);
    await expect(check({ client_id: 'nope' })).rejects.toThrow(/invalid_client_id: client identifier invalid\)\. client_id must be the connected app's consumer key/);
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    await expect(check({ private_key_path: undefined, private_key: other })).rejects.toThrow(/invalid assertion\)\. Check that private_key_path holds the key/);
    await expect(check({ private_key_path: 'missing.key' })).rejects.toThrow(/^salesforce: cannot read private_key_path missing\.key: ENOENT/);
    await expect(check({ private_key_path: undefined, private_key: 'not a key' })).rejects.toThrow(/is not a PEM RSA private key/);
  });

  it('the org refuses a forged or stale assertion', async () => {
    const post = (assertion: string) =>
      fetch(`${server.url}/services/oauth2/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }),
      }).then(async (r) => [r.status, await r.json()]);
    const now = Math.floor(Date.now() / 1000);
    const good = signJwt({ iss: clientId, sub: username, aud: server.url, exp: now + 120 }, keys.privateKey);
    expect((await post(good))[0]).toBe(200);
    const [head, , sig] = good.split('.');
    const forged = `${head}.${Buffer.from(JSON.stringify({ iss: clientId, sub: 'admin@acme.example', aud: server.url, exp: now + 120 })).toString('base64url')}.${sig}`;
    expect(await post(forged)).toEqual([400, { error: 'invalid_grant', error_description: 'invalid assertion' }]);
    expect(await post(signJwt({ iss: clientId, sub: username, aud: server.url, exp: now - 5 }, keys.privateKey))).toEqual([400, { error: 'invalid_grant', error_description: 'expired authorization code' }]);
  });

  it('renews an ended JWT session once and goes on', async () => {
    const session = await open();
    await session.apply([change('create', 'k1', ada)]);
    server.expireSessions();
    const [outcome] = await session.apply([change('create', 'k2', alan)]);
    expect(outcome).toMatchObject({ success: true });
    expect(server.requestsTo(/oauth2\/token/)).toHaveLength(2);
    expect(server.requestsTo(/^POST \/services\/data\/v62\.0\/composite\/sobjects$/).map((r) => r.status)).toEqual([200, 401, 200]);
  });

  it('fails the records with the refusal when a session cannot be renewed', async () => {
    const session = await open();
    server.expireSessions();
    server.revokeUser(username);
    try {
      const [outcome] = await session.apply([change('create', 'k1', ada)]);
      expect(outcome.error).toEqual({ kind: 'rejected', message: expect.stringMatching(/^the JWT bearer flow was refused \(invalid_grant: user hasn't approved this consumer\)/) });
    } finally {
      server.approveUser(username);
    }
  });

  it('refuses the records with a hint when a given access token has expired', async () => {
    const session = await open({ config: tokenConfig() });
    server.expireSessions();
    const [outcome] = await session.apply([change('create', 'k1', ada)]);
    expect(outcome.error).toEqual({
      kind: 'rejected',
      message:
        'POST /composite/sobjects answered 401: INVALID_SESSION_ID: Session expired or invalid; the session was refused: set a fresh access_token, or use the JWT bearer flow, which renews sessions',
    });
    expect(JSON.stringify(outcome)).not.toContain(token);
  });
});

describe('salesforce plugin: opening a run', () => {
  it('refuses an unknown sObject, an unknown field and an external id field that is not one', async () => {
    await expect(open({ destination: { object: 'Contcat' } })).rejects.toThrow('salesforce: the org has no sObject Contcat that this user can see; check destination.object');
    await expect(open({ fields: ['Email', 'LastNam'] })).rejects.toThrow('salesforce: Contact has no field "LastNam" (did you mean "LastName"?); the mapping\'s keys must be field API names');
    await expect(open({ destination: { external_id_field: 'Email' } })).rejects.toThrow(
      'salesforce: destination.external_id_field: Contact.Email is not marked External ID; mark it in Setup, or choose another field',
    );
    await expect(open({ destination: { external_id_field: 'External_Id__c' } })).rejects.toThrow(
      "salesforce: destination.external_id_field External_Id__c must be mapped: add it to the sync's mapping",
    );
    // Field names are case-insensitive, as in Salesforce.
    await expect(open({ fields: ['email', 'LASTNAME'] })).resolves.toBeDefined();
  });

  it('fails the run with the JWT refusal when no session can be had', async () => {
    await expect(open({ config: { ...jwtConfig(), username: 'nobody@acme.example' } })).rejects.toThrow(/user hasn't approved this consumer/);
  });
});

describe('salesforce plugin: sObject Collections', () => {
  it('creates a batch in one request, with allOrNone false and the type in each record', async () => {
    const session = await open();
    const outcomes = await session.apply([change('create', '1', ada), change('create', '2', alan)]);
    const ids = outcomes.map((o) => o.appId);
    expect(outcomes.map((o) => o.success)).toEqual([true, true]);
    expect(ids.every((id) => typeof id === 'string' && /^003[a-zA-Z0-9]{15}$/.test(id))).toBe(true);
    expect(outcomes[0].result).toEqual({ status: 200, body: { id: ids[0], success: true, errors: [] } });
    const [post] = server.requestsTo(/^POST \/services\/data\/v62\.0\/composite\/sobjects$/);
    expect(JSON.parse(post.body)).toEqual({ allOrNone: false, records: [{ attributes: { type: 'Contact' }, ...ada }, { attributes: { type: 'Contact' }, ...alan }] });
    expect(post.headers['sforce-call-options']).toBe('client=ebb');
    expect(server.list('Contact')).toEqual([ada, alan]);
  });

  it('refuses one record alone and applies the others', async () => {
    server.rejectEmail('alan@example.com');
    const session = await open();
    const [a, b] = await session.apply([change('create', '1', ada), change('create', '2', alan)]);
    expect(a.success).toBe(true);
    expect(b).toMatchObject({
      success: false,
      error: { kind: 'rejected', message: 'FIELD_CUSTOM_VALIDATION_EXCEPTION: This email address is on the do-not-contact list.' },
      result: { status: 200, body: { success: false, errors: [{ statusCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION' }] } },
    });
    const [c] = await session.apply([change('create', '3', { ...ada, Email: 'grace@example.com', LastName: null })]);
    expect(c.error).toEqual({ kind: 'rejected', message: 'REQUIRED_FIELD_MISSING: Required fields are missing: [LastName] (fields: LastName)' });
  });

  it('turns a duplicate-rule refusal into a conflict that names the existing record', async () => {
    const existing = server.insert('Contact', { Email: 'ada@example.com', LastName: 'L.' });
    const session = await open();
    const [dup] = await session.apply([change('create', '1', ada)]);
    expect(dup.error).toEqual({
      kind: 'conflict',
      existingAppId: existing,
      message: `DUPLICATES_DETECTED: Use one of these records?; matches ${existing} (Standard_Contact_Match_Rule_v1_1)`,
    });
    // What the engine then does: update that record.
    const [updated] = await session.apply([change('update', '1', ada, existing)]);
    expect(updated).toMatchObject({ success: true, appId: existing });
    expect(server.list('Contact')).toEqual([ada]);
  });

  it('turns DUPLICATE_VALUE on a unique field into a conflict with the 15-character id, which updates', async () => {
    const existing = server.insert('Contact', { Email: 'other@example.com', LastName: 'X', External_Id__c: 'C-1' });
    const session = await open({ fields: [...fields, 'External_Id__c'] });
    const [dup] = await session.apply([change('create', '1', { ...ada, External_Id__c: 'c-1' })]);
    expect(dup.error).toEqual({
      kind: 'conflict',
      existingAppId: existing.slice(0, 15),
      message: `DUPLICATE_VALUE: duplicate value found: External_Id__c duplicates value on record with id: ${existing.slice(0, 15)}`,
    });
    const [updated] = await session.apply([change('update', '1', { ...ada, External_Id__c: 'C-1' }, existing.slice(0, 15))]);
    expect(updated).toMatchObject({ success: true, appId: existing });
    expect(to18(existing.slice(0, 15))).toBe(existing);
  });

  it('updates by id, clears the mapped fields, and reports a deleted record as not found', async () => {
    const session = await open();
    const [created] = await session.apply([change('create', '1', ada)]);
    const id = created.appId!;
    await session.apply([change('update', '1', { ...ada, Score__c: 10 }, id)]);
    const [patch] = server.requestsTo(/^PATCH \/services\/data\/v62\.0\/composite\/sobjects$/);
    expect(JSON.parse(patch.body)).toEqual({ allOrNone: false, records: [{ attributes: { type: 'Contact' }, id, ...ada, Score__c: 10 }] });

    // LastName is required: a clear that nulls it is refused by the org, as it would be.
    const [cleared] = await session.apply([change('clear', '1', ada, id)]);
    expect(cleared.error?.message).toBe('REQUIRED_FIELD_MISSING: Required fields are missing: [LastName] (fields: LastName)');
    const clearable = await open({ fields: ['Email', 'Score__c'] });
    expect((await clearable.apply([change('clear', '1', ada, id)]))[0].success).toBe(true);
    expect(server.list('Contact')).toEqual([{ ...ada, Email: null, Score__c: null }]);

    server.remove('Contact', id);
    const [gone] = await session.apply([change('update', '1', ada, id)]);
    expect(gone.error).toEqual({ kind: 'not_found', message: 'ENTITY_IS_DELETED: entity is deleted' });
  });

  it('deletes a batch with one request, and a missing record is not found', async () => {
    const session = await open();
    const created = await session.apply([change('create', '1', ada), change('create', '2', alan)]);
    server.remove('Contact', created[1].appId!);
    const outcomes = await session.apply([change('delete', '1', ada, created[0].appId!), change('delete', '2', alan, created[1].appId!)]);
    expect(outcomes.map((o) => o.success || o.error?.kind)).toEqual([true, 'not_found']);
    const [del] = server.requestsTo(/^DELETE /);
    expect(del.path).toBe(`/services/data/v62.0/composite/sobjects?ids=${created[0].appId},${created[1].appId}&allOrNone=false`);
    expect(server.list('Contact')).toEqual([]);
  });

  it('upserts on the external id field: a create sent twice makes one record', async () => {
    const session = await open({ destination: { external_id_field: 'External_Id__c' }, fields: [...fields, 'External_Id__c'] });
    const first = await session.apply([change('create', '1', { ...ada, External_Id__c: '1' }), change('create', '2', { ...alan, External_Id__c: '2' })]);
    const again = await session.apply([change('create', '1', { ...ada, Score__c: 1, External_Id__c: '1' })]);
    expect(first.map((o) => o.success)).toEqual([true, true]);
    expect(again[0]).toMatchObject({ success: true, appId: first[0].appId, result: { body: { created: false } } });
    expect((first[0].result as { body: { created: boolean } }).body.created).toBe(true);
    const [patch] = server.requestsTo(/^PATCH \/services\/data\/v62\.0\/composite\/sobjects\/Contact\/External_Id__c$/);
    expect(JSON.parse(patch.body).records[0]).toEqual({ attributes: { type: 'Contact' }, ...ada, External_Id__c: '1' });
    expect(server.list('Contact')).toHaveLength(2);
    const [missing] = await session.apply([change('create', '3', { ...ada, External_Id__c: null })]);
    expect(missing.error).toEqual({ kind: 'rejected', message: 'the record has no value for the external id field External_Id__c' });
  });

  it('finds the Id of a record it never created by the external id field (the update strategy)', async () => {
    const id = server.insert('Contact', { ...ada, External_Id__c: "O'Brien\\1" });
    const session = await open({ strategy: 'update', destination: { external_id_field: 'External_Id__c' }, fields: [...fields, 'External_Id__c'] });
    const outcomes = await session.apply([change('update', '1', { ...ada, Score__c: 3, External_Id__c: "O'Brien\\1" }), change('update', '2', { ...alan, External_Id__c: 'none' })]);
    expect(outcomes[0]).toMatchObject({ success: true, appId: id });
    expect(outcomes[1].error).toEqual({ kind: 'not_found', message: 'no Contact has External_Id__c = none' });
    const [query] = server.requestsTo(/^GET \/services\/data\/v62\.0\/query/);
    expect(new URL(query.path, server.url).searchParams.get('q')).toBe("SELECT Id, External_Id__c FROM Contact WHERE External_Id__c IN ('O\\'Brien\\\\1', 'none')");
    expect(server.list('Contact')).toEqual([{ ...ada, Score__c: 3, External_Id__c: "O'Brien\\1" }]);
    // Without an external id field there is nothing to find it by.
    const plain = await open({ strategy: 'update' });
    expect((await plain.apply([change('update', '1', ada)]))[0].error?.kind).toBe('not_found');
  });

  it('escapes SOQL string literals', () => {
    expect(soqlEscape("a'b\\c\nd")).toBe("a\\'b\\\\c\\nd");
  });
});

describe('salesforce plugin: request failures', () => {
  it('reads REQUEST_LIMIT_EXCEEDED as a rate limit, with the org usage', async () => {
    const session = await open();
    server.limitRequests(1);
    const [limited] = await session.apply([change('create', '1', ada)]);
    expect(limited.error).toEqual({
      kind: 'rate_limited',
      message: 'POST /composite/sobjects answered 403: REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded. (api-usage=15000/15000)',
    });
    expect((await session.apply([change('create', '1', ada)]))[0].success).toBe(true);
  });

  it('reads 5xx as transient, and a 400 that one value causes as a batch to split', async () => {
    const session = await open();
    server.failRequests(503);
    expect((await session.apply([change('create', '1', ada)]))[0].error).toMatchObject({ kind: 'transient', message: 'POST /composite/sobjects answered 503: SERVER_UNAVAILABLE: Server temporarily unavailable' });
    const bad = { ...alan, Score__c: 'high' };
    const pair = await session.apply([change('create', '1', ada), change('create', '2', bad)]);
    expect(pair.map((o) => o.error)).toEqual([
      expect.objectContaining({ kind: 'rejected', wholeBatch: true, message: expect.stringMatching(/^POST \/composite\/sobjects answered 400: JSON_PARSER_ERROR: Cannot deserialize instance of double/) }),
      expect.objectContaining({ kind: 'rejected', wholeBatch: true }),
    ]);
    const [alone] = await session.apply([change('create', '2', bad)]);
    expect(alone.error).not.toHaveProperty('wholeBatch');
  });

  it('fails the run when the org cannot be reached', async () => {
    const closed = await SalesforceServer.start();
    const url = closed.url;
    await closed.stop();
    const session = await open({ config: { instance_url: url, access_token: token } }).catch((e: Error) => e);
    expect(session).toBeInstanceOf(Error);
    expect((session as Error).message).toMatch(/^salesforce: GET \/sobjects\/Contact\/describe failed: connect ECONNREFUSED/);
  });

  it('renders the records from templates a project can override', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ebb-sf-templates-'));
    await mkdir(join(dir, 'templates', 'salesforce'), { recursive: true });
    await writeFile(join(dir, 'salesforce.key'), privatePem);
    await writeFile(
      join(dir, 'templates', 'salesforce', 'record.json.njk'),
      '{"attributes": {"type": {{ object | tojson }}}{% if item.id %}, "id": {{ item.id | tojson }}{% endif %}, "LastName": {{ (item.record.LastName | upper) | tojson }}, "Email": {{ item.record.Email | tojson }}}',
    );
    const session = await open({ dir });
    await session.apply([change('create', '1', ada)]);
    expect(server.list('Contact')).toEqual([{ LastName: 'LOVELACE', Email: 'ada@example.com' }]);
    await writeFile(join(dir, 'templates', 'salesforce', 'record.json.njk'), '{"broken": {{ item.record.Email }}}');
    const broken = await open({ dir: dir });
    const [outcome] = await broken.apply([change('create', '1', alan)]);
    expect(outcome.error?.message).toMatch(/^salesforce\/records\.json\.njk rendered invalid JSON/);
    await rm(dir, { recursive: true, force: true });
  });
});

describe('salesforce plugin: from the CLI', () => {
  it('syncs the demo customers from `ebb init` with the JWT bearer flow, then a duplicate becomes an update', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ebb-sf-demo-'));
    await promisify(execFile)(process.execPath, [join(repoRoot, 'bin', 'ebb.js'), 'init', dir]);
    await writeFile(join(dir, 'salesforce.key'), privatePem);
    const config = parse(await readFile(join(dir, 'ebb.yml'), 'utf8')) as { connections: Record<string, unknown>; syncs: unknown[] };
    config.connections.salesforce = { plugin: 'salesforce', config: { base_url: server.url, client_id: clientId, username, private_key_path: 'salesforce.key' } };
    const sync = (name: string, { mapping, destination, ...extra }: Record<string, unknown>) => ({
      name,
      source: { table: 'analytics.customers', key: 'customer_id', filter: "lifecycle_stage = 'customer'" },
      strategy: 'upsert',
      mapping: { Email: 'email', FirstName: 'first_name', LastName: 'last_name', ...(mapping as object) },
      destination: { connection: 'salesforce', object: 'Contact', ...(destination as object) },
      ...extra,
    });
    config.syncs.push(sync('customers_to_salesforce', { mapping: { External_Id__c: { sql: 'cast(customer_id as varchar)' } }, destination: { external_id_field: 'External_Id__c' }, batch_size: 200 }));
    await writeFile(join(dir, 'ebb.yml'), stringify(config));

    const run = await ebb(dir, ['run', 'customers_to_salesforce', '--json']);
    expect(run.code, run.stderr + run.stdout).toBe(0);
    const contacts = server.list('Contact');
    expect(contacts).toHaveLength(150);
    expect(contacts[0]).toEqual({ Email: 'customer1@example.com', FirstName: 'Grace', LastName: 'Thompson', External_Id__c: '1' });
    // 150 records in one upsert request (200 at most), one describe, one token request.
    expect(server.requestsTo(/composite\/sobjects\/Contact\/External_Id__c/)).toHaveLength(1);
    expect(server.requestsTo(/oauth2\/token/)).toHaveLength(1);
    const [state] = await duck(join(dir, 'warehouse.duckdb'), "select count(*) as n, count(distinct app_identifier) as ids from ebb.sync_record_state where sync_name = 'customers_to_salesforce' and apply_state = 'SUCCESS'");
    expect(state).toEqual({ n: 150, ids: 150 });

    // A second sync without an external id: the duplicate rule names the existing contacts, which are updated.
    server.reset();
    const existing = server.insert('Contact', { Email: 'customer2@example.com', LastName: 'Old' });
    server.rejectEmail('customer3@example.com');
    config.syncs.push(sync('customers_by_email', {}));
    await writeFile(join(dir, 'ebb.yml'), stringify(config));
    const second = await ebb(dir, ['run', 'customers_by_email']);
    expect(second.code).toBe(2);
    expect(server.list('Contact')).toHaveLength(149);
    expect(server.records.get('Contact')!.get(existing)).toMatchObject({ Email: 'customer2@example.com', LastName: 'Allen', FirstName: 'Alan' });
    const history = await duck(join(dir, 'warehouse.duckdb'), "select record_key, action, success, app_identifier from ebb.sync_record_history where sync_name = 'customers_by_email' and record_key in ('2', '3') order by record_key, recorded_at");
    expect(history).toEqual([
      { record_key: '2', action: 'update', success: true, app_identifier: existing },
      { record_key: '3', action: 'create', success: false, app_identifier: null },
    ]);
    await rm(dir, { recursive: true, force: true });
  });
});

/**
 * Conformance harnesses: a Contact in the stand-in org, through the JWT bearer flow.
 *
 * - `salesforceHarness` matches by the duplicate rule (no external id field): a create of a
 *   contact whose email the org holds is refused with DUPLICATES_DETECTED naming it, and updated.
 *   Not `update`: without an external id field there is nothing to find a record by.
 * - `salesforceExternalIdHarness` upserts on External_Id__c (the person's id) and finds records by
 *   it: the `update` strategy. Its creates are upserts, so a record the org holds already is
 *   matched by the create itself (history says create, not update): upsert and mirror run in the
 *   first harness, where the conflict → update retry is what happens.
 *
 * Neither has `rateLimitOnce`: Salesforce's rate-limit answer, 403 REQUEST_LIMIT_EXCEEDED, carries
 * no wait (no Retry-After; the daily allocation is a rolling 24 hours), so there is no "wait ~1 s"
 * to honour. Its handling (rate_limited, retried after the connection's delays) is tested above.
 */
export function salesforceHarness(options: { externalId?: boolean } = {}): () => Promise<PluginHarness> {
  return async () => {
    const org = await SalesforceServer.start({ connectedApp: { clientId, usernames: [username], publicKey: publicPem } });
    const mapping: PluginHarness['mapping'] = { Email: 'email', FirstName: 'first_name', LastName: 'last_name', Score__c: 'score' };
    if (options.externalId) mapping.External_Id__c = { sql: 'cast(id as varchar)' };
    return {
      connection: { plugin: 'salesforce', config: { base_url: org.url, client_id: clientId, username, private_key: privatePem } },
      destination: { object: 'Contact', ...(options.externalId && { external_id_field: 'External_Id__c' }) },
      mapping,
      strategies: options.externalId ? ['create', 'update'] : ['create', 'upsert', 'mirror'],
      read: async () => org.list('Contact'),
      seed: async (record) => void org.insert('Contact', record),
      faults: {
        rejectEmail: (email) => org.rejectEmail(email),
        clear: () => org.clearFaults(),
      },
      close: () => org.stop(),
    };
  };
}

describePlugin('salesforce (duplicate rule)', salesforceHarness());
describePlugin('salesforce (external id)', salesforceHarness({ externalId: true }));
