/**
 * The `http` plugin (SPEC §6): any REST API, described by one nunjucks request template per
 * action. By default one change is one request; a template with `batch: true` sends a whole batch
 * in one request to the app's batch endpoint. The engine's `schedule` applies the connection's
 * rate limit and concurrency to each request.
 *
 * Template context, one record per request: `record`, `key`, `app_id`, `action`, `object`, and for
 * `app_id` also `response` (the answer's parsed JSON body, or its text).
 *
 * Batch mode: `path`, `headers` and `body` see `changes` (a list of `{key, record, app_id,
 * action}`), `records` (the records alone), `action` and `object`. The answer holds one item per
 * change, in order, at the dotted path `results` (default: the answer itself, if it is a list).
 * `app_id` and `error` are rendered per record with `result` (its item), `response`, `key`,
 * `record` and `app_id`; an `error` that renders non-empty refuses that record alone. A single
 * request's `error` is rendered with `response` the same way.
 *
 * Each `{{ … }}` of `path` is one URL path segment, percent-encoded (see TemplateRenderer.renderPath),
 * and a request whose URL leaves `base_url` is refused. A name that is not in a template's context is
 * an error, which `validate` finds before any run by rendering every template with sample values.
 */
import { z } from 'zod';
import type { Action, Change, DestinationContext, DestinationIssue, ErrorKind, Match, Outcome, Plugin, SessionContext, Strategy } from '../plugin.ts';
import { sampleRecord, strict } from '../shared/sample.ts';
import { answerError, classify, errorText, joinUrl, maxAnswerBytes, parseRetryAfter, sendScheduled, snippet, snippetSuffix, truncated, type Outgoing } from '../shared/http.ts';
import { JsonText, recordJson, stringifyJson } from '../shared/json.ts';

export { parseRetryAfter };

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
    /** The record's identifier in the app, rendered from the answer (`response`; `result` in batch mode). */
    app_id: z.string().optional(),
    /** One request for a whole batch of changes (the body sees `changes`). */
    batch: z.boolean().default(false),
    /** Batch mode: the dotted path of the per-record answers in the answer's JSON, e.g. `results`. */
    results: z.string().min(1).optional(),
    /** Rendered with `response` (per record with `result` in batch mode); a non-empty text refuses the record with it. */
    error: z.string().optional(),
  })
  .refine((r) => r.method !== 'GET' || r.body === undefined, { message: 'a GET request has no body', path: ['body'] })
  .refine((r) => !r.batch || r.body !== undefined, { message: 'a batch request needs a body that lists the changes', path: ['body'] })
  .refine((r) => r.batch || r.results === undefined, { message: 'results only applies to a batch request (batch: true)', path: ['results'] });
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
      /**
       * Finds a record by its fields (`GET /contacts?email={{ record.email | urlencode }}`, with
       * `app_id` from the answer): a create in doubt is then matched instead of left for review.
       */
      lookup: requestSchema.optional(),
      /** replace's first request: removes the whole set from the app (it sees `object`), before the run recreates it. */
      delete_all: requestSchema.optional(),
    })
    .refine((r) => Object.values(r).some(Boolean), 'define at least one request, such as requests.create')
    .refine((r) => !r.lookup || (r.lookup.app_id !== undefined && !r.lookup.batch), {
      message: 'a lookup request needs app_id (the identifier found in the answer) and no batch',
      path: ['lookup'],
    }),
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
  capabilities: {
    idempotentCreate: (destination) => destination.create_is_idempotent === true,
    // replace leaves exactly the run's records in the app: only with a request that removes the
    // old set and one of its own that recreates each record (create may not recreate).
    strategies: (destination) => {
      const { recreate, delete_all } = (destination as HttpDestination).requests;
      return Object.keys(strategyActions).filter((s) => s !== 'replace' || (recreate && delete_all)) as Strategy[];
    },
  },

  async check(ctx) {
    const { base_url, headers, timeout_ms } = ctx.config;
    let request: { url: URL; headers: Headers };
    try {
      request = { url: new URL(base_url), headers: new Headers(headers) };
    } catch (e) {
      throw new Error(`cannot build a request to ${base_url}: ${errorText(e)}`);
    }
    // Any HTTP answer, even a 404, proves the server is reachable.
    const answer = await sendScheduled(ctx, request.url, { headers: request.headers }, timeout_ms);
    if ('failure' in answer) throw new Error(`cannot reach ${base_url}: ${answer.failure}`);
  },

  async validate(ctx) {
    return checkTemplates(ctx);
  },

  async open(ctx) {
    const problems = checkTemplates(ctx);
    if (problems.length) throw new Error(`sync ${ctx.sync}: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`);
    const missing = strategyActions[ctx.strategy].filter((a) => !templateFor(ctx.destination.requests, a));
    if (missing.length) {
      throw new Error(
        `sync ${ctx.sync}: the ${ctx.strategy} strategy sends ${missing.join(' and ')} requests; ` +
          `add ${missing.map((a) => `destination.requests.${a}`).join(' and ')}`,
      );
    }
    const lookup = ctx.destination.requests.lookup;
    // replace empties the set once, just before its first record, or at the commit of an empty
    // full set: never in a session that only looks records up, nor in a run that failed first.
    const removeAll = ctx.strategy === 'replace' ? ctx.destination.requests.delete_all : undefined;
    let emptied: Promise<void> | undefined;
    const empty = () => (removeAll ? (emptied ??= deleteAll(ctx, removeAll)) : Promise.resolve());
    return {
      // ctx.schedule bounds how many of these run at once.
      apply: async (changes) => {
        await empty();
        return applyAll(ctx, changes);
      },
      ...(lookup && { find: (changes: Change[]) => Promise.all(changes.map((c) => lookupOne(ctx, c, lookup))) }),
      close: async (commit) => {
        if (commit) await empty();
      },
    };
  },
};

