/**
 * The `webhook` plugin: each change is an event POSTed to a URL, with a JSON body rendered from a
 * template and an HMAC-SHA256 signature that the receiver can verify.
 *
 * Body. The record's payload is rendered from `destination.body` (default: the template file
 * `webhook/data.json.njk`, `{{ record | tojson }}`). With `envelope: true` (the default) it is
 * wrapped by `webhook/event.json.njk` into {key, action, object, sync, app_id, sent_at, data}. With
 * `batch: true`, one request carries the events of a whole batch as a JSON array
 * (`webhook/batch.json.njk`).
 *
 * Signature. `X-Ebb-Timestamp: <unix seconds>` and `X-Ebb-Signature: sha256=<hex>`, where hex is
 * HMAC-SHA256(secret, "<timestamp>.<raw body>"). The timestamp is signed with the body, so a
 * receiver that refuses old timestamps cannot be fed a captured request again.
 * `Idempotency-Key` is the same for every attempt to deliver the same change within a run, so a
 * receiver can drop the duplicate of a retry whose first answer was lost.
 *
 * Answers: 2xx is success (a JSON `id` in the answer becomes the record's app id); 404 is "not
 * found" (an update under upsert becomes a create; a delete is done); 409 is a conflict (its `id`
 * or `existing_id` names the existing record, which is then updated); 408, 429 and 5xx are
 * retried, honouring Retry-After; any other 4xx refuses the event.
 */
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Change, ErrorKind, Outcome, Plugin, SessionContext } from '../plugin.ts';
import { sampleRecord } from '../shared/sample.ts';
import { answerError, classify, errorText as oneLine, joinUrl, parseBody, sendScheduled, snippetSuffix, truncated, type Outgoing } from '../shared/http.ts';
import { idText } from '../shared/json.ts';

const headerName = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/** The connection's config. */
export const webhookConfigSchema = z.strictObject({
  /** Where the events go. */
  url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }),
  /** The HMAC-SHA256 key of the signature; share it with the receiver (through env_var). */
  secret: z.string().min(16, 'must be at least 16 characters: a random string, such as the output of `openssl rand -hex 32`'),
  /** Sent with every request (an authorization header, say). */
  headers: z
    .record(z.string(), z.string())
    .superRefine((headers, issue) => {
      for (const name of Object.keys(headers)) if (!headerName.test(name)) issue.addIssue({ code: 'custom', path: [name], message: 'must be an HTTP header name' });
    })
    .optional(),
  timeout_ms: z.number().int().positive().default(30_000),
});
export type WebhookConfig = z.infer<typeof webhookConfigSchema>;

/** A sync's destination. */
export const webhookDestinationSchema = z.looseObject({
  /** The event's subject, sent as `object` in the envelope (contacts, order_paid…). */
  object: z.string().min(1),
  /** Appended to the connection's url. */
  path: z.string().optional(),
  method: z.enum(['POST', 'PUT', 'PATCH']).default('POST'),
  /** The payload template (nunjucks, JSON). Default: templates/webhook/data.json.njk, the record itself. */
  body: z.string().min(1).optional(),
  /** Wrap the payload in {key, action, object, sync, app_id, sent_at, data}. */
  envelope: z.boolean().default(true),
  /** Send a batch's events as one JSON array instead of one request per record. */
  batch: z.boolean().default(false),
  signature_header: z.string().regex(headerName, 'must be an HTTP header name').default('X-Ebb-Signature'),
  timestamp_header: z.string().regex(headerName, 'must be an HTTP header name').default('X-Ebb-Timestamp'),
});
export type WebhookDestination = z.infer<typeof webhookDestinationSchema>;

type Context = SessionContext<WebhookConfig, WebhookDestination>;

