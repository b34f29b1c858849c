import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import webhook, { sign } from '../../plugins/webhook/index.ts';
import type { Change, Session, Strategy } from '../../plugins/plugin.ts';
import { WebhookReceiver, type WebhookEvent } from '../support/webhook-receiver.ts';
import { pluginContext, sessionContext } from '../support/plugin-context.ts';
import { duck, ebb, repoRoot } from '../support/project.ts';
import { describePlugin, type PluginHarness } from '../plugin-conformance.ts';

const secret = 'whsec_5f1d3c0e9b7a4d2c8e6f0a1b3c5d7e9f';
let receiver: WebhookReceiver;
let projectDir: string;
beforeAll(async () => {
  receiver = await WebhookReceiver.start({ secret });
  projectDir = await mkdtemp(join(tmpdir(), 'ebb-webhook-'));
});
afterAll(async () => {
  await receiver.stop();
  await rm(projectDir, { recursive: true, force: true });
});
beforeEach(() => receiver.reset());

interface OpenOptions {
  config?: Record<string, unknown>;
  destination?: Record<string, unknown>;
  strategy?: Strategy;
  dir?: string;
}

function open(options: OpenOptions = {}): Promise<Session> {
  return webhook.open(
    sessionContext(webhook, {
      config: { url: `${receiver.url}/hooks`, secret, ...options.config },
      projectDir: options.dir ?? projectDir,
      destination: { connection: 'hooks', object: 'contacts', ...options.destination },
      strategy: options.strategy ?? 'upsert',
      fields: ['email', 'name'],
      sync: 'contacts_to_hooks',
    }),
  );
}

const change = (action: Change['action'], key: string, record: Record<string, unknown>, appId?: string): Change => ({ key, action, record, appId });
const ann = { email: 'ann@example.com', name: 'Ann' };
const bob = { email: 'bob@example.com', name: 'Bob' };
const events = (i = -1) => (JSON.parse(receiver.requests.at(i)!.body) as WebhookEvent | WebhookEvent[]);

describe('webhook plugin: config', () => {
  it('validates the connection and the destination', () => {
    expect(webhook.configSchema.parse({ url: 'https://hooks.example.com/ebb', secret })).toEqual({ url: 'https://hooks.example.com/ebb', secret, timeout_ms: 30_000 });
    const bad = webhook.configSchema.safeParse({ url: 'ftp://x', secret: 'short', headers: { 'bad header': 'x' } });
    expect(bad.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      'url: must be an http:// or https:// URL',
      'secret: must be at least 16 characters: a random string, such as the output of `openssl rand -hex 32`',
      'headers.bad header: must be an HTTP header name',
    ]);
    expect(webhook.destinationSchema!.parse({ connection: 'hooks', object: 'contacts' })).toEqual({
      connection: 'hooks',
      object: 'contacts',
      method: 'POST',
      envelope: true,
      batch: false,
      signature_header: 'X-Ebb-Signature',
      timestamp_header: 'X-Ebb-Timestamp',
    });
    const strategies = webhook.capabilities?.strategies as (d: Record<string, unknown>) => string[];
    expect(strategies({ object: 'contacts', envelope: true })).toEqual(['send', 'create', 'update', 'upsert', 'mirror']);
    // Without the envelope, the default body is the record alone: a delete would look like a create.
    expect(strategies({ object: 'contacts', envelope: false })).toEqual(['send', 'create', 'update', 'upsert']);
    expect(strategies({ object: 'contacts', envelope: false, body: '{"op": {{ action | tojson }}}' })).toContain('mirror');
  });
});