export default plugin;

/**
 * Every request template of a sync, compiled and rendered against sample values: a syntax error,
 * an unknown filter, a name that is not in the part's context (`recrod`), a record field that is
 * not in the mapping (`record.emial`), or a path that leaves base_url. Nothing is sent.
 */
function checkTemplates(ctx: DestinationContext<HttpConfig, HttpDestination>): DestinationIssue[] {
  const issues: DestinationIssue[] = [];
  const record = sampleRecord(ctx.fields, ctx.fieldTypes);
  for (const [name, template] of Object.entries(ctx.destination.requests) as Array<[string, RequestTemplate | undefined]>) {
    if (!template) continue;
    const base = { action: name, object: ctx.destination.object };
    const one = { key: 'sample-key', record, app_id: 'sample-id' };
    const request = template.batch ? { ...base, changes: [strict({ ...one, action: name }, 'changes[]')], records: [record] } : { ...base, ...one };
    // The answer's shape is the app's: any field of it may be missing.
    const answered = template.batch ? { ...base, ...one, response: {}, result: {} } : { ...request, response: {} };
    const parts: Array<[string, string | undefined, Record<string, unknown>]> = [
      ['path', template.path, request],
      ...Object.entries(template.headers ?? {}).map(([header, source]): [string, string, Record<string, unknown>] => [`headers.${header}`, source, request]),
      ['body', template.body, request],
      ['app_id', template.app_id, answered],
      ['error', template.error, answered],
    ];
    for (const [part, source, context] of parts) {
      const problem = source === undefined ? undefined : ctx.templates.check(source, context, { path: part === 'path' });
      if (problem) issues.push({ path: `destination.requests.${name}.${part}`, message: problem });
    }
    if (issues.some((i) => i.path === `destination.requests.${name}.path`)) continue;
    try {
      urlUnder(ctx.config.base_url, ctx.templates.renderPath(template.path, request).trim(), name);
    } catch (e) {
      if (e instanceof TemplateError) issues.push({ path: `destination.requests.${name}.path`, message: e.message });
    }
  }
  return issues;
}

