import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import httpPlugin, { parseRetryAfter, renderLookup } from '../../plugins/http/index.ts';
import type { Change, Session, Strategy } from '../../plugins/plugin.ts';
import { ContactsServer } from '../support/contacts-server.ts';
import { FaultServer } from '../support/fault-server.ts';
import { pluginContext, sessionContext } from '../support/plugin-context.ts';
import { templateRenderer } from '../../engine/templates.ts';

let server: ContactsServer;
let projectDir: string;
beforeAll(async () => {
  server = await ContactsServer.start();
  projectDir = await mkdtemp(join(tmpdir(), 'ebb-http-'));
});
afterAll(async () => {
  await server.stop();
  await rm(projectDir, { recursive: true, force: true });
});
beforeEach(() => server.reset());

const token = 'Bearer s3cret-token-value';

const contactRequests = {
  create: { method: 'POST', path: '/contacts', body: '{{ record | tojson }}', app_id: '{{ response.id }}', headers: { 'x-ebb-key': '{{ key }}' } },
  update: { method: 'PATCH', path: '/contacts/{{ app_id | urlencode }}', body: '{{ record | tojson }}' },
  delete: { method: 'DELETE', path: '/contacts/{{ app_id }}' },
  send: { method: 'POST', path: '/events', body: '{"type": "{{ action }}", "email": "{{ record.email }}"}', app_id: '{{ response }}' },
};

interface OpenOptions {
  requests?: Record<string, unknown>;
  strategy?: Strategy;
  config?: Record<string, unknown>;
  schedule?: <T>(request: () => Promise<T>) => Promise<T>;
}

function open(options: OpenOptions = {}): Promise<Session> {
  return httpPlugin.open(
    sessionContext(httpPlugin, {
      config: { base_url: `${server.url}/`, headers: { authorization: token }, ...options.config },
      projectDir,
      destination: { connection: 'crm', object: 'contacts', requests: options.requests ?? contactRequests },
      strategy: options.strategy ?? 'upsert',
      fields: ['email', 'name'],
      schedule: options.schedule,
    }),
  );
}

const change = (action: Change['action'], key: string, record: Record<string, unknown>, appId?: string | null): Change => ({ key, action, record, appId });
const ann = { email: 'ann@x.io', name: 'Ann' };
const bob = { email: 'bob@x.io', name: 'Bob' };

describe('http plugin: schemas', () => {
  it('validates the config', () => {
    expect(httpPlugin.configSchema.parse({ base_url: 'https://api.example.com' })).toEqual({ base_url: 'https://api.example.com', timeout_ms: 30_000 });
    const bad = httpPlugin.configSchema.safeParse({ base_url: 'ftp://example.com', timeout_ms: -1 });
    expect(bad.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      'base_url: must be an http:// or https:// URL',
      'timeout_ms: Too small: expected number to be >0',
    ]);
  });

  it('validates the request templates', () => {
    const schema = httpPlugin.destinationSchema!;
    expect(schema.safeParse({ connection: 'crm', object: 'contacts', requests: contactRequests }).success).toBe(true);
    const issues = (requests: unknown) =>
      schema.safeParse({ connection: 'crm', object: 'contacts', requests }).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(issues({ creat: { method: 'POST', path: '/x' } })).toEqual([
      'requests: Unrecognized key: "creat"',
      'requests: define at least one request, such as requests.create',
    ]);
    expect(issues({ create: { method: 'GET', path: '/x', body: '{}' } })).toEqual(['requests.create.body: a GET request has no body']);
    expect(issues({ create: { method: 'FETCH', path: '/x' } })?.[0]).toMatch(/^requests\.create\.method: Invalid option/);
    expect(issues({})).toEqual(['requests: define at least one request, such as requests.create']);
  });

  it('refuses to open a run whose strategy needs a missing template', async () => {
    await expect(open({ strategy: 'mirror', requests: { create: contactRequests.create, update: contactRequests.update } })).rejects.toThrow(
      'sync test_sync: the mirror strategy sends delete requests; add destination.requests.delete',
    );
    // replace sends recreate, which borrows create's template.
    await expect(open({ strategy: 'replace', requests: { create: contactRequests.create } })).resolves.toBeDefined();
  });
});