describe('webhook plugin: events', () => {
  it('sends one signed event per record, in an envelope', async () => {
    const session = await open({ strategy: 'send' });
    const before = Math.floor(Date.now() / 1000);
    const outcomes = await session.apply([change('send', 'k1', ann), change('send', 'k2', bob)]);
    expect(outcomes).toEqual([
      { key: 'k1', success: true, appId: 'k1', result: { status: 202, body: { received: true } } },
      { key: 'k2', success: true, appId: 'k2', result: { status: 202, body: { received: true } } },
    ]);
    expect(receiver.requests.map((r) => [r.method, r.path, r.verified])).toEqual([
      ['POST', '/hooks', true],
      ['POST', '/hooks', true],
    ]);
    const request = receiver.requests.find((r) => r.body.includes('"k1"'))!;
    const event = JSON.parse(request.body) as WebhookEvent;
    expect(event).toEqual({ key: 'k1', action: 'send', object: 'contacts', sync: 'contacts_to_hooks', app_id: null, sent_at: expect.any(String), data: ann });
    expect(Date.parse(event.sent_at!)).toBeGreaterThan(0);
    // The signature a receiver recomputes: HMAC-SHA256 of "<timestamp>.<raw body>".
    const timestamp = String(request.headers['x-ebb-timestamp']);
    expect(Number(timestamp)).toBeGreaterThanOrEqual(before);
    expect(request.headers['x-ebb-signature']).toBe(`sha256=${createHmac('sha256', secret).update(`${timestamp}.${request.body}`).digest('hex')}`);
    expect(request.headers['x-ebb-signature']).toBe(`sha256=${sign(secret, timestamp, request.body)}`);
    expect(request.headers['content-type']).toBe('application/json');
    expect(request.headers['idempotency-key']).toMatch(/^[0-9a-f]{32}$/);
    expect(receiver.list()).toEqual([ann, bob]);
  });

  it('a receiver refuses a body or timestamp that was tampered with', async () => {
    const session = await open({ strategy: 'send' });
    await session.apply([change('send', 'k1', ann)]);
    const original = receiver.requests[0];
    const replay = (body: string, timestamp: string, signature = String(original.headers['x-ebb-signature'])) =>
      fetch(`${receiver.url}/hooks`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-ebb-timestamp': timestamp, 'x-ebb-signature': signature }, body }).then((r) => r.status);
    expect(await replay(original.body.replace('Ann', 'Eve'), String(original.headers['x-ebb-timestamp']))).toBe(401);
    expect(await replay(original.body, String(Number(original.headers['x-ebb-timestamp']) + 1))).toBe(401);
    const old = String(Math.floor(Date.now() / 1000) - 600);
    expect(await replay(original.body, old, `sha256=${sign(secret, old, original.body)}`)).toBe(401);
  });

  it('creates, updates, clears and deletes with the answer id, and sends the connection headers', async () => {
    const session = await open({ config: { headers: { authorization: 'Bearer hook-token' } } });
    const [created] = await session.apply([change('create', 'k1', ann)]);
    expect(created).toEqual({ key: 'k1', success: true, appId: 'r1', result: { status: 201, body: { id: 'r1' } } });
    expect(receiver.requests[0].headers.authorization).toBe('Bearer hook-token');
    expect((await session.apply([change('update', 'k1', { ...ann, name: 'Annie' }, 'r1')]))[0]).toMatchObject({ success: true, appId: 'r1' });
    expect(events()).toMatchObject({ action: 'update', app_id: 'r1', data: { name: 'Annie' } });
    expect((await session.apply([change('clear', 'k1', ann, 'r1')]))[0].success).toBe(true);
    expect(events()).toMatchObject({ action: 'clear', data: { email: null, name: null } });
    expect((await session.apply([change('delete', 'k1', ann, 'r1')]))[0].success).toBe(true);
    expect(receiver.list()).toEqual([]);
  });

  it('classifies 404, 409, 429, 5xx and other 4xx answers', async () => {
    const session = await open();
    const [missing] = await session.apply([change('update', 'k1', ann, 'r404')]);
    expect(missing.error).toEqual({ kind: 'not_found', message: `POST ${receiver.url}/hooks answered 404: {"error":"no record r404"}` });

    const existing = receiver.insert('seeded', ann);
    const [dup] = await session.apply([change('create', 'k1', ann)]);
    expect(dup.error).toMatchObject({ kind: 'conflict', existingAppId: existing });

    receiver.rateLimit(1, 2);
    const [limited] = await session.apply([change('create', 'k2', bob)]);
    expect(limited.error).toMatchObject({ kind: 'rate_limited', retryAfterMs: 2000 });

    receiver.fail(503);
    expect((await session.apply([change('create', 'k2', bob)]))[0].error?.kind).toBe('transient');

    receiver.rejectEmail('bob@example.com');
    const [refused] = await session.apply([change('create', 'k2', bob)]);
    expect(refused.error).toEqual({ kind: 'rejected', message: `POST ${receiver.url}/hooks answered 422: {"error":"invalid email bob@example.com","key":"k2"}` });
  });

  it('reads an unreachable receiver as transient', async () => {
    const closed = await WebhookReceiver.start({ secret });
    const url = closed.url;
    await closed.stop();
    const session = await open({ config: { url } });
    const [outcome] = await session.apply([change('send', 'k1', ann)]);
    expect(outcome.error?.kind).toBe('transient');
    expect(outcome.error?.message).toMatch(/failed: connect ECONNREFUSED/);
  });

  it('keeps the idempotency key of a change across attempts, so a receiver drops a repeat', async () => {
    const session = await open();
    const [first] = await session.apply([change('create', 'k1', ann)]);
    const [again] = await session.apply([change('create', 'k1', ann)]);
    expect(again).toEqual(first);
    expect(receiver.requests[0].headers['idempotency-key']).toBe(receiver.requests[1].headers['idempotency-key']);
    expect(receiver.list()).toHaveLength(1);
    // A new run is a new delivery, even of the same record.
    const next = await open();
    await next.apply([change('create', 'k1', ann)]);
    expect(receiver.requests[2].headers['idempotency-key']).not.toBe(receiver.requests[0].headers['idempotency-key']);
  });

  it('renders the body from a template, without the envelope, to a path with other header names', async () => {
    const session = await open({
      strategy: 'send',
      destination: { path: '/custom', method: 'PUT', envelope: false, body: '{"contact": {{ record.email | tojson }}, "op": {{ action | tojson }}}', signature_header: 'X-Signature', timestamp_header: 'X-Timestamp' },
    });
    const [outcome] = await session.apply([change('send', 'k1', ann)]);
    expect(outcome.success).toBe(false); // the test receiver checks X-Ebb-Signature, which is not sent
    const request = receiver.requests[0];
    expect([request.method, request.path, request.body]).toEqual(['PUT', '/hooks/custom', '{"contact": "ann@example.com", "op": "send"}']);
    expect(request.headers['x-signature']).toBe(`sha256=${sign(secret, String(request.headers['x-timestamp']), request.body)}`);

    const [invalid] = await (await open({ destination: { body: '{"email": {{ record.email }}}' } })).apply([change('create', 'k1', ann)]);
    expect(invalid.error?.kind).toBe('rejected');
    expect(invalid.error?.message).toMatch(/^destination\.body rendered invalid JSON \(.*\): \{"email": ann@example.com\}$/);
  });

  it('uses the project templates/webhook/ overrides', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ebb-webhook-templates-'));
    await mkdir(join(dir, 'templates', 'webhook'), { recursive: true });
    await writeFile(join(dir, 'templates', 'webhook', 'data.json.njk'), '{"email": {{ record.email | lower | tojson }}, "source": "warehouse"}');
    const session = await open({ dir, strategy: 'send' });
    await session.apply([change('send', 'k1', { email: 'ANN@EXAMPLE.COM' })]);
    expect(events()).toMatchObject({ key: 'k1', data: { email: 'ann@example.com', source: 'warehouse' } });
    await rm(dir, { recursive: true, force: true });
  });
});

