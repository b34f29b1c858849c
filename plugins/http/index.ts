/**
 * The `http` plugin (SPEC §6): any REST API, described by one nunjucks request template per
 * action. One change is one request; the engine's `schedule` applies the connection's rate limit
 * and concurrency to each of them.
 *
 * Template context: `record`, `key`, `app_id`, `action`, `object`, and for `app_id` also
 * `response` (the answer's parsed JSON body, or its text). A value placed in `path` should go
 * through nunjucks' `urlencode` filter.
 */
import { z } from 'zod';
import type { Action, Change, ErrorKind, Outcome, Plugin, SessionContext, Strategy } from '../plugin.ts';

/** The connection's config. */
export const httpConfigSchema = z.strictObject({
  /** The prefix of every request's URL. */
  base_url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }),
  /** Sent with every request (credentials go here, through env_var). */
  headers: z.record(z.string(), z.string()).optional(),
  timeout_ms: z.number().int().positive().default(30_000),
});
export type HttpConfig = z.infer<typeof httpConfigSchema>;

const requestSchema = z
  .strictObject({
    method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']),
    /** Appended to base_url. */
    path: z.string().min(1),
    body: z.string().optional(),
    headers: z.record(z.string(), z.string()).optional(),
    /** The record's identifier in the app, rendered from the answer (`response`). */
    app_id: z.string().optional(),
  })
  .refine((r) => r.method !== 'GET' || r.body === undefined, { message: 'a GET request has no body', path: ['body'] });
type RequestTemplate = z.infer<typeof requestSchema>;

/** A sync's destination: `requests` holds one request template per action. */
export const httpDestinationSchema = z.looseObject({
  object: z.string(),
  /**
   * Set it when a create sent twice cannot make two records: the create request upserts (say, a
   * PUT by email) or the app answers a repeated create with 409 and the existing id. Then ebb
   * resends creates that were in flight when a run was killed instead of flagging them for review.
   */
  create_is_idempotent: z.boolean().default(false),
  requests: z
    .strictObject({
      create: requestSchema.optional(),
      update: requestSchema.optional(),
      delete: requestSchema.optional(),
      /** Defaults to update's template (the record's fields are null). */
      clear: requestSchema.optional(),
      /** Defaults to create's template. */
      recreate: requestSchema.optional(),
      send: requestSchema.optional(),
    })
    .refine((r) => Object.values(r).some(Boolean), 'define at least one request, such as requests.create'),
});
export type HttpDestination = z.infer<typeof httpDestinationSchema>;

type Context = SessionContext<HttpConfig, HttpDestination>;

/** The actions each strategy sends for sure; missing templates for them fail the run at once. */
const strategyActions: Record<Strategy, Action[]> = {
  create: ['create'],
  update: ['update'],
  upsert: ['create', 'update'],
  mirror: ['create', 'update', 'delete'],
  replace: ['recreate'],
  send: ['send'],
};

/** How much of an answer's body goes into an outcome's result (it is stored in history). */
const resultLimit = 4096;

const plugin: Plugin<HttpConfig, HttpDestination> = {
  name: 'http',
  configSchema: httpConfigSchema,
  destinationSchema: httpDestinationSchema,
  capabilities: { idempotentCreate: (destination) => destination.create_is_idempotent === true },

  async check(ctx) {
    const { base_url, headers, timeout_ms } = ctx.config;
    let request: Request;
    try {
      request = new Request(base_url, { headers });
    } catch (e) {
      throw new Error(`cannot build a request to ${base_url}: ${errorText(e)}`);
    }
    // Any HTTP answer, even a 404, proves the server is reachable.
    const answer = await ctx.schedule(() => send(request, timeout_ms));
    if ('failure' in answer) throw new Error(`cannot reach ${base_url}: ${answer.failure}`);
  },

  async open(ctx) {
    const missing = strategyActions[ctx.strategy].filter((a) => !templateFor(ctx.destination.requests, a));
    if (missing.length) {
      throw new Error(
        `sync ${ctx.sync}: the ${ctx.strategy} strategy sends ${missing.join(' and ')} requests; ` +
          `add ${missing.map((a) => `destination.requests.${a}`).join(' and ')}`,
      );
    }
    return {
      // ctx.schedule bounds how many of these run at once.
      apply: (changes) => Promise.all(changes.map((change) => applyOne(ctx, change))),
      close: async () => {},
    };
  },
};

export default plugin;

/** A template failed to render: the change is rejected, the run goes on. */
class TemplateError extends Error {}

/** What came back from one request: an HTTP answer, or a transport failure. */
type Answer = { status: number; retryAfter: string | null; text: string } | { failure: string };

/** The template of an action, with the name it has in ebb.yml (clear and recreate borrow one). */
function templateFor(requests: HttpDestination['requests'], action: Action): { name: string; template: RequestTemplate } | undefined {
  const name = requests[action] ? action : action === 'clear' ? 'update' : action === 'recreate' ? 'create' : action;
  const template = requests[name as keyof typeof requests];
  return template && { name, template };
}

