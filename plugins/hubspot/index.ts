/**
 * The `hubspot` plugin: contacts and companies through HubSpot's CRM v3 batch endpoints.
 *
 *   create  → POST /crm/v3/objects/{object}/batch/upsert (by `id_property`, when the strategy may
 *             update: upsert, mirror), else POST …/batch/create (a CONFLICT answer carries the
 *             existing record's ID, and the engine retries the create as an update of it)
 *   update  → POST …/batch/update by record ID; a record whose ID ebb does not know yet is found
 *             first by `id_property` (POST …/batch/read with idProperty)
 *   clear   → the same update, with every mapped property set to "" (HubSpot clears a property
 *             given an empty string)
 *   delete  → POST …/batch/archive by record ID
 *
 * Every request goes through `ctx.schedule` (the connection's rate limit and concurrency), and its
 * body is a nunjucks template, `templates/hubspot/batch_<endpoint>.json.njk`, which a project can
 * override from its own `templates/hubspot/`.
 *
 * Answers, as HubSpot documents them ("Using object APIs", "Error handling", "API usage
 * guidelines"): batch endpoints take at most 100 inputs; a batch create or upsert whose inputs
 * carry `objectWriteTraceId` answers 207 Multi-Status with `results` and `errors`, each error
 * naming its inputs in `context.objectWriteTraceId` (and update's missing records in
 * `context.ids`, category OBJECT_NOT_FOUND); a create of a contact whose email exists fails with
 * category CONFLICT, "Contact already exists. Existing ID: 12345"; a 429 carries `policyName`
 * (SECONDLY, TEN_SECONDLY_ROLLING, DAILY) and the X-HubSpot-RateLimit-* headers; 423 Locked asks
 * for at least 2 seconds between requests.
 */
import { z } from 'zod';
import type { Action, Change, ErrorKind, Outcome, Plugin, Session, SessionContext } from '../plugin.ts';
import { errorText, parseRetryAfter, sendScheduled, snippet, type Answer } from '../shared/http.ts';
import { stringifyJson } from '../shared/json.ts';
import { asError, existingIdOf, kindOfCategory, rateLimitWaitMs, type HubSpotError } from './request.ts';

/** The connection's config. */
export const hubspotConfigSchema = z.strictObject({
  /** A private app's access token (Bearer), with the crm.objects.<object>.read/write scopes. */
  access_token: z.string().min(1, "give the private app's access token, e.g. \"{{ env_var('HUBSPOT_TOKEN') }}\""),
  /** Where the API lives; a test server can stand in. */
  base_url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).default('https://api.hubapi.com'),
  timeout_ms: z.number().int().positive().default(30_000),
});
export type HubSpotConfig = z.infer<typeof hubspotConfigSchema>;

/** The CRM objects this plugin writes to. */
export const hubspotObjects = ['contacts', 'companies'] as const;
export type HubSpotObject = (typeof hubspotObjects)[number];

/** A sync's destination. */
export const hubspotDestinationSchema = z.looseObject({
  object: z.enum(hubspotObjects, { error: `must be one of ${hubspotObjects.join(', ')}` }),
  /**
   * The unique property that matches a source record to a HubSpot record: creates become upserts
   * by it (batch/upsert with idProperty), and a record whose HubSpot ID ebb does not know is looked
   * up by it. Default: `email` for contacts, none for companies (give a custom unique property,
   * one with "hasUniqueValue"). `null` turns matching off: creates are plain creates.
   */
  id_property: z.string().min(1).nullable().optional(),
  /**
   * With an id property, creates under upsert and mirror are upserts by it (batch/upsert): a record
   * HubSpot holds already is updated in place. `false` sends plain creates (batch/create) instead:
   * HubSpot then refuses a contact whose email it holds (CONFLICT, with the existing ID), and ebb
   * turns that create into an update of the existing record.
   */
  upsert: z.boolean().default(true),
});
export type HubSpotDestination = z.infer<typeof hubspotDestinationSchema>;

type Context = SessionContext<HubSpotConfig, HubSpotDestination>;