describe('webhook plugin: batches', () => {
  it('sends a batch as one signed JSON array', async () => {
    const session = await open({ destination: { batch: true } });
    const outcomes = await session.apply([change('create', 'k1', ann), change('create', 'k2', bob)]);
    expect(outcomes.map((o) => [o.success, o.appId])).toEqual([
      [true, 'r1'],
      [true, 'r2'],
    ]);
    expect(receiver.requests).toHaveLength(1);
    expect(receiver.requests[0].verified).toBe(true);
    expect((events() as WebhookEvent[]).map((e) => [e.key, e.action, e.data])).toEqual([
      ['k1', 'create', ann],
      ['k2', 'create', bob],
    ]);
  });

  it('a refused batch is refused whole, so that the engine splits it; a lone event is read alone', async () => {
    const session = await open({ destination: { batch: true } });
    receiver.rejectEmail('bob@example.com');
    const pair = await session.apply([change('create', 'k1', ann), change('create', 'k2', bob)]);
    expect(pair.map((o) => [o.error?.kind, o.error?.wholeBatch])).toEqual([
      ['rejected', true],
      ['rejected', true],
    ]);
    expect(receiver.list()).toEqual([]);
    const existing = receiver.insert('seeded', ann);
    const [conflict] = await session.apply([change('create', 'k1', ann)]);
    expect(conflict.error).toMatchObject({ kind: 'conflict', existingAppId: existing });
    expect(conflict.error).not.toHaveProperty('wholeBatch');
    receiver.rateLimit(1, 1);
    const limited = await session.apply([change('create', 'k3', { email: 'c@example.com' }), change('create', 'k4', { email: 'd@example.com' })]);
    expect(limited.map((o) => [o.error?.kind, o.error?.retryAfterMs, o.error?.wholeBatch])).toEqual([
      ['rate_limited', 1000, undefined],
      ['rate_limited', 1000, undefined],
    ]);
  });
});