const plugin: Plugin<WebhookConfig, WebhookDestination> = {
  name: 'webhook',
  configSchema: webhookConfigSchema,
  destinationSchema: webhookDestinationSchema,
  capabilities: {
    // replace needs a destination that can be emptied; an endpoint cannot be told to forget. A
    // mirror's delete must be told from a create: by the envelope's `action`, or by a body of yours.
    strategies: (destination) => {
      const { envelope, body } = destination as WebhookDestination;
      return envelope || body !== undefined ? ['send', 'create', 'update', 'upsert', 'mirror'] : ['send', 'create', 'update', 'upsert'];
    },
  },

  async validate(ctx) {
    if (ctx.destination.body === undefined) return [];
    const context = { record: sampleRecord(ctx.fields, ctx.fieldTypes), key: 'sample-key', action: 'create', object: ctx.destination.object, sync: ctx.sync, app_id: 'sample-id', sent_at: new Date().toISOString() };
    const problem = ctx.templates.check(ctx.destination.body, context);
    return problem ? [{ path: 'destination.body', message: problem }] : [];
  },

  async check(ctx) {
    const body = JSON.stringify({ action: 'ping', sent_at: new Date().toISOString() });
    const request = signedRequest(ctx.config, ctx.config.url, 'POST', body, { signature: 'X-Ebb-Signature', timestamp: 'X-Ebb-Timestamp' }, `ping-${randomUUID()}`);
    const answer = await sendScheduled(ctx, request.url, request.init, ctx.config.timeout_ms);
    if ('failure' in answer) throw new Error(`webhook: cannot reach ${ctx.config.url}: ${answer.failure}`);
    if (answer.status < 200 || answer.status >= 300) {
      throw new Error(`webhook: ${ctx.config.url} answered ${answer.status} to a signed ping event${snippetSuffix(answer.text)}; the receiver should answer 2xx to {"action": "ping"}`);
    }
  },

  async open(ctx) {
    // Part of every idempotency key: the same within a run (the engine's retries), new in the next
    // run, so that a record changed and changed back is not taken for a repeated delivery.
    const run = randomUUID();
    return {
      apply: (changes) => (ctx.destination.batch ? applyBatch(ctx, run, changes) : Promise.all(changes.map((change) => applyOne(ctx, run, change)))),
      close: async () => {},
    };
  },
};

export default plugin;

/** Renders one change's event document; throws a message for a template error or invalid JSON. */
function renderEvent(ctx: Context, change: Change, sentAt: string): string {
  const context = {
    record: payloadOf(ctx, change),
    key: change.key,
    action: change.action,
    object: ctx.destination.object,
    sync: ctx.sync,
    app_id: change.appId ?? null,
    sent_at: sentAt,
  };
  const where = ctx.destination.body === undefined ? 'webhook/data.json.njk' : 'destination.body';
  let data: string;
  try {
    data = ctx.destination.body === undefined ? ctx.templates.render('webhook/data.json.njk', context) : ctx.templates.renderString(ctx.destination.body, context);
  } catch (e) {
    throw new Error(`cannot render ${where}: ${errorText(e)}`);
  }
  checkJson(data, where);
  if (!ctx.destination.envelope) return data.trim();
  let event: string;
  try {
    event = ctx.templates.render('webhook/event.json.njk', { ...context, data: data.trim() });
  } catch (e) {
    throw new Error(`cannot render webhook/event.json.njk: ${errorText(e)}`);
  }
  checkJson(event, 'webhook/event.json.njk');
  return event.trim();
}

/** A clear sends the mapped fields as null; every other action sends the record. */
function payloadOf(ctx: Context, change: Change): Record<string, unknown> {
  return change.action === 'clear' ? Object.fromEntries(ctx.fields.map((f) => [f, null])) : change.record;
}

function checkJson(text: string, where: string): void {
  try {
    JSON.parse(text);
  } catch (e) {
    throw new Error(`${where} rendered invalid JSON (${errorText(e)}): ${snippetSuffix(text).slice(2)}`);
  }
}

/** The same for every attempt at the same change in a run: the receiver's key to drop a repeated delivery. */
function idempotencyKey(ctx: Context, run: string, changes: Change[]): string {
  const hash = createHash('sha256').update(JSON.stringify([run, ctx.sync, ctx.destination.object]));
  for (const c of changes) hash.update(JSON.stringify([c.key, c.action, c.appId ?? null, c.record]));
  return hash.digest('hex').slice(0, 32);
}

function targetUrl(ctx: Context): string {
  const { url } = ctx.config;
  const path = ctx.destination.path;
  return path ? joinUrl(url, path) : url;
}

/** A request with the connection's headers, a JSON body, and its signature (alert webhooks are signed the same way). */
export function signedRequest(config: WebhookConfig, url: string, method: string, body: string, names: { signature: string; timestamp: string }, key: string): { url: URL; init: Outgoing } {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const headers = new Headers(config.headers);
  headers.set('content-type', 'application/json');
  headers.set('user-agent', 'ebb-webhook/1');
  headers.set(names.timestamp, timestamp);
  headers.set(names.signature, `sha256=${sign(config.secret, timestamp, body)}`);
  headers.set('idempotency-key', key);
  return { url: new URL(url), init: { method, headers, body } };
}