/** Sends `requests.delete_all`, which empties the set before a replace run sends its first record; a failure fails the run. */
async function deleteAll(ctx: Context, template: RequestTemplate): Promise<void> {
  const { path, url, init } = buildRequest(ctx, 'delete_all', template, renderer(ctx, 'delete_all', 'delete_all'), { object: ctx.destination.object, action: 'delete_all' });
  const answer = await sendScheduled(ctx, url, init, ctx.config.timeout_ms);
  const what = `requests.delete_all (${template.method} ${path})`;
  if ('failure' in answer) throw new Error(`sync ${ctx.sync}: ${what} failed: ${answer.failure}`);
  if (answer.status < 200 || answer.status >= 300) throw new Error(`sync ${ctx.sync}: ${what} answered ${answer.status}${snippetSuffix(answer.text)}`);
}

/**
 * Whether the request's path, headers and body use `record` (or a batch's `records` or `changes`)
 * only as `| tojson`, or not at all: then the warehouse's JSON text goes into the request as it
 * is, never parsed and written again (and with every digit, as history holds it), if at all.
 */
function asJson(ctx: Context, template: RequestTemplate, name: string): boolean {
  return [template.path, template.body ?? '', ...Object.values(template.headers ?? {})].every((source) => ctx.templates.jsonOnly(source, name));
}

/** A template failed to render: the change is rejected, the run goes on. */
class TemplateError extends Error {}

/** The template of an action, with the name it has in ebb.yml (clear and recreate borrow one). */
function templateFor(requests: HttpDestination['requests'], action: Action): { name: string; template: RequestTemplate } | undefined {
  const name = requests[action] ? action : action === 'clear' ? 'update' : action === 'recreate' ? 'create' : action;
  const template = requests[name as keyof typeof requests];
  return template && { name, template };
}

/** Renders one part of a request template; a failure names the template and the part. */
type Render = (part: string, source: string, context: Record<string, unknown>) => string;

function renderer(ctx: Context, name: string, action: Action | 'delete_all'): Render {
  return (part, source, context) => {
    try {
      if (part === 'path') return ctx.templates.renderPath(source, context);
      return renderLookup(source, context) ?? ctx.templates.renderString(source, context);
    } catch (e) {
      const used = name === action ? '' : ` (used for ${action})`;
      throw new TemplateError(`cannot render requests.${name}.${part}${used}: ${errorText(e)}`);
    }
  };
}

/** A template that is one variable lookup, `{{ result.id }}`: its path, or null for any other template. */
const lookupPaths = new Map<string, string[] | null>();
const plainLookup = /^\{\{-?\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*-?\}\}$/;

function lookupPath(source: string): string[] | null {
  let path = lookupPaths.get(source);
  if (path === undefined) {
    path = plainLookup.exec(source)?.[1].split('.') ?? null;
    if (lookupPaths.size < 1000) lookupPaths.set(source, path);
  }
  return path;
}

/** The text of the value at `path` below `value`, as nunjucks prints it; undefined when a step is a function. */
function textAt(value: unknown, path: string[], from: number): string | undefined {
  for (let i = from; i < path.length; i++) {
    if (value === null || value === undefined) return '';
    value = (value as Record<string, unknown>)[path[i]];
    if (typeof value === 'function') return undefined;
  }
  return value === null || value === undefined ? '' : String(value);
}

/**
 * Renders a batch answer's `app_id` or `error` for one record (its change and its item of the
 * answer), as `render` would with the record's context. A template that is one lookup of a name
 * of that context is read straight from the change or the item, without building the context.
 */
