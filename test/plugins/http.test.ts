import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import httpPlugin, { parseRetryAfter } from '../../plugins/http/index.ts';
import type { Change, Session, Strategy } from '../../plugins/plugin.ts';
import { ContactsServer } from '../support/contacts-server.ts';
import { pluginContext, sessionContext } from '../support/plugin-context.ts';

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

const change = (action: Change['action'], key: string, record: Record<string, unknown>, appId?: string): Change => ({ key, action, record, appId });
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

  it('classifies connection resets, refused connections and timeouts as transient', async () => {
    const session = await open({ config: { timeout_ms: 300 } });
    server.inject({ drop: 'reset' });
    const [reset] = await session.apply([change('create', 'k1', ann)]);
    expect(reset.error?.kind).toBe('transient');
    expect(reset.error?.message).toMatch(/^POST \/contacts failed: /);

    server.inject({ drop: 'hang' });
    expect((await session.apply([change('create', 'k1', ann)]))[0].error).toEqual({
      kind: 'transient',
      message: 'POST /contacts failed: no answer within 300 ms',
    });

    const closed = await ContactsServer.start();
    await closed.stop();
    const refused = await open({ config: { base_url: closed.url } });
    const [noServer] = await refused.apply([change('create', 'k1', ann)]);
    expect(noServer.error).toEqual({ kind: 'transient', message: expect.stringMatching(/^POST \/contacts failed: .*ECONNREFUSED/) as unknown });
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

  it('turns template errors into rejected outcomes that name the template, and sends nothing', async () => {
    const session = await open({
      requests: {
        create: { ...contactRequests.create, path: '/contacts/{{ record.email | nosuchfilter }}' },
        update: { method: 'PATCH', path: '/contacts/{{ app_id }}', body: '{{ record | tojson ' },
      },
    });
    const [create] = await session.apply([change('create', 'k1', ann)]);
    expect(create.success).toBe(false);
    expect(create.error?.kind).toBe('rejected');
    expect(create.error?.message).toMatch(/^cannot render requests\.create\.path: .*nosuchfilter/);

    const [clear] = await session.apply([change('clear', 'k1', ann, 'c1')]);
    expect(clear.error?.kind).toBe('rejected');
    expect(clear.error?.message).toMatch(/^cannot render requests\.update\.body \(used for clear\): /);

    const [send] = await session.apply([change('send', 'k1', ann)]);
    expect(send.error).toEqual({ kind: 'rejected', message: 'no request template for send: add destination.requests.send' });
    expect(server.requests).toEqual([]);
  });

  it('rejects a success whose app_id cannot be rendered, keeping the answer', async () => {
    const session = await open({ requests: { create: { ...contactRequests.create, app_id: '{{ response.id | nosuchfilter }}' } }, strategy: 'create' });
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