/** HubSpot's documented limit: "Object API batch endpoints are limited to 100 inputs per request." */
export const HUBSPOT_BATCH_LIMIT = 100;

/** The id property a destination matches on: its own, else `email` for contacts. */
export function idPropertyOf(destination: { object?: unknown; id_property?: unknown }): string | null {
  if (destination.id_property === null) return null;
  if (typeof destination.id_property === 'string' && destination.id_property !== '') return destination.id_property;
  return destination.object === 'contacts' ? 'email' : null;
}

const plugin: Plugin<HubSpotConfig, HubSpotDestination> = {
  name: 'hubspot',
  configSchema: hubspotConfigSchema,
  destinationSchema: hubspotDestinationSchema,
  capabilities: {
    strategies: ['create', 'update', 'upsert', 'mirror'],
    maxBatchSize: HUBSPOT_BATCH_LIMIT,
    // With a unique id property a create sent twice cannot make two records: under upsert and
    // mirror it is an upsert by that property, and under create HubSpot refuses the duplicate
    // (for a contact's email, with CONFLICT and the existing ID).
    idempotentCreate: (destination) => idPropertyOf(destination) !== null,
  },

  async check(ctx) {
    // The cheapest documented read: one contact. It proves the URL, the token and a CRM scope.
    const url = `${ctx.config.base_url.replace(/\/+$/, '')}/crm/v3/objects/contacts?limit=1&archived=false`;
    const answer = await sendScheduled(ctx, url, { headers: headers(ctx.config) }, ctx.config.timeout_ms);
    if ('failure' in answer) throw new Error(`cannot reach HubSpot at ${ctx.config.base_url}: ${answer.failure}`);
    if (answer.status >= 200 && answer.status < 300) return;
    const error = asError(answer.body);
    const what = [error.category, error.message].filter(Boolean).join(': ') || snippet(answer.text);
    if (answer.status === 401) throw new Error(`HubSpot refused the access token (401 ${what}); check access_token`);
    if (answer.status === 403) throw new Error(`the access token lacks a scope (403 ${what}); give the private app crm.objects.contacts.read and the write scopes of your objects`);
    throw new Error(`HubSpot answered ${answer.status} to GET /crm/v3/objects/contacts: ${what}`);
  },

  async open(ctx) {
    const idProperty = idPropertyOf(ctx.destination);
    if (idProperty && !ctx.fields.includes(idProperty)) {
      throw new Error(
        `sync ${ctx.sync}: HubSpot matches ${ctx.destination.object} on the property ${idProperty}, which the mapping does not set; ` +
          `map ${idProperty}, or set destination.id_property to another unique property (or null to turn matching off)`,
      );
    }
    return new HubSpotSession(ctx, idProperty);
  },
};

export default plugin;

/** One change on its way into a batch request. */
interface Item {
  change: Change;
  /** Its `objectWriteTraceId`: unique within the request. */
  trace: string;
  /** The HubSpot record ID it addresses (update, clear, delete). */
  id?: string;
  /** Its value of the id property (create by upsert, lookups). */
  match?: string;
}

/** The batch endpoints, and the template that renders each one's body. */
type Endpoint = 'create' | 'upsert' | 'update' | 'archive' | 'read';

class HubSpotSession implements Session {
  private readonly base: string;

  constructor(
    private readonly ctx: Context,
    private readonly idProperty: string | null,
  ) {
    this.base = `/crm/v3/objects/${ctx.destination.object}/batch`;
  }

  async apply(changes: Change[]): Promise<Outcome[]> {
    // The engine sends one action per batch; group anyway, so that the contract's promise of one
    // outcome per change holds whatever it is given.
    const groups = new Map<Action, Change[]>();
    for (const change of changes) groups.set(change.action, [...(groups.get(change.action) ?? []), change]);
    const outcomes = new Map<Change, Outcome>();
    for (const [action, group] of groups) {
      for (let i = 0; i < group.length; i += HUBSPOT_BATCH_LIMIT) {
        const part = group.slice(i, i + HUBSPOT_BATCH_LIMIT);
        const answers = await this.applyAction(action, part);
        part.forEach((change, j) => outcomes.set(change, answers[j]));
      }
    }
    return changes.map((c) => outcomes.get(c)!);
  }