function perRecord(render: Render, part: string, source: string, base: { action: Action; object: string }, response: unknown): (change: Change, item: unknown) => string {
  const context = (change: Change, item: unknown) => ({ ...base, key: change.key, record: change.record, app_id: change.appId ?? null, response, result: item });
  if (!source.includes('{')) return () => source;
  const path = lookupPath(source);
  // The names of the record's context (see `context`), each read without it.
  const roots: Record<string, (change: Change, item: unknown) => unknown> = {
    result: (_c, item) => item,
    response: () => response,
    key: (c) => c.key,
    record: (c) => c.record,
    app_id: (c) => c.appId ?? null,
    action: () => base.action,
    object: () => base.object,
  };
  const root = path && Object.hasOwn(roots, path[0]) ? roots[path[0]] : undefined;
  if (!root) return (change, item) => render(part, source, context(change, item));
  return (change, item) => textAt(root(change, item), path!, 1) ?? render(part, source, context(change, item));
}

/**
 * Renders the simplest templates without nunjucks, exactly as nunjucks would: text without any
 * tag (a fixed path), and one variable lookup (null and undefined render empty). Batch mode
 * renders `app_id` and `error` once per record, and nunjucks compiles a template string on every
 * render. Returns undefined for any other template, and for a name that is not in the context (a
 * nunjucks global) or a value that is a function.
 */
export function renderLookup(source: string, context: Record<string, unknown>): string | undefined {
  if (!source.includes('{')) return source;
  const path = lookupPath(source);
  if (!path || !Object.hasOwn(context, path[0])) return undefined;
  return textAt(context, path, 0);
}

/** A request ready to send: its URL (under base_url) and its method, headers and body. */
interface Built {
  path: string;
  url: URL;
  init: Outgoing;
}

/**
 * Renders a template's path, headers and body into a request. Built outside the schedule, so a
 * bad URL or header is a rejection, not a network error. Throws a message for a rejection.
 */
function buildRequest(ctx: Context, name: string, template: RequestTemplate, render: Render, context: Record<string, unknown>): Built {
  try {
    const path = render('path', template.path, context).trim();
    const headers = new Headers(ctx.config.headers);
    for (const [header, source] of Object.entries(template.headers ?? {})) headers.set(header, render(`headers.${header}`, source, context));
    const body = template.body === undefined ? undefined : render('body', template.body, context);
    if (body !== undefined && !headers.has('content-type')) headers.set('content-type', 'application/json');
    if (!headers.has('accept')) headers.set('accept', 'application/json');
    // Headers, not a Request: new Headers() already refuses a bad name or value here, and a
    // Request's body would only be copied out again to be sent.
    return { path, url: urlUnder(ctx.config.base_url, path, name), init: { method: template.method, headers, body } };
  } catch (e) {
    throw new Error(e instanceof TemplateError ? e.message : `cannot build the ${name} request: ${errorText(e)}`);
  }
}

/**
 * base_url and a rendered path, as the URL that is sent: after normalisation (`..`, `\\`) it must
 * still have base_url's origin and sit under its path, so that a request, and the credentials in
 * its headers, can only ever reach the app that base_url names.
 */
function urlUnder(baseUrl: string, path: string, name: string): URL {
  const base = new URL(baseUrl);
  const url = new URL(joinUrl(baseUrl, path));
  const prefix = base.pathname.replace(/\/+$/, '');
  if (url.origin !== base.origin || (url.pathname !== prefix && !url.pathname.startsWith(`${prefix}/`))) {
    throw new TemplateError(`requests.${name}.path renders ${path}, which leads to ${url.origin}${url.pathname}, outside base_url ${baseUrl}; ebb only sends requests under base_url`);
  }
  return url;
}