describe('http plugin: requests and answers', () => {
  it('creates, updates, clears and deletes, rendering each request from its template', async () => {
    const session = await open();
    const created = await session.apply([change('create', 'k1', ann), change('create', 'k2', bob)]);
    expect(created).toEqual([
      { key: 'k1', success: true, appId: 'c1', result: { status: 201, body: { id: 'c1', ...ann } } },
      { key: 'k2', success: true, appId: 'c2', result: { status: 201, body: { id: 'c2', ...bob } } },
    ]);
    const post = server.requests.find((r) => r.headers['x-ebb-key'] === 'k1')!;
    expect(post).toMatchObject({ method: 'POST', path: '/contacts', body: JSON.stringify(ann) });
    expect(post.headers).toMatchObject({ authorization: token, 'content-type': 'application/json', accept: 'application/json' });

    const updated = await session.apply([change('update', 'k1', { ...ann, name: 'Annie' }, 'c1')]);
    expect(updated).toEqual([{ key: 'k1', success: true, appId: 'c1', result: { status: 200, body: { id: 'c1', email: 'ann@x.io', name: 'Annie' } } }]);
    expect(server.requests.at(-1)).toMatchObject({ method: 'PATCH', path: '/contacts/c1', body: '{"email":"ann@x.io","name":"Annie"}' });

    // clear has no template of its own: it borrows update's.
    const cleared = await session.apply([change('clear', 'k2', { email: null, name: null }, 'c2')]);
    expect(cleared[0]).toMatchObject({ success: true, appId: 'c2' });
    expect(server.requests.at(-1)).toMatchObject({ method: 'PATCH', path: '/contacts/c2', body: '{"email":null,"name":null}' });

    const deleted = await session.apply([change('delete', 'k1', ann, 'c1')]);
    expect(deleted).toEqual([{ key: 'k1', success: true, appId: 'c1', result: { status: 204, body: null } }]);
    expect(server.requests.at(-1)).toMatchObject({ method: 'DELETE', path: '/contacts/c1', body: '' });
    expect([...server.contacts.keys()]).toEqual(['c2']);
    await session.close(true);
  });

  it('classifies 404 on update, delete and clear as not_found, and on create as rejected', async () => {
    const session = await open({ requests: { ...contactRequests, create: { method: 'POST', path: '/nowhere', body: '{}' } } });
    const outcomes = await session.apply([change('update', 'k1', ann, 'c404')]);
    expect(outcomes[0]).toEqual({
      key: 'k1',
      success: false,
      appId: 'c404',
      result: { status: 404, body: { error: 'no contact c404' } },
      error: { kind: 'not_found', message: 'PATCH /contacts/c404 answered 404: {"error":"no contact c404"}' },
    });
    expect((await session.apply([change('delete', 'k1', ann, 'c404')]))[0].error?.kind).toBe('not_found');
    expect((await session.apply([change('clear', 'k1', ann, 'c404')]))[0].error?.kind).toBe('not_found');
    expect((await session.apply([change('create', 'k1', ann)]))[0].error?.kind).toBe('rejected');
  });

  it('classifies a duplicate as conflict with the existing id', async () => {
    const session = await open();
    await session.apply([change('create', 'k1', ann)]);
    const [dup] = await session.apply([change('create', 'k9', { ...ann, name: 'Other Ann' })]);
    expect(dup).toMatchObject({ key: 'k9', success: false, error: { kind: 'conflict', existingAppId: 'c1' } });
    expect(dup.error?.message).toBe('POST /contacts answered 409: {"error":"duplicate email","id":"c1"}');

    server.inject({ path: '/contacts', status: 409, body: { existing_id: 77 } });
    expect((await session.apply([change('create', 'k8', bob)]))[0].error).toMatchObject({ kind: 'conflict', existingAppId: '77' });
    server.inject({ path: '/contacts', status: 409, body: 'already there' });
    const [noId] = await session.apply([change('create', 'k8', bob)]);
    expect(noId.error?.kind).toBe('conflict');
    expect(noId.error).not.toHaveProperty('existingAppId');
  });

  it('classifies 429 as rate_limited with Retry-After, 5xx as transient, other 4xx as rejected', async () => {
    const session = await open();
    server.inject({ status: 429, headers: { 'retry-after': '7' }, body: { error: 'slow down' } });
    expect((await session.apply([change('create', 'k1', ann)]))[0].error).toEqual({
      kind: 'rate_limited',
      message: 'POST /contacts answered 429: {"error":"slow down"}',
      retryAfterMs: 7000,
    });
    server.inject({ status: 429, headers: { 'retry-after': new Date(Date.now() + 60_000).toUTCString() } });
    const byDate = (await session.apply([change('create', 'k1', ann)]))[0].error;
    expect(byDate?.kind).toBe('rate_limited');
    expect(byDate?.retryAfterMs).toBeGreaterThan(55_000);
    expect(byDate?.retryAfterMs).toBeLessThanOrEqual(60_000);

    server.inject({ status: 500, body: { error: 'boom' } });
    expect((await session.apply([change('create', 'k1', ann)]))[0]).toMatchObject({
      success: false,
      result: { status: 500, body: { error: 'boom' } },
      error: { kind: 'transient', message: 'POST /contacts answered 500: {"error":"boom"}' },
    });
    server.inject({ status: 503, headers: { 'retry-after': '2' } });
    expect((await session.apply([change('create', 'k1', ann)]))[0].error).toEqual({ kind: 'transient', message: 'POST /contacts answered 503', retryAfterMs: 2000 });

    const [invalid] = await session.apply([change('create', 'k1', { name: 'no email' })]);
    expect(invalid).toMatchObject({
      success: false,
      result: { status: 400, body: { error: 'email is required' } },
      error: { kind: 'rejected', message: 'POST /contacts answered 400: {"error":"email is required"}' },
    });
    server.inject({ status: 422, body: 'unprocessable' });
    expect((await session.apply([change('create', 'k1', ann)]))[0].error?.kind).toBe('rejected');
  });

  it('classifies connection resets, refused connections and timeouts as transient, and says which may have reached the app', async () => {
    const session = await open({ config: { timeout_ms: 300 } });
    server.inject({ drop: 'reset' });
    const [reset] = await session.apply([change('create', 'k1', ann)]);
    expect(reset.error).toMatchObject({ kind: 'transient', noAnswer: 'sent' });
    expect(reset.error?.message).toMatch(/^POST \/contacts failed: /);

    server.inject({ drop: 'hang' });
    expect((await session.apply([change('create', 'k1', ann)]))[0].error).toEqual({
      kind: 'transient',
      message: 'POST /contacts failed: no answer within 300 ms',
      noAnswer: 'sent',
    });

    const closed = await ContactsServer.start();
    await closed.stop();
    const refused = await open({ config: { base_url: closed.url } });
    const [noServer] = await refused.apply([change('create', 'k1', ann)]);
    expect(noServer.error).toEqual({ kind: 'transient', message: expect.stringMatching(/^POST \/contacts failed: .*ECONNREFUSED/) as unknown, noAnswer: 'connect' });
  });

  it('finds records with requests.lookup: found, not there (404 or an empty app_id), or cannot tell', async () => {
    const lookup = { method: 'GET', path: '/contacts/{{ record.email | urlencode }}', app_id: '{{ response.id }}' };
    const session = await open({ requests: { ...contactRequests, lookup } });
    const [created] = await session.apply([change('create', 'k1', ann)]);
    // This server's GET /contacts/:id stands in for a search: ann's email is no id there, so
    // each lookup below gets the answer it is given.
    server.inject({ status: 200, body: { id: created.appId } });
    server.inject({ status: 404, body: { error: 'no such contact' } });
    server.inject({ status: 200, body: { results: [] } });
    server.inject({ status: 503, body: 'down' });
    const found = [];
    for (let i = 0; i < 4; i++) found.push(...(await session.find!([change('create', 'k1', ann)])));
    expect(found).toEqual([
      { key: 'k1', appId: created.appId },
      { key: 'k1', appId: null },
      { key: 'k1', appId: null },
      { key: 'k1', error: 'GET /contacts/ann%40x.io answered 503: down' },
    ]);
    expect(server.requests.at(-1)).toMatchObject({ method: 'GET', path: '/contacts/ann%40x.io' });
    expect((await open()).find).toBeUndefined();
    expect(httpPlugin.destinationSchema!.safeParse({ object: 'c', requests: { lookup: { method: 'GET', path: '/c' } } }).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      'requests.lookup: a lookup request needs app_id (the identifier found in the answer) and no batch',
    ]);
  });

  it('keeps app_id when its template renders empty, and reads text answers', async () => {
    const session = await open({
      requests: { ...contactRequests, update: { ...contactRequests.update, app_id: '{{ response.nothing }}' } },
      strategy: 'send',
    });
    const [sent] = await session.apply([change('send', 'k1', ann)]);
    // The text body is `response` itself.
    expect(sent).toEqual({ key: 'k1', success: true, appId: 'accepted', result: { status: 202, body: 'accepted' } });
    expect(server.requests.at(-1)?.body).toBe('{"type": "send", "email": "ann@x.io"}');

    await session.apply([change('create', 'k2', ann)]);
    const [updated] = await session.apply([change('update', 'k2', ann, 'c1')]);
    expect(updated).toMatchObject({ success: true, appId: 'c1' });
  });

  it('truncates a large answer in the result', async () => {
    const session = await open();
    server.inject({ status: 200, body: 'x'.repeat(10_000) });
    const [big] = await session.apply([change('update', 'k1', ann, 'c1')]);
    expect(big.success).toBe(true);
    expect(big.result).toEqual({ status: 200, body: `${'x'.repeat(4096)}… (truncated; 10000 characters)` });
  });

  it('refuses to open a run whose templates do not compile, use an unknown filter or an undefined variable', async () => {
    const opening = open({
      requests: {
        create: { ...contactRequests.create, path: '/contacts/{{ record.email | nosuchfilter }}' },
        update: { method: 'PATCH', path: '/contacts/{{ app_id }}', body: '{{ recrod | tojson }}', headers: { 'x-name': '{{ record.nmae }}' } },
      },
    });
    await expect(opening).rejects.toThrow(
      'sync test_sync: destination.requests.create.path: filter not found: nosuchfilter; ' +
        'destination.requests.update.headers.x-name: undefined variable "record.nmae"; destination.requests.update.body: undefined variable "recrod"',
    );
    expect(server.requests).toEqual([]);
  });

  it('turns template failures at run time into rejected outcomes that name the template, and sends nothing', async () => {
    const session = await open({
      requests: { create: { ...contactRequests.create, body: '{{ record.email | join(",") }}' }, update: contactRequests.update, delete: contactRequests.delete },
    });
    const [create] = await session.apply([change('create', 'k1', ann)]);
    expect(create.success).toBe(false);
    expect(create.error?.kind).toBe('rejected');
    expect(create.error?.message).toMatch(/^cannot render requests\.create\.body: .*join/);

    // A clear of a record whose app_id ebb does not know would go to the collection URL.
    const [clear] = await session.apply([change('clear', 'k1', ann, null)]);
    expect(clear.error).toEqual({
      kind: 'rejected',
      message: 'cannot render requests.update.path (used for clear): {{ app_id | urlencode }} is empty, and a URL path segment needs a value',
    });

    const [send] = await session.apply([change('send', 'k1', ann)]);
    expect(send.error).toEqual({ kind: 'rejected', message: 'no request template for send: add destination.requests.send' });
    expect(server.requests).toEqual([]);
  });

  it('rejects a success whose app_id cannot be rendered, keeping the answer', async () => {
    const session = await open({ requests: { create: { ...contactRequests.create, app_id: '{{ response.tags | join(",") }}' } }, strategy: 'create' });
    const [outcome] = await session.apply([change('create', 'k1', ann)]);
    expect(outcome).toMatchObject({ success: false, result: { status: 201, body: { id: 'c1' } }, error: { kind: 'rejected' } });
    expect(outcome.error?.message).toMatch(/^POST \/contacts answered 201, but cannot render requests\.create\.app_id: /);
  });

  it('uses templates from the project, and a bad header value is a rejection', async () => {
    await mkdir(join(projectDir, 'templates/crm'), { recursive: true });
    await writeFile(join(projectDir, 'templates/crm/contact.json.njk'), '{"email": "{{ record.email }}", "source": "ebb"}');
    const session = await open({
      requests: { create: { method: 'POST', path: '/contacts', body: "{% include 'crm/contact.json.njk' %}", headers: { 'x-bad': '{{ record.name }}\n{{ record.email }}' } } },
      strategy: 'create',
    });
    const [bad] = await session.apply([change('create', 'k1', ann)]);
    expect(bad.error?.kind).toBe('rejected');
    expect(bad.error?.message).toMatch(/^cannot build the create request: /);

    const good = await open({ requests: { create: { method: 'POST', path: '/contacts', body: "{% include 'crm/contact.json.njk' %}" } }, strategy: 'create' });
    const [created] = await good.apply([change('create', 'k1', ann)]);
    expect(created).toMatchObject({ success: true, appId: 'k1' }); // no app_id template: the key
    expect(server.requests.at(-1)?.body).toBe('{"email": "ann@x.io", "source": "ebb"}');
  });

  it('sends every request through schedule, and never puts headers in outcomes', async () => {
    let scheduled = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    const session = await open({
      schedule: async (request) => {
        scheduled++;
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        try {
          return await request();
        } finally {
          inFlight--;
        }
      },
    });
    const outcomes = await session.apply([1, 2, 3, 4, 5].map((i) => change('create', `k${i}`, { email: `u${i}@x.io` })));
    expect(outcomes.map((o) => o.key)).toEqual(['k1', 'k2', 'k3', 'k4', 'k5']);
    expect(outcomes.every((o) => o.success)).toBe(true);
    expect(scheduled).toBe(5);
    expect(maxInFlight).toBe(5); // one batch's requests run concurrently; schedule would bound them
    expect(JSON.stringify(outcomes)).not.toContain('s3cret');
  });
});