async function applyOne(ctx: Context, change: Change): Promise<Outcome> {
  const found = templateFor(ctx.destination.requests, change.action);
  if (!found) return rejected(change, `no request template for ${change.action}: add destination.requests.${change.action}`);
  const { name, template } = found;
  const context: Record<string, unknown> = {
    record: change.record,
    key: change.key,
    app_id: change.appId ?? null,
    action: change.action,
    object: ctx.destination.object,
  };
  const render = (part: string, source: string, extra: Record<string, unknown> = {}) => {
    try {
      return ctx.templates.renderString(source, { ...context, ...extra });
    } catch (e) {
      const used = name === change.action ? '' : ` (used for ${change.action})`;
      // nunjucks prefixes "(unknown path)" for a template given as a string: noise here.
      const reason = errorText(e).replace(/^(Template render error: )?\(unknown path\)\s*/, '');
      throw new TemplateError(`cannot render requests.${name}.${part}${used}: ${reason}`);
    }
  };

  let path: string;
  let request: Request;
  try {
    path = render('path', template.path).trim();
    const headers = new Headers(ctx.config.headers);
    for (const [header, source] of Object.entries(template.headers ?? {})) headers.set(header, render(`headers.${header}`, source));
    const body = template.body === undefined ? undefined : render('body', template.body);
    if (body !== undefined && !headers.has('content-type')) headers.set('content-type', 'application/json');
    if (!headers.has('accept')) headers.set('accept', 'application/json');
    // Built here, outside the schedule, so a bad URL or header is a rejection, not a network error.
    request = new Request(joinUrl(ctx.config.base_url, path), { method: template.method, headers, body });
  } catch (e) {
    return rejected(change, e instanceof TemplateError ? e.message : `cannot build the ${name} request: ${errorText(e)}`);
  }

  const answer = await ctx.schedule(() => send(request, ctx.config.timeout_ms));
  const what = `${template.method} ${path}`;
  if ('failure' in answer) {
    return { key: change.key, success: false, appId: change.appId, error: { kind: 'transient', message: `${what} failed: ${answer.failure}` } };
  }

  const response = parseBody(answer.text);
  const result = { status: answer.status, body: answer.text.length > resultLimit ? truncated(answer.text) : response };
  if (answer.status >= 200 && answer.status < 300) {
    let appId: string | null | undefined = change.appId ?? change.key;
    if (template.app_id !== undefined) {
      try {
        // An empty id (say, a 204 without a body) keeps the one ebb already knows.
        appId = render('app_id', template.app_id, { response }).trim() || change.appId;
      } catch (e) {
        return { ...rejected(change, `${what} answered ${answer.status}, but ${errorText(e)}`), result };
      }
    }
    return { key: change.key, success: true, appId, result };
  }

  const kind = classify(answer.status, change.action);
  const existingAppId = kind === 'conflict' ? existingId(response) : undefined;
  const retryAfterMs = kind === 'rate_limited' || kind === 'transient' ? parseRetryAfter(answer.retryAfter) : undefined;
  const snippet = answer.text.replace(/\s+/g, ' ').trim().slice(0, 200);
  return {
    key: change.key,
    success: false,
    appId: change.appId,
    result,
    error: {
      kind,
      message: `${what} answered ${answer.status}${snippet ? `: ${snippet}` : ''}`,
      ...(existingAppId !== undefined && { existingAppId }),
      ...(retryAfterMs !== undefined && { retryAfterMs }),
    },
  };
}

/** SPEC §6. A 408 is a timeout, which SPEC §3 counts as transient. */
function classify(status: number, action: Action): ErrorKind {
  if (status === 404 && (action === 'update' || action === 'delete' || action === 'clear')) return 'not_found';
  if (status === 409) return 'conflict';
  if (status === 429) return 'rate_limited';
  if (status >= 500 || status === 408) return 'transient';
  return 'rejected';
}

/** Sends one request; never throws, so that only the engine's own errors leave `schedule`. */
async function send(request: Request, timeoutMs: number): Promise<Answer> {
  try {
    const res = await fetch(request, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), text: await res.text() };
  } catch (e) {
    if (e instanceof Error && e.name === 'TimeoutError') return { failure: `no answer within ${timeoutMs} ms` };
    return { failure: errorText(e) };
  }
}

function rejected(change: Change, message: string): Outcome {
  return { key: change.key, success: false, appId: change.appId, error: { kind: 'rejected', message } };
}

function joinUrl(base: string, path: string): string {
  return `${base.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
}

function parseBody(text: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function truncated(text: string): string {
  return `${text.slice(0, resultLimit)}… (truncated; ${text.length} characters)`;
}

/** The identifier of the record that already exists, from a 409 body such as `{"id": 42}`. */
function existingId(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { id, existing_id } = body as { id?: unknown; existing_id?: unknown };
  const value = id ?? existing_id;
  return typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;
}

/** `Retry-After` is either seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value?.trim()) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.round(seconds * 1000));
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** An error's message on one line; fetch hides the useful part (ECONNRESET…) in `cause`. */
function errorText(e: unknown): string {
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause : undefined;
  let text = e instanceof Error ? e.message : String(e);
  if (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    text = (code && !cause.message.includes(code) ? `${code}${cause.message ? `: ${cause.message}` : ''}` : cause.message) || text;
  }
  return text.replace(/\s+/g, ' ').trim();
}