/** Sends a batch: one request per change, or one request for all when its template says `batch`. */
async function applyAll(ctx: Context, changes: Change[]): Promise<Outcome[]> {
  // The engine sends one action per batch; group anyway, so that the contract's promise of one
  // outcome per change holds whatever it is given.
  const groups = new Map<Action, Change[]>();
  for (const change of changes) {
    const group = groups.get(change.action);
    if (group) group.push(change);
    else groups.set(change.action, [change]);
  }
  if (groups.size === 1) return applyGroup(ctx, changes[0].action, changes);
  const outcomes = new Map<Change, Outcome>();
  await Promise.all(
    [...groups].map(async ([action, group]) => {
      const answers = await applyGroup(ctx, action, group);
      group.forEach((change, i) => outcomes.set(change, answers[i]));
    }),
  );
  return changes.map((change) => outcomes.get(change)!);
}

/** Sends changes of one action, in order of the changes' outcomes. */
function applyGroup(ctx: Context, action: Action, group: Change[]): Promise<Outcome[]> {
  const found = templateFor(ctx.destination.requests, action);
  return found?.template.batch ? applyBatch(ctx, group, found.name, found.template) : Promise.all(group.map((c) => applyOne(ctx, c)));
}

async function applyOne(ctx: Context, change: Change): Promise<Outcome> {
  const found = templateFor(ctx.destination.requests, change.action);
  if (!found) return rejected(change, `no request template for ${change.action}: add destination.requests.${change.action}`);
  const { name, template } = found;
  const context: Record<string, unknown> = {
    record: asJson(ctx, template, 'record') ? new JsonText(() => recordJson(change)) : change.record,
    key: change.key,
    app_id: change.appId ?? null,
    action: change.action,
    object: ctx.destination.object,
  };
  const render = renderer(ctx, name, change.action);

  let built: Built;
  try {
    built = buildRequest(ctx, name, template, render, context);
  } catch (e) {
    return rejected(change, (e as Error).message);
  }

  const answer = await sendScheduled(ctx, built.url, built.init, ctx.config.timeout_ms);
  const what = describeRequest(template.method, built.path);
  if ('failure' in answer) return failed(change, answer.kind, `${what} failed: ${answer.failure}`, unanswered(answer));

  const response = answer.body;
  const result = resultOf(answer, response);
  if (answer.status >= 200 && answer.status < 300) {
    const answered = { ...context, record: change.record, response };
    try {
      const refusal = template.error === undefined ? '' : render('error', template.error, answered).trim();
      if (refusal) return { ...rejected(change, refusal), result };
      if (template.app_id === undefined) return { key: change.key, success: true, appId: change.appId ?? change.key, result };
      const appId = render('app_id', template.app_id, answered).trim();
      if (!appId && createsRecord(change.action)) return { ...withoutId(change, `${what} answered ${answer.status}, but ${noIdentifier(name, template.app_id, answer)}`), result };
      // An update's empty id (say, a 204 without a body) keeps the one ebb already knows.
      return { key: change.key, success: true, appId: appId || change.appId, result };
    } catch (e) {
      return { ...rejected(change, `${what} answered ${answer.status}, but ${errorText(e)}`), result };
    }
  }
  return answerError(change, classify(answer.status, change.action), `${what} answered ${answer.status}${snippetSuffix(answer.text)}`, answer, response, result);
}

/**
 * One request for a whole batch. A 2xx is read item by item; any other answer is the same for
 * every change: a 4xx refuses the request as a whole (`wholeBatch`), so the engine splits the batch
 * until the bad records are alone, and a batch of one is classified as a single request would be.
 */