  async close(): Promise<void> {}

  private applyAction(action: Action, changes: Change[]): Promise<Outcome[]> {
    switch (action) {
      case 'create':
        return this.create(changes);
      case 'update':
        return this.update(changes, false);
      case 'clear':
        return this.update(changes, true);
      case 'delete':
        return this.archive(changes);
      default:
        return Promise.resolve(changes.map((c) => failure(c, 'rejected', `the hubspot plugin does not ${action} records; use create, update, upsert or mirror`)));
    }
  }

  /** Creates: an upsert by the id property when the strategy may update, else a plain create. */
  private async create(changes: Change[]): Promise<Outcome[]> {
    const upsert = this.idProperty !== null && this.ctx.destination.upsert && this.ctx.strategy !== 'create';
    if (!upsert) {
      const items = changes.map((change, i) => ({ change, trace: String(i) }));
      const inputs = items.map((it) => ({ trace_id: it.trace, key: it.change.key, record: it.change.record, properties: properties(it.change.record, 'create') }));
      return this.batch('create', items, { inputs }, (it, result) => matchesIdProperty(this.idProperty, it, result));
    }
    const idProperty = this.idProperty!;
    const outcomes = new Map<Change, Outcome>();
    const items: Item[] = [];
    const seen = new Map<string, string>();
    for (const change of changes) {
      const match = textOf(change.record[idProperty]);
      if (match === undefined) {
        outcomes.set(change, failure(change, 'rejected', `the record has no ${idProperty}, the property HubSpot matches ${this.ctx.destination.object} on`));
        continue;
      }
      const other = seen.get(normalize(idProperty, match));
      if (other !== undefined) {
        outcomes.set(change, failure(change, 'rejected', `record ${other} of the same batch has the same ${idProperty} (${match}); HubSpot holds one record per ${idProperty}`));
        continue;
      }
      seen.set(normalize(idProperty, match), change.key);
      items.push({ change, trace: String(items.length), match });
    }
    if (items.length > 0) {
      const inputs = items.map((it) => ({
        trace_id: it.trace,
        key: it.change.key,
        record: it.change.record,
        id: it.match,
        id_property: idProperty,
        properties: properties(it.change.record, 'write'),
      }));
      const answers = await this.batch('upsert', items, { inputs, id_property: idProperty }, (it, result) => matchesIdProperty(idProperty, it, result));
      items.forEach((it, i) => outcomes.set(it.change, answers[i]));
    }
    return changes.map((c) => outcomes.get(c)!);
  }

  /** Updates (and clears) by record ID; IDs that ebb does not know are looked up first. */
  private async update(changes: Change[], clear: boolean): Promise<Outcome[]> {
    const { items, outcomes } = await this.resolve(changes);
    if (items.length > 0) {
      const inputs = items.map((it) => ({
        trace_id: it.trace,
        key: it.change.key,
        record: it.change.record,
        id: it.id,
        app_id: it.change.appId ?? null,
        properties: properties(it.change.record, clear ? 'clear' : 'write'),
      }));
      const answers = await this.batch('update', items, { inputs }, (it, result) => String(result.id) === it.id);
      items.forEach((it, i) => outcomes.set(it.change, answers[i]));
    }
    return changes.map((c) => outcomes.get(c)!);
  }

  /** Archives by record ID ("delete" puts a record in HubSpot's recycling bin for 90 days). */
  private async archive(changes: Change[]): Promise<Outcome[]> {
    const { items, outcomes } = await this.resolve(changes);
    if (items.length > 0) {
      const inputs = items.map((it) => ({ trace_id: it.trace, key: it.change.key, id: it.id }));
      const answers = await this.batch('archive', items, { inputs }, () => false);
      items.forEach((it, i) => outcomes.set(it.change, answers[i]));
    }
    return changes.map((c) => outcomes.get(c)!);
  }