/** HMAC-SHA256 of "<timestamp>.<body>", hex: the value after `sha256=` in the signature header. */
export function sign(secret: string, timestamp: string, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

async function applyOne(ctx: Context, run: string, change: Change): Promise<Outcome> {
  let body: string;
  try {
    body = renderEvent(ctx, change, new Date().toISOString());
  } catch (e) {
    return failed(change, 'rejected', (e as Error).message);
  }
  const { method } = ctx.destination;
  const request = signedRequest(ctx.config, targetUrl(ctx), method, body, names(ctx), idempotencyKey(ctx, run, [change]));
  const answer = await sendScheduled(ctx, request.url, request.init, ctx.config.timeout_ms);
  const what = `${method} ${targetUrl(ctx)}`;
  if ('failure' in answer) return failed(change, answer.kind, `${what} failed: ${answer.failure}`);
  const response = parseBody(answer.text, truncated);
  const result = { status: answer.status, body: response };
  if (answer.status >= 200 && answer.status < 300) return { key: change.key, success: true, appId: idOf(response) ?? change.appId ?? change.key, result };
  return answerError(change, classify(answer.status, change.action), `${what} answered ${answer.status}${snippetSuffix(answer.text)}`, answer, response, result);
}

/**
 * One request for the batch, a JSON array of its events. A 2xx accepts them all; another 4xx
 * refuses the request as a whole (`wholeBatch`), so the engine halves the batch until the refused
 * event is alone, and a lone event's answer is read as a single request's.
 */
async function applyBatch(ctx: Context, run: string, changes: Change[]): Promise<Outcome[]> {
  if (changes.length === 0) return [];
  const sentAt = new Date().toISOString();
  const events: string[] = [];
  for (const change of changes) {
    try {
      events.push(renderEvent(ctx, change, sentAt));
    } catch (e) {
      const message = (e as Error).message;
      // The engine isolates the record whose values break the template; nothing is sent meanwhile.
      return changes.map((c) => failed(c, 'rejected', message, changes.length > 1));
    }
  }
  let body: string;
  try {
    body = ctx.templates.render('webhook/batch.json.njk', { events, object: ctx.destination.object, sync: ctx.sync, sent_at: sentAt }).trim();
    checkJson(body, 'webhook/batch.json.njk');
  } catch (e) {
    return changes.map((c) => failed(c, 'rejected', `cannot render webhook/batch.json.njk: ${errorText(e)}`));
  }
  const { method } = ctx.destination;
  const request = signedRequest(ctx.config, targetUrl(ctx), method, body, names(ctx), idempotencyKey(ctx, run, changes));
  const answer = await sendScheduled(ctx, request.url, request.init, ctx.config.timeout_ms);
  const size = changes.length === 1 ? '' : ` (a batch of ${changes.length})`;
  const what = `${method} ${targetUrl(ctx)}${size}`;
  if ('failure' in answer) return changes.map((c) => failed(c, answer.kind, `${what} failed: ${answer.failure}`));
  const response = parseBody(answer.text, truncated);
  const result = { status: answer.status, body: response };
  if (answer.status >= 200 && answer.status < 300) {
    // An answer that lists one item per event may give each record its id.
    const items = Array.isArray(response) && response.length === changes.length ? response : undefined;
    return changes.map((c, i) => ({ key: c.key, success: true, appId: idOf(items?.[i]) ?? c.appId ?? c.key, result: items ? { status: answer.status, body: items[i] } : result }));
  }
  const message = `${what} answered ${answer.status}${snippetSuffix(answer.text)}`;
  return changes.map((c) => {
    if (changes.length === 1) return answerError(c, classify(answer.status, c.action), message, answer, response, result);
    const kind = classify(answer.status, c.action);
    // A 404 or 409 names one event of the batch: refuse the request as a whole until it is alone.
    const whole = kind === 'rejected' || kind === 'not_found' || kind === 'conflict';
    return answerError(c, whole ? 'rejected' : kind, message, answer, response, result, whole);
  });
}

function names(ctx: Context): { signature: string; timestamp: string } {
  return { signature: ctx.destination.signature_header, timestamp: ctx.destination.timestamp_header };
}

function failed(change: Change, kind: ErrorKind, message: string, wholeBatch = false): Outcome {
  return { key: change.key, success: false, appId: change.appId, error: { kind, message, ...(wholeBatch && { wholeBatch }) } };
}

/** The `id` of a JSON object answer. */
function idOf(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const id = (body as { id?: unknown }).id;
  return idText(id);
}

/** An error's message on one line, less nunjucks' `Template render error: (unknown path)`. */
function errorText(e: unknown): string {
  return oneLine(e, /^Template render error: \(unknown path\)\s*/);
}