describe('http plugin: check', () => {
  it('passes on any HTTP answer, even a 404', async () => {
    await expect(httpPlugin.check(pluginContext(httpPlugin, { config: { base_url: server.url, headers: { authorization: token } }, projectDir }))).resolves.toBeUndefined();
    expect(server.requests.at(-1)).toMatchObject({ method: 'GET', path: '/', headers: { authorization: token } });
  });

  it('names the base_url when the server cannot be reached', async () => {
    const closed = await ContactsServer.start();
    await closed.stop();
    await expect(httpPlugin.check(pluginContext(httpPlugin, { config: { base_url: closed.url }, projectDir }))).rejects.toThrow(
      new RegExp(`^cannot reach ${closed.url}: .*ECONNREFUSED`),
    );
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 23:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter(null, now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
  });
});

describe('http plugin: batch mode', () => {
  let app: FaultServer;
  beforeAll(async () => {
    app = await FaultServer.start();
  });
  afterAll(() => app.stop());
  beforeEach(() => {
    app.reset();
    app.configure({ faults: [], rejectWholeBatch: false, latencyMs: 0 });
  });

  const each = (item: string) => `[{% for c in changes %}${item}{{ "," if not loop.last }}{% endfor %}]`;
  const batchRequests = {
    create: { method: 'POST', path: '/contacts/batch/create', batch: true, body: '{"inputs": {{ records | tojson }}}', results: 'results', app_id: '{{ result.id }}', error: '{{ result.error }}' },
    update: {
      method: 'POST',
      path: '/contacts/batch/update',
      batch: true,
      body: `{"inputs": ${each('{"id": {{ c.app_id | tojson }}, "properties": {{ c.record | tojson }}}')}}`,
      results: 'results',
      error: '{{ result.error }}',
    },
    delete: { method: 'POST', path: '/contacts/batch/delete', batch: true, body: `{"inputs": ${each('{"id": {{ c.app_id | tojson }}}')}}`, results: 'results', error: '{{ result.error }}' },
  };
  const openBatch = (options: OpenOptions = {}) => open({ requests: batchRequests, config: { base_url: app.url }, ...options });
  const people = (n: number, bad: number[] = []) => Array.from({ length: n }, (_, i) => change('create', `k${i + 1}`, { email: `${bad.includes(i + 1) ? 'bad' : 'u'}${i + 1}@x.io` }));

  it('validates batch templates: a body is required, results and error need batch', () => {
    const issues = (requests: unknown) =>
      httpPlugin.destinationSchema!.safeParse({ connection: 'crm', object: 'contacts', requests }).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(issues(batchRequests)).toBeUndefined();
    expect(issues({ create: { method: 'POST', path: '/b', batch: true } })).toEqual(['requests.create.body: a batch request needs a body that lists the changes']);
    expect(issues({ create: { method: 'POST', path: '/c', body: '{}', results: 'results', error: '{{ response.error }}' } })).toEqual([
      'requests.create.results: results only applies to a batch request (batch: true)',
    ]);
    expect(issues({ create: { method: 'POST', path: '/b', batch: 'yes', body: '{}' } })?.[0]).toMatch(/^requests\.create\.batch: Invalid input: expected boolean/);
  });

  it('sends one request per batch, with changes in the body, and reads one item per record', async () => {
    let scheduled = 0;
    const session = await openBatch({ schedule: (request) => (scheduled++, request()) });
    const outcomes = await session.apply(people(3, [2]));
    expect(scheduled).toBe(1);
    expect(app.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /contacts/batch/create']);
    expect(app.received()).toEqual([{ email: 'u1@x.io' }, { email: 'bad2@x.io' }, { email: 'u3@x.io' }]);
    expect(outcomes).toEqual([
      { key: 'k1', success: true, appId: 'c1', result: { status: 200, body: { id: 'c1' } } },
      { key: 'k2', success: false, appId: undefined, result: { status: 200, body: { error: 'invalid email' } }, error: { kind: 'rejected', message: 'invalid email' } },
      { key: 'k3', success: true, appId: 'c2', result: { status: 200, body: { id: 'c2' } } },
    ]);

    // The update body sees each change's app_id; an unknown id is refused alone.
    const updated = await session.apply([change('update', 'k1', { email: 'u1@x.io', name: 'One' }, 'c1'), change('update', 'k9', { email: 'u9@x.io' }, 'c404')]);
    expect(app.requests.at(-1)?.records).toEqual([
      { id: 'c1', email: 'u1@x.io', name: 'One' },
      { id: 'c404', email: 'u9@x.io' },
    ]);
    expect(updated.map((o) => [o.key, o.success, o.appId, o.error?.message])).toEqual([
      ['k1', true, 'c1', undefined],
      ['k9', false, 'c404', 'not found'],
    ]);
    expect(app.contacts.get('c1')).toEqual({ email: 'u1@x.io', name: 'One' });

    // A batch clear borrows the update template; a batch delete without app_id keeps the known id.
    const deleted = await session.apply([change('delete', 'k3', {}, 'c2')]);
    expect(deleted).toEqual([{ key: 'k3', success: true, appId: 'c2', result: { status: 200, body: { id: 'c2' } } }]);
    expect([...app.contacts.keys()]).toEqual(['c1']);
  });

  it('reads the answer itself when it is a list, and a plain acknowledgement as success for all', async () => {
    const requests = { send: { method: 'POST', path: '/events', batch: true, body: '{{ changes | tojson }}', app_id: '{{ result.ref }}' } };
    const session = await open({ requests, strategy: 'send' });
    server.inject({ status: 200, body: [{ ref: 'e1' }, { ref: 'e2' }] });
    const listed = await session.apply([change('send', 'k1', ann), change('send', 'k2', bob)]);
    expect(listed.map((o) => [o.success, o.appId, o.result])).toEqual([
      [true, 'e1', { status: 200, body: { ref: 'e1' } }],
      [true, 'e2', { status: 200, body: { ref: 'e2' } }],
    ]);
    // Written as JSON.stringify writes the list (tojson's text, with each record's own text in it).
    expect(server.requests.at(-1)!.body).toBe(
      JSON.stringify([
        { key: 'k1', record: ann, app_id: null, action: 'send' },
        { key: 'k2', record: bob, app_id: null, action: 'send' },
      ]),
    );

    // 202 "accepted": no per-record answers, so every record succeeded; app_id renders empty (no id).
    const acknowledged = await session.apply([change('send', 'k1', ann), change('send', 'k2', bob)]);
    expect(acknowledged).toEqual([
      { key: 'k1', success: true, appId: undefined, result: { status: 202, body: 'accepted' } },
      { key: 'k2', success: true, appId: undefined, result: { status: 202, body: 'accepted' } },
    ]);
  });

  it('fails a created record whose app_id renders empty, as in doubt (`sent`): ebb never records a create without its identifier', async () => {
    const requests = { create: { method: 'POST', path: '/contacts', batch: true, body: '{{ records | tojson }}', app_id: '{{ result.id }}' } };
    const session = await open({ requests, strategy: 'create' });
    server.inject({ status: 200, body: [{ id: 'c1' }, { status: 'ok' }] });
    const outcomes = await session.apply([change('create', 'k1', ann), change('create', 'k2', bob)]);
    expect(outcomes[0]).toMatchObject({ success: true, appId: 'c1' });
    expect(outcomes[1]).toMatchObject({ success: false, result: { status: 200, body: { status: 'ok' } } });
    expect(outcomes[1].error).toEqual({
      kind: 'rejected',
      noAnswer: 'sent',
      message:
        'POST /contacts (a batch of 2) answered 200, but requests.create.app_id ({{ result.id }}) rendered empty: the answer holds no identifier there. ' +
        "Without the record's identifier, ebb could not update or delete it later; make app_id read the identifier from the answer",
    });
  });

  it('refuses every record when the per-record answers are missing or misaligned', async () => {
    const requests = { create: { method: 'POST', path: '/contacts', batch: true, body: '{{ records | tojson }}', results: 'data.items' } };
    const session = await open({ requests, strategy: 'create' });
    server.inject({ status: 200, body: { data: { items: [{ id: 1 }] } } });
    const short = await session.apply([change('create', 'k1', ann), change('create', 'k2', bob)]);
    expect(short.map((o) => o.error)).toEqual(
      Array(2).fill({
        kind: 'rejected',
        message: 'POST /contacts (a batch of 2) answered 200, but results (data.items) holds 1 items for 2 records; check requests.create.results',
      }),
    );
    server.inject({ status: 201, body: { ok: true } });
    expect((await session.apply([change('create', 'k1', ann)]))[0].error?.message).toMatch(/but results \(data\.items\) holds no list for 1 records/);
    server.inject({ status: 200, body: { data: { items: [{ id: 1 }, { id: 2 }] } } });
    expect((await session.apply([change('create', 'k1', ann), change('create', 'k2', bob)])).map((o) => [o.success, o.appId])).toEqual([
      [true, 'k1'],
      [true, 'k2'],
    ]);
  });

  it('classifies a whole answer for every record: 429, 5xx, resets, timeouts, 404, and 4xx as a whole-batch rejection', async () => {
    const session = await openBatch({ config: { base_url: app.url, timeout_ms: 300 } });
    const kinds = async () => (await session.apply(people(2))).map((o) => o.error);

    app.configure({ faults: [{ kind: 'rate_limit', retryAfterSeconds: 2, firstRequests: 1 }] });
    expect(await kinds()).toEqual(
      Array(2).fill({ kind: 'rate_limited', message: 'POST /contacts/batch/create (a batch of 2) answered 429: {"error":"too many requests"}', retryAfterMs: 2000 }),
    );
    app.configure({ faults: [{ kind: 'error', status: 502, firstRequests: 1 }] });
    expect((await kinds()).map((e) => e?.kind)).toEqual(['transient', 'transient']);
    app.configure({ faults: [{ kind: 'reset', firstRequests: 1 }] });
    expect((await kinds()).map((e) => e?.message)).toEqual(Array(2).fill(expect.stringMatching(/^POST \/contacts\/batch\/create \(a batch of 2\) failed: /) as unknown));
    app.configure({ faults: [{ kind: 'hang', firstRequests: 1 }] });
    expect(await kinds()).toEqual(Array(2).fill({ kind: 'transient', message: 'POST /contacts/batch/create (a batch of 2) failed: no answer within 300 ms', noAnswer: 'sent' }));
    app.configure({ faults: [{ kind: 'error', status: 408, firstRequests: 1 }] });
    expect((await kinds()).map((e) => e?.kind)).toEqual(['transient', 'transient']);
    app.configure({ faults: [] });

    app.configure({ rejectWholeBatch: true });
    const whole = await session.apply(people(3, [3]));
    expect(whole.map((o) => [o.success, o.error?.kind, o.error?.wholeBatch])).toEqual(Array(3).fill([false, 'rejected', true]));
    expect(whole[0].error?.message).toBe('POST /contacts/batch/create (a batch of 3) answered 422: {"error":"invalid email","index":2}');
    expect(whole[0].result).toEqual({ status: 422, body: { error: 'invalid email', index: 2 } });
    // A batch of one is about that record alone: a final rejection.
    const [alone] = await session.apply(people(1, [1]));
    expect(alone.error).toEqual({ kind: 'rejected', message: 'POST /contacts/batch/create answered 422: {"error":"invalid email","index":0}' });

    app.configure({ faults: [{ kind: 'error', status: 404, match: /update/ }] });
    const missing = await session.apply([change('update', 'k1', ann, 'c1'), change('update', 'k2', bob, 'c2')]);
    expect(missing.map((o) => o.error?.kind)).toEqual(['not_found', 'not_found']);
  });

  it('splits a 409 like a rejection, and reads the existing id once the batch is down to one record', async () => {
    const requests = { create: { method: 'POST', path: '/contacts', batch: true, body: '{{ records | tojson }}' } };
    const session = await open({ requests, strategy: 'create' });
    server.inject({ status: 409, body: { error: 'duplicate email', id: 'c7' } });
    expect((await session.apply([change('create', 'k1', ann), change('create', 'k2', bob)])).map((o) => o.error?.kind && [o.error.kind, o.error.wholeBatch])).toEqual([
      ['rejected', true],
      ['rejected', true],
    ]);
    server.inject({ status: 409, body: { error: 'duplicate email', id: 'c7' } });
    const [one] = await session.apply([change('create', 'k1', ann)]);
    expect(one.error).toEqual({ kind: 'conflict', existingAppId: 'c7', message: 'POST /contacts answered 409: {"error":"duplicate email","id":"c7"}' });
  });

  it('refuses records whose templates fail: the body as a whole batch (no request), app_id and error per record', async () => {
    const session = await openBatch({
      requests: { ...batchRequests, create: { ...batchRequests.create, body: '{{ records[0].email | join(",") }}' }, update: { ...batchRequests.update, app_id: '{{ result.tags | join(",") }}' } },
    });
    const created = await session.apply(people(2));
    expect(created.map((o) => [o.error?.kind, o.error?.wholeBatch])).toEqual(Array(2).fill(['rejected', true]));
    expect(created[0].error?.message).toMatch(/^cannot render requests\.create\.body: .*join/);
    expect((await session.apply(people(1)))[0].error).not.toHaveProperty('wholeBatch');
    expect(app.requests).toEqual([]);

    await openBatch().then((s) => s.apply(people(1)));
    const [updated] = await session.apply([change('update', 'k1', { email: 'u1@x.io' }, 'c1')]);
    expect(updated).toMatchObject({ success: false, result: { status: 200, body: { id: 'c1' } }, error: { kind: 'rejected' } });
    expect(updated.error?.message).toMatch(/^POST \/contacts\/batch\/update answered 200, but cannot render requests\.update\.app_id: /);
  });
});

describe('renderLookup', () => {
  it('renders a plain lookup exactly as nunjucks does, and leaves every other template to nunjucks', () => {
    const nunjucks = templateRenderer(tmpdir());
    const context = { result: { id: 42, error: null, name: 'Ann', ok: true, tags: ['a', 'b'], nested: { deep: 'x' }, zero: 0, empty: '' }, key: 'k1', response: 'text' };
    const lookups = ['{{ result.id }}', '{{result.error}}', '{{ result.name }}', '{{ result.ok }}', '{{ result.tags }}', '{{ result.nested }}', '{{ result.nested.deep }}'];
    const more = ['/contacts/batch/create', 'plain } text', '', '{{ result.missing }}', '{{ result.missing.deeper }}', '{{ result.zero }}', '{{ result.empty }}', '{{ key }}', '{{ response.length }}', '{{- result.id -}}'];
    for (const template of [...lookups, ...more]) {
      expect(renderLookup(template, context), template).toBe(nunjucks.renderString(template, context));
    }
    for (const template of ['{{ result.id | string }}', ' {{ result.id }}', '{{ result["id"] }}', '{{ range }}', '{{ result.name.toUpperCase }}', 'id-{{ key }}', '{% if x %}{% endif %}']) {
      expect(renderLookup(template, context), template).toBeUndefined();
    }
  });
});