  /**
   * The HubSpot ID of each change: the one ebb knows, else the one batch/read finds by the id
   * property. A record that is not there is `not_found` (the engine then creates it under upsert
   * and mirror, and counts a delete as done).
   */
  private async resolve(changes: Change[]): Promise<{ items: Item[]; outcomes: Map<Change, Outcome> }> {
    const outcomes = new Map<Change, Outcome>();
    const known: Change[] = [];
    const lookups: Item[] = [];
    for (const change of changes) {
      if (change.appId) {
        known.push(change);
        continue;
      }
      const match = this.idProperty ? textOf(change.record[this.idProperty]) : undefined;
      if (match === undefined) {
        const how = this.idProperty ? `and the record has no ${this.idProperty} to find it by` : 'and the destination has no id_property to find it by';
        outcomes.set(change, failure(change, 'rejected', `ebb does not know this record's HubSpot ID, ${how}`));
      } else lookups.push({ change, trace: String(lookups.length), match });
    }
    const found = new Map<Change, string>();
    if (lookups.length > 0) {
      const idProperty = this.idProperty!;
      const body = JSON.stringify({ idProperty, properties: [idProperty], inputs: lookups.map((it) => ({ id: it.match })) });
      const path = `${this.base}/read`;
      const answer = await this.post(path, body);
      if ('failure' in answer || answer.status < 200 || answer.status >= 300) {
        const failed = wholeAnswerOutcomes(lookups, answer, `POST ${path}`, 'read');
        lookups.forEach((it, i) => outcomes.set(it.change, failed[i]));
      } else {
        const byValue = new Map<string, string>();
        for (const result of resultsOf(answer.body)) {
          const value = textOf((result.properties as Record<string, unknown> | undefined)?.[idProperty]);
          if (value !== undefined && result.id !== undefined) byValue.set(normalize(idProperty, value), String(result.id));
        }
        for (const it of lookups) {
          const id = byValue.get(normalize(idProperty, it.match!));
          if (id) found.set(it.change, id);
          else outcomes.set(it.change, { ...failure(it.change, 'not_found', `HubSpot has no ${this.ctx.destination.object} record with ${idProperty} ${it.match}`), result: { status: answer.status } });
        }
      }
    }
    const items: Item[] = [];
    for (const change of changes) {
      const id = change.appId ?? found.get(change);
      if (id) items.push({ change, trace: String(items.length), id });
    }
    return { items, outcomes };
  }

  /** Renders an endpoint's template, sends it and reads the answer per item. */
  private async batch(endpoint: Endpoint, items: Item[], context: Record<string, unknown>, matches: (item: Item, result: Result) => boolean): Promise<Outcome[]> {
    const template = `hubspot/batch_${endpoint}.json.njk`;
    const path = `${this.base}/${endpoint}`;
    let body: string;
    try {
      body = this.ctx.templates.render(template, { object: this.ctx.destination.object, action: items[0].change.action, ...context });
    } catch (e) {
      // A record whose values break the template is isolated like one the app refuses.
      const message = `cannot render ${template}: ${errorText(e).replace(/^(Template render error: )?\([^)]*\)\s*/, '')}`;
      return items.map((it) => ({ key: it.change.key, success: false, appId: it.change.appId, error: { kind: 'rejected', message, ...(items.length > 1 && { wholeBatch: true }) } }));
    }
    const answer = await this.post(path, body);
    const what = `POST ${path}${items.length > 1 ? ` (a batch of ${items.length})` : ''}`;
    if ('failure' in answer || answer.status < 200 || answer.status >= 300) return wholeAnswerOutcomes(items, answer, what, endpoint);
    // 204 No Content (archive): every input was done.
    if (answer.status === 204 || endpoint === 'archive') {
      return items.map((it) => ({ key: it.change.key, success: true, appId: it.id ?? it.change.appId, result: { status: answer.status } }));
    }
    return readItems(items, answer.status, answer.body, matches, what);
  }