async function applyBatch(ctx: Context, changes: Change[], name: string, template: RequestTemplate): Promise<Outcome[]> {
  const action = changes[0].action;
  const render = renderer(ctx, name, action);
  const base = { action, object: ctx.destination.object };
  const context = {
    ...base,
    changes: asJson(ctx, template, 'changes')
      ? new JsonText(() => `[${changes.map((c) => `{"key":${JSON.stringify(c.key)},"record":${recordJson(c)},"app_id":${stringifyJson(c.appId ?? null)},"action":"${c.action}"}`).join(',')}]`)
      : changes.map((c) => ({ key: c.key, record: c.record, app_id: c.appId ?? null, action: c.action })),
    records: asJson(ctx, template, 'records') ? new JsonText(() => `[${changes.map(recordJson).join(',')}]`) : changes.map((c) => c.record),
  };

  let built: Built;
  try {
    built = buildRequest(ctx, name, template, render, context);
  } catch (e) {
    // A record whose values break the template is isolated like one the app refuses; no request is sent meanwhile.
    const message = (e as Error).message;
    return changes.map((c) => ({ key: c.key, success: false, appId: c.appId, error: { kind: 'rejected', message, ...(changes.length > 1 && { wholeBatch: true }) } }));
  }

  const answer = await sendScheduled(ctx, built.url, built.init, ctx.config.timeout_ms);
  const what = describeRequest(template.method, built.path);
  const size = changes.length === 1 ? '' : ` (a batch of ${changes.length})`;
  if ('failure' in answer) return changes.map((c) => failed(c, answer.kind, `${what}${size} failed: ${answer.failure}`, unanswered(answer)));

  const response = answer.body;
  if (answer.status < 200 || answer.status >= 300) {
    const message = `${what}${size} answered ${answer.status}${snippetSuffix(answer.text)}`;
    const result = resultOf(answer, response);
    return changes.map((c) => {
      if (changes.length === 1) return answerError(c, classify(answer.status, action), message, answer, response, result);
      const kind = classifyBatch(answer.status, action);
      return answerError(c, kind, message, answer, response, result, kind === 'rejected');
    });
  }

  // Per-record answers: at `results`, or the answer itself when it is a list. Without either, the
  // app acknowledged the batch as a whole and every record succeeded.
  const items = template.results !== undefined ? valueAt(response, template.results) : Array.isArray(response) ? response : undefined;
  if ((template.results !== undefined || items !== undefined) && (!Array.isArray(items) || items.length !== changes.length)) {
    const where = template.results === undefined ? 'the answer' : `results (${template.results})`;
    const found = Array.isArray(items) ? `${items.length} items` : 'no list';
    const message = `${what}${size} answered ${answer.status}, but ${where} holds ${found} for ${changes.length} records; check requests.${name}.results`;
    return changes.map((c) => ({ ...rejected(c, message), result: resultOf(answer, response) }));
  }
  const whole = items ? undefined : resultOf(answer, response);
  const error = template.error === undefined ? undefined : perRecord(render, 'error', template.error, base, response);
  const appIdOf = template.app_id === undefined ? undefined : perRecord(render, 'app_id', template.app_id, base, response);
  return changes.map((change, i) => {
    const item = items?.[i];
    const result = whole ?? { status: answer.status, body: item };
    try {
      const refusal = error ? error(change, item).trim() : '';
      if (refusal) return { ...rejected(change, refusal), result };
      if (template.app_id === undefined || !appIdOf) return { key: change.key, success: true, appId: change.appId ?? change.key, result };
      const appId = appIdOf(change, item).trim();
      if (!appId && createsRecord(action)) return { ...withoutId(change, `${what}${size} answered ${answer.status}, but ${noIdentifier(name, template.app_id, answer)}`), result };
      return { key: change.key, success: true, appId: appId || change.appId, result };
    } catch (e) {
      return { ...rejected(change, `${what}${size} answered ${answer.status}, but ${errorText(e)}`), result };
    }
  });
}