describe('webhook plugin: check', () => {
  it('sends a signed ping and reports a refusal', async () => {
    await webhook.check(pluginContext(webhook, { config: { url: receiver.url, secret }, projectDir }));
    expect(JSON.parse(receiver.requests[0].body)).toMatchObject({ action: 'ping' });
    expect(receiver.requests[0].verified).toBe(true);
    await expect(webhook.check(pluginContext(webhook, { config: { url: receiver.url, secret: 'not-the-right-secret' }, projectDir }))).rejects.toThrow(
      `webhook: ${receiver.url} answered 401 to a signed ping event: {"error":"invalid signature or timestamp"}; the receiver should answer 2xx to {"action": "ping"}`,
    );
  });
});

describe('webhook plugin: from the CLI', () => {
  it('sends the demo customers from `ebb init`, retries a 429, and isolates a refused record in a batch', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ebb-webhook-demo-'));
    await promisify(execFile)(process.execPath, [join(repoRoot, 'bin', 'ebb.js'), 'init', dir]);
    const config = parse(await readFile(join(dir, 'ebb.yml'), 'utf8')) as { connections: Record<string, unknown>; syncs: Array<Record<string, unknown>> };
    config.connections.hooks = { plugin: 'webhook', config: { url: `${receiver.url}/ebb`, secret: "{{ env_var('HOOK_SECRET') }}" }, retry: { delays_seconds: [0.05, 0.1, 1.5] } };
    config.syncs.push({
      name: 'customers_to_webhook',
      source: { table: 'analytics.customers', key: 'customer_id', filter: "lifecycle_stage = 'customer'" },
      destination: { connection: 'hooks', object: 'customers', batch: true },
      strategy: 'upsert',
      batch_size: 50,
      mapping: { email: 'email', first_name: 'first_name', last_name: 'last_name' },
    });
    await writeFile(join(dir, 'ebb.yml'), stringify(config));
    receiver.rateLimit(1, 1);
    receiver.rejectEmail('customer7@example.com');
    const run = await ebb(dir, ['run', 'customers_to_webhook'], { HOOK_SECRET: secret });
    expect(run.code, run.stderr + run.stdout).toBe(2);
    // Retry-After: 1 was honoured: nothing was sent again within the second after the 429.
    const limited = receiver.requests.find((r) => r.status === 429)!;
    const retry = receiver.requests.find((r) => r !== limited && r.headers['idempotency-key'] === limited.headers['idempotency-key'])!;
    expect(retry.at - limited.at).toBeGreaterThanOrEqual(950);
    expect(receiver.list()).toHaveLength(149);
    expect(receiver.requests.every((r) => r.verified)).toBe(true);
    const [failed] = await duck(join(dir, 'warehouse.duckdb'), "select record_key, apply_state, last_result from ebb.sync_record_state where apply_state <> 'SUCCESS'");
    expect(failed).toMatchObject({ record_key: '7', apply_state: 'FAILED' });
    expect(String(failed.last_result)).toContain('invalid email customer7@example.com');
    expect(String(failed.last_result)).not.toContain(secret);

    receiver.clearFaults();
    const next = await ebb(dir, ['run', 'customers_to_webhook'], { HOOK_SECRET: secret });
    expect(next.code, next.stderr + next.stdout).toBe(0);
    expect(receiver.list()).toHaveLength(150);
    await rm(dir, { recursive: true, force: true });
  });
});

/**
 * Conformance harnesses: the verifying receiver (test/support/webhook-receiver.ts), which acts like
 * a small app keyed by email: 409 with the existing id for a known email, 404 for an unknown
 * record, 422 for a refused email, 429 with Retry-After: 1 on demand. One request per record, and
 * the same with `batch: true`. Not `replace`: an endpoint cannot be told to forget everything.
 */
export function webhookHarness(options: { batch?: boolean } = {}): () => Promise<PluginHarness> {
  return async () => {
    const app = await WebhookReceiver.start({ secret });
    return {
      connection: { plugin: 'webhook', config: { url: `${app.url}/ebb`, secret } },
      destination: { object: 'people', ...(options.batch && { batch: true }) },
      mapping: { email: 'email', first_name: 'first_name', last_name: 'last_name', score: 'score' },
      strategies: ['create', 'update', 'upsert', 'mirror', 'send'],
      read: async () => app.list(),
      seed: async (record) => void app.insert(`seeded:${String(record.email)}`, record),
      faults: {
        rateLimitOnce: () => app.rateLimit(1, 1),
        rejectEmail: (email) => app.rejectEmail(email),
        clear: () => app.clearFaults(),
      },
      close: () => app.stop(),
    };
  };
}

describePlugin('webhook', webhookHarness());
describePlugin('webhook (batch)', webhookHarness({ batch: true }));