  private post(path: string, body: string): Promise<Answer> {
    const url = `${this.ctx.config.base_url.replace(/\/+$/, '')}${path}`;
    return sendScheduled(this.ctx, url, { method: 'POST', headers: headers(this.ctx.config), body }, this.ctx.config.timeout_ms);
  }
}

function headers(config: HubSpotConfig): Record<string, string> {
  return { authorization: `Bearer ${config.access_token}`, 'content-type': 'application/json', accept: 'application/json' };
}

/** One result of a batch answer: a HubSpot record. */
interface Result {
  id?: string | number;
  new?: boolean;
  properties?: Record<string, unknown>;
  objectWriteTraceId?: string;
  [key: string]: unknown;
}

function resultsOf(body: unknown): Result[] {
  const results = (body as { results?: unknown } | null)?.results;
  return Array.isArray(results) ? (results.filter((r) => typeof r === 'object' && r !== null) as Result[]) : [];
}

function errorsOf(body: unknown): HubSpotError[] {
  const errors = (body as { errors?: unknown } | null)?.errors;
  return Array.isArray(errors) ? errors.map(asError) : [];
}

/**
 * A 2xx answer, item by item: each result goes to its input by `objectWriteTraceId`, else by
 * `matches` (the record ID, or the id property's value), else by position when nothing else is
 * told; each error to the inputs its context names (`objectWriteTraceId`, or `ids`), or to every
 * input left without a result when it names none.
 */
function readItems(items: Item[], status: number, body: unknown, matches: (item: Item, result: Result) => boolean, what: string): Outcome[] {
  const results = resultsOf(body);
  const errors = errorsOf(body);
  const resultOf = new Map<Item, Result>();
  const byTrace = new Map(items.map((it) => [it.trace, it]));
  const unmatched: Result[] = [];
  for (const result of results) {
    const it = result.objectWriteTraceId === undefined ? undefined : byTrace.get(String(result.objectWriteTraceId));
    if (it && !resultOf.has(it)) resultOf.set(it, result);
    else unmatched.push(result);
  }
  const positional: Result[] = [];
  for (const result of unmatched) {
    const it = items.find((candidate) => !resultOf.has(candidate) && matches(candidate, result));
    if (it) resultOf.set(it, result);
    else positional.push(result);
  }
  const left = items.filter((it) => !resultOf.has(it));
  if (positional.length > 0 && errors.length === 0 && positional.length === left.length) left.forEach((it, i) => resultOf.set(it, positional[i]));

  const errorOf = new Map<Item, HubSpotError>();
  for (const error of errors) {
    const traces = stringList(error.context?.objectWriteTraceId);
    const ids = stringList(error.context?.ids);
    let targets: Item[];
    if (traces.length > 0) targets = traces.map((t) => byTrace.get(t)).filter((it): it is Item => it !== undefined);
    else if (ids.length > 0) targets = items.filter((it) => ids.some((id) => id === it.id || (it.match !== undefined && id.toLowerCase() === it.match.toLowerCase())));
    else targets = items.filter((it) => !resultOf.has(it));
    for (const it of targets) if (!errorOf.has(it)) errorOf.set(it, error);
  }

  return items.map((it) => {
    const error = errorOf.get(it);
    const result = resultOf.get(it);
    if (error && !result) {
      const kind = kindOfCategory(error.category);
      const existingAppId = kind === 'conflict' ? existingIdOf(error) : undefined;
      return {
        key: it.change.key,
        success: false,
        appId: it.change.appId,
        result: { status, error },
        error: { kind, message: `${what} answered ${status}: ${describe(error)}`, ...(existingAppId && { existingAppId }) },
      };
    }
    if (!result || result.id === undefined) {
      return { ...failure(it.change, 'rejected', `${what} answered ${status} without a result or an error for this record (HubSpot may have merged it into another)`), result: { status } };
    }
    const id = String(result.id);
    return { key: it.change.key, success: true, appId: id, result: { status, id, ...(typeof result.new === 'boolean' && { new: result.new }) } };
  });
}