/** Asks the app for one record (`requests.lookup`): a 2xx with a non-empty `app_id` finds it; a 404 or an empty `app_id` says it is not there. */
async function lookupOne(ctx: Context, change: Change, template: RequestTemplate): Promise<Match> {
  const key = change.key;
  const context = { record: change.record, key, app_id: null, action: change.action, object: ctx.destination.object };
  const render = renderer(ctx, 'lookup', change.action);
  let built: Built;
  try {
    built = buildRequest(ctx, 'lookup', template, render, context);
  } catch (e) {
    return { key, error: (e as Error).message };
  }
  const answer = await sendScheduled(ctx, built.url, built.init, ctx.config.timeout_ms);
  const what = describeRequest(template.method, built.path);
  if ('failure' in answer) return { key, error: `${what} failed: ${answer.failure}` };
  if (answer.status === 404) return { key, appId: null };
  if (answer.status < 200 || answer.status >= 300) return { key, error: `${what} answered ${answer.status}${snippetSuffix(answer.text)}` };
  try {
    return { key, appId: render('app_id', template.app_id ?? '', { ...context, response: answer.body }).trim() || null };
  } catch (e) {
    return { key, error: `${what} answered ${answer.status}, but ${errorText(e)}` };
  }
}

/** A request in a message, as `METHOD path`, without the query string: it may hold an API key. */
function describeRequest(method: string, path: string): string {
  return `${method} ${path.split('?')[0]}`;
}

/** What an answer is stored as in history: its status and its (truncated) body. */
function resultOf(answer: { status: number; text: string; capped: boolean }, response: unknown): { status: number; body: unknown } {
  return { status: answer.status, body: answer.capped || answer.text.length > resultLimit ? truncated(answer.text, resultLimit, answer.capped) : response };
}

/** A create or recreate makes a record, whose identifier ebb needs for its later updates and deletes. */
function createsRecord(action: Action): boolean {
  return action === 'create' || action === 'recreate';
}

/**
 * A create the app accepted without an identifier ebb could read. The record is in the app, so
 * sending the create again could make a second one: like a create that got no answer, it is in
 * doubt (`sent`), for a lookup or `ebb resolve` to settle. A recreate is simply failed: the next
 * run rebuilds the whole set anyway.
 */
function withoutId(change: Change, message: string): Outcome {
  return failed(change, 'rejected', message, change.action === 'create' ? 'sent' : undefined);
}

/** Why a create that succeeded in the app is still a failure: no identifier came out of its answer. */
function noIdentifier(name: string, template: string, answer: { text: string; capped: boolean; body: unknown }): string {
  const why = answer.capped
    ? `the answer was cut at ${maxAnswerBytes} bytes`
    : answer.body === null
      ? 'the answer was empty'
      : typeof answer.body === 'string'
        ? `the answer is not JSON (${snippet(answer.text, 100)})`
        : 'the answer holds no identifier there';
  return `requests.${name}.app_id (${template}) rendered empty: ${why}. Without the record's identifier, ebb could not update or delete it later; make app_id read the identifier from the answer`;
}

/**
 * A batch request's answer other than 2xx, for a batch of more than one: any 4xx but 404 (on
 * update, delete or clear), 408 and 429 refuses the whole request, even a 409, which names one
 * record of the batch; once split down to that record, the 409 is a conflict with its id.
 */
function classifyBatch(status: number, action: Action): ErrorKind {
  const kind = classify(status, action);
  return kind === 'conflict' ? 'rejected' : kind;
}

function rejected(change: Change, message: string): Outcome {
  return failed(change, 'rejected', message);
}

/** For a request without an answer (not a redirect, which is one): whether it left at all. */
function unanswered(answer: { kind: 'transient' | 'rejected'; sent: boolean }): 'connect' | 'sent' | undefined {
  if (answer.kind !== 'transient') return undefined;
  return answer.sent ? 'sent' : 'connect';
}

function failed(change: Change, kind: ErrorKind, message: string, noAnswer?: 'connect' | 'sent'): Outcome {
  return { key: change.key, success: false, appId: change.appId, error: { kind, message, ...(noAnswer && { noAnswer }) } };
}

/** The value at a dotted path (`data.results`, `items.0`) of a parsed JSON answer. */
function valueAt(value: unknown, path: string): unknown {
  let at = value;
  for (const step of path.split('.')) {
    if (typeof at !== 'object' || at === null) return undefined;
    at = (at as Record<string, unknown>)[step];
  }
  return at;
}