/**
 * An answer other than 2xx applies to every input. 429, 423, 408 and 5xx are worth a retry (with
 * the wait the app asked for); a 400 or 409 refuses the request as a whole, so the engine splits the
 * batch until the bad records are alone, and a lone create answered 409 is a conflict with the
 * existing record's ID; 401 and 403 fail every record as they are (splitting cannot help).
 */
function wholeAnswerOutcomes(items: Item[], answer: Answer, what: string, endpoint: Endpoint): Outcome[] {
  if ('failure' in answer) return items.map((it) => failure(it.change, answer.kind, `${what} failed: ${answer.failure}`));
  const error = asError(answer.body);
  const message = `${what} answered ${answer.status}${describe(error) ? `: ${describe(error)}` : answer.text ? `: ${snippet(answer.text)}` : ''}`;
  const result = { status: answer.status, ...(Object.keys(error).length > 0 ? { error } : answer.text && { body: snippet(answer.text, 2000) }) };
  let kind: ErrorKind;
  let retryAfterMs: number | undefined;
  let wholeBatch = false;
  let existingAppId: string | undefined;
  if (answer.status === 429) {
    kind = 'rate_limited';
    retryAfterMs = rateLimitWaitMs(answer.headers, answer.body);
  } else if (answer.status === 423) {
    // "Include a delay of at least 2 seconds between your API requests."
    kind = 'transient';
    retryAfterMs = parseRetryAfter(answer.headers.get('retry-after')) ?? 2000;
  } else if (answer.status >= 500 || answer.status === 408) {
    kind = 'transient';
    retryAfterMs = parseRetryAfter(answer.headers.get('retry-after'));
  } else if (answer.status === 409 && items.length === 1 && (endpoint === 'create' || endpoint === 'upsert')) {
    kind = 'conflict';
    existingAppId = existingIdOf(error);
  } else {
    kind = 'rejected';
    wholeBatch = items.length > 1 && (answer.status === 400 || answer.status === 409 || answer.status === 422);
  }
  return items.map((it) => ({
    key: it.change.key,
    success: false,
    appId: it.change.appId,
    result,
    error: {
      kind,
      message,
      ...(retryAfterMs !== undefined && { retryAfterMs }),
      ...(existingAppId && { existingAppId }),
      ...(wholeBatch && { wholeBatch }),
    },
  }));
}

function failure(change: Change, kind: ErrorKind, message: string): Outcome {
  return { key: change.key, success: false, appId: change.appId, error: { kind, message } };
}

/** An error in one line: its category and message, and the first detail. */
function describe(error: HubSpotError): string {
  const head = [error.category, error.message].filter(Boolean).join(' ');
  const detail = error.errors?.[0]?.message;
  return detail && !head.includes(detail) ? `${head} (${detail})` : head;
}

/**
 * A record as HubSpot properties: every value a string. `null` is left out of a create, and is ""
 * elsewhere, which clears the property ("Properties values can be cleared by passing an empty
 * string"); clear sends "" for every mapped property.
 */
export function properties(record: Record<string, unknown>, mode: 'create' | 'write' | 'clear'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(record)) {
    if (mode === 'clear' || value === null || value === undefined) {
      if (mode !== 'create') out[name] = '';
      continue;
    }
    out[name] = typeof value === 'object' ? stringifyJson(value) : String(value);
  }
  return out;
}

/** A value as the text HubSpot matches on; undefined when empty. */
function textOf(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  const text = typeof value === 'object' ? stringifyJson(value) : String(value);
  return text.trim() === '' ? undefined : text;
}

/** HubSpot stores emails in lower case, so an email matches whatever its case. */
function normalize(idProperty: string, value: string): string {
  return idProperty === 'email' ? value.trim().toLowerCase() : value;
}

function matchesIdProperty(idProperty: string | null, item: Item, result: Result): boolean {
  if (!idProperty) return false;
  const mine = item.match ?? textOf(item.change.record[idProperty]);
  const theirs = textOf(result.properties?.[idProperty]);
  return mine !== undefined && theirs !== undefined && normalize(idProperty, mine) === normalize(idProperty, theirs);
}

function stringList(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  return value === undefined || value === null ? [] : [String(value)];
}
