/**
 * The `salesforce` plugin: any sObject (Contact, Account, Invoice__c…) through the REST API's
 * sObject Collections, up to 200 records per request:
 *
 *   create  POST   /services/data/vXX.X/composite/sobjects                    {allOrNone, records}
 *   update  PATCH  /services/data/vXX.X/composite/sobjects                    records carry their id
 *   upsert  PATCH  /services/data/vXX.X/composite/sobjects/{SObject}/{Field}  on an external id field
 *   delete  DELETE /services/data/vXX.X/composite/sobjects?ids=…&allOrNone=false
 *
 * Every request sets allOrNone=false, so each record gets its own SaveResult ({id, success,
 * errors: [{statusCode, message, fields}]}) and one bad record never fails the others.
 *
 * Identifiers. The record's app id is its 18-character Salesforce Id. With `external_id_field`, a
 * create is an upsert on that field (a create sent twice cannot make two records), and a record
 * whose Id ebb does not know yet (the update strategy's first run) is looked up by that field with
 * SOQL. Without it, a create that Salesforce refuses as a duplicate, DUPLICATE_VALUE on a unique
 * field or DUPLICATES_DETECTED from a duplicate rule, names the existing record: the engine then
 * updates that record instead (SPEC §3, business retries).
 *
 * Request bodies are rendered from `salesforce/records.json.njk` and `salesforce/record.json.njk`,
 * which a project can override in its own templates/salesforce/.
 */
import { z } from 'zod';
import { closest } from 'fastest-levenshtein';
import type { Action, Change, ErrorKind, Outcome, Plugin, Session, SessionContext } from '../plugin.ts';
import { errorText as oneLine, maxAnswerBytes, parseBody, parseRetryAfter, sendScheduled, snippetSuffix, truncated } from '../shared/http.ts';
import { AuthError, authenticator, type Authenticator, type Credentials } from './auth.ts';

const apiName = /^[A-Za-z][A-Za-z0-9_]*$/;
const httpUrl = (what: string) => z.url({ protocol: /^https?$/, error: `must be the ${what}, an https:// URL` });
const jwtKeys = ['client_id', 'username', 'private_key_path'] as const;

/** The connection's config: an access token, or the JWT bearer flow of a connected app. */
export const salesforceConfigSchema = z
  .strictObject({
    /** The login URL: the token endpoint's host, and the JWT's default audience. */
    base_url: httpUrl('login URL').default('https://login.salesforce.com'),
    /** The org's URL. Required with access_token; the JWT flow learns it from the token answer. */
    instance_url: httpUrl("org's URL").optional(),
    /** A session id or OAuth access token (through env_var). */
    access_token: z.string().min(1).optional(),
    /** JWT bearer flow: the connected app's consumer key. */
    client_id: z.string().min(1).optional(),
    /** JWT bearer flow: the Salesforce username the integration acts as. */
    username: z.string().min(1).optional(),
    /** JWT bearer flow: the PEM private key of the connected app's certificate, relative to ebb.yml. */
    private_key_path: z.string().min(1).optional(),
    /** JWT bearer flow: the PEM private key itself, instead of private_key_path (through env_var). */
    private_key: z.string().min(1).optional(),
    /** JWT bearer flow: the assertion's aud. Default: base_url. */
    audience: z.string().min(1).optional(),
    api_version: z
      .string()
      .regex(/^\d{2,3}\.0$/, { message: 'must look like 62.0', abort: true })
      .refine((v) => Number(v) >= 46, 'must be 46.0 or later (upsert through sObject Collections arrived in 46.0)')
      .default('62.0'),
    timeout_ms: z.number().int().positive().default(30_000),
  })
  .superRefine((c, issue) => {
    const jwt = c.client_id !== undefined || c.username !== undefined || c.private_key_path !== undefined || c.private_key !== undefined;
    if (c.access_token === undefined && !jwt) {
      issue.addIssue({ code: 'custom', path: [], message: 'give access_token (with instance_url), or client_id, username and private_key_path for the JWT bearer flow' });
    } else if (c.access_token !== undefined && jwt) {
      issue.addIssue({ code: 'custom', path: ['access_token'], message: 'give access_token or the JWT bearer flow settings (client_id, username, private_key_path), not both' });
    } else if (c.access_token !== undefined) {
      if (c.instance_url === undefined) issue.addIssue({ code: 'custom', path: ['instance_url'], message: "is required with access_token: the org's URL, such as https://acme.my.salesforce.com" });
    } else {
      for (const key of jwtKeys) {
        const given = key === 'private_key_path' ? c.private_key_path ?? c.private_key : c[key];
        if (given === undefined) issue.addIssue({ code: 'custom', path: [key], message: `is required for the JWT bearer flow${key === 'private_key_path' ? ' (or give private_key)' : ''}` });
      }
      if (c.private_key_path !== undefined && c.private_key !== undefined) issue.addIssue({ code: 'custom', path: ['private_key'], message: 'give private_key_path or private_key, not both' });
    }
  });
export type SalesforceConfig = z.infer<typeof salesforceConfigSchema>;

/** A sync's destination: the sObject, and optionally the external id field to upsert and match on. */
export const salesforceDestinationSchema = z.looseObject({
  object: z.string().regex(apiName, 'must be an sObject API name, such as Contact or Invoice__c'),
  /** A field marked External ID (or Id lookup) on the object, mapped by the sync. */
  external_id_field: z.string().regex(apiName, 'must be a field API name, such as External_Id__c').optional(),
});
export type SalesforceDestination = z.infer<typeof salesforceDestinationSchema>;

type Context = SessionContext<SalesforceConfig, SalesforceDestination>;

/** sObject Collections take at most 200 records per request. */
const COLLECTION_LIMIT = 200;
/** Values per SOQL lookup: keeps the query URL well under Salesforce's 16 KB URI limit. */
const LOOKUP_CHUNK = 100;

const plugin: Plugin<SalesforceConfig, SalesforceDestination> = {
  name: 'salesforce',
  configSchema: salesforceConfigSchema,
  destinationSchema: salesforceDestinationSchema,
  capabilities: {
    strategies: ['create', 'update', 'upsert', 'mirror'],
    maxBatchSize: COLLECTION_LIMIT,
    idempotentCreate: (destination) => typeof destination.external_id_field === 'string',
  },

  async check(ctx) {
    const api = new Api(ctx, authenticator(ctx));
    // The limits resource is cheap, needs a valid session, and proves the API is enabled for the user.
    const answer = await api.call('GET', '/limits');
    if ('failure' in answer) throw new Error(`salesforce: ${answer.failure}`);
    if (answer.status !== 200) throw new Error(`salesforce: GET /limits answered ${answer.status}${errorSummary(answer)}`);
  },

  async open(ctx) {
    const api = new Api(ctx, authenticator(ctx));
    const describe = await api.call('GET', `/sobjects/${ctx.destination.object}/describe`);
    if ('failure' in describe) throw new Error(`salesforce: ${describe.failure}`);
    if (describe.status === 404) throw new Error(`salesforce: the org has no sObject ${ctx.destination.object} that this user can see; check destination.object`);
    if (describe.status !== 200) throw new Error(`salesforce: describing ${ctx.destination.object} answered ${describe.status}${errorSummary(describe)}`);
    checkFields(ctx, describe.json as Describe);
    return new SalesforceSession(ctx, api);
  },
};

export default plugin;

/** The part of an sObject describe that the plugin reads. */
interface Describe {
  fields?: Array<{ name: string; externalId?: boolean; idLookup?: boolean }>;
}

/** Refuses a run whose mapping names fields the object does not have, before anything is sent. */
function checkFields(ctx: Context, describe: Describe): void {
  const fields = new Map((describe.fields ?? []).map((f) => [f.name.toLowerCase(), f]));
  const names = [...fields.values()].map((f) => f.name);
  const { object, external_id_field: external } = ctx.destination;
  const unknown = ctx.fields.filter((f) => !fields.has(f.toLowerCase()));
  if (unknown.length > 0) {
    const list = unknown.map((f) => `"${f}"${names.length ? ` (did you mean "${closest(f, names)}"?)` : ''}`).join(', ');
    throw new Error(`salesforce: ${object} has no field ${list}; the mapping's keys must be field API names`);
  }
  if (external !== undefined) {
    const field = fields.get(external.toLowerCase());
    if (!field) throw new Error(`salesforce: destination.external_id_field: ${object} has no field "${external}"`);
    if (!field.externalId && !field.idLookup) throw new Error(`salesforce: destination.external_id_field: ${object}.${field.name} is not marked External ID; mark it in Setup, or choose another field`);
    if (!ctx.fields.some((f) => f.toLowerCase() === external.toLowerCase())) {
      throw new Error(`salesforce: destination.external_id_field ${external} must be mapped: add it to the sync's mapping`);
    }
  }
}

/** The most of an answer ebb reads from the org: an sObject describe can run to several MiB. */
const describeBytes = 32 * maxAnswerBytes;

/** An answer from the REST API, or a request that got none. */
type Answer = { status: number; json: unknown; text: string; limitInfo: string | null; retryAfter: string | null; what: string } | { failure: string; kind: ErrorKind; what: string };

/** Calls the org's REST API under the connection's schedule; renews a JWT session once on a 401. */
class Api {
  constructor(
    private readonly ctx: { config: SalesforceConfig; schedule: <T>(request: () => Promise<T>) => Promise<T> },
    private readonly auth: Authenticator,
  ) {}

  async call(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: string): Promise<Answer> {
    const what = `${method} ${path.split('?')[0]}`;
    let credentials: Credentials;
    try {
      credentials = await this.auth.credentials();
    } catch (e) {
      return { failure: (e as Error).message, kind: e instanceof AuthError && e.transient ? 'transient' : 'rejected', what };
    }
    let answer = await this.send(credentials, method, path, body, what);
    if ('status' in answer && answer.status === 401) {
      let renewed: Credentials | undefined;
      try {
        renewed = await this.auth.renew(credentials);
      } catch (e) {
        return { failure: (e as Error).message, kind: e instanceof AuthError && e.transient ? 'transient' : 'rejected', what };
      }
      if (renewed) answer = await this.send(renewed, method, path, body, what);
    }
    return answer;
  }

  private async send(credentials: Credentials, method: string, path: string, body: string | undefined, what: string): Promise<Answer> {
    const { api_version, timeout_ms } = this.ctx.config;
    const url = `${credentials.instanceUrl}/services/data/v${api_version}${path}`;
    const headers: Record<string, string> = {
      authorization: `Bearer ${credentials.accessToken}`,
      accept: 'application/json',
      // Salesforce's header for naming the client in the org's API usage reports.
      'sforce-call-options': 'client=ebb',
    };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const answer = await sendScheduled(this.ctx, url, { method, headers, body }, timeout_ms, describeBytes);
    if ('failure' in answer) return { failure: `${what} failed: ${answer.failure}`, kind: answer.kind, what };
    const { status, text } = answer;
    return { status, json: answer.capped ? undefined : parseBody(text, () => undefined), text, limitInfo: answer.headers.get('sforce-limit-info'), retryAfter: answer.headers.get('retry-after'), what };
  }
}

/** One item of a SaveResult, UpsertResult or DeleteResult list. */
interface ResultItem {
  id?: string | null;
  success?: boolean;
  created?: boolean;
  errors?: ItemError[];
}
interface ItemError {
  statusCode?: string;
  message?: string;
  fields?: string[];
  duplicateResult?: { matchResults?: Array<{ rule?: string; matchRecords?: Array<{ matchConfidence?: number; record?: { Id?: string } }> }> };
}

/** A change on its way: the id it will be sent with, once known. */
interface Pending {
  change: Change;
  id?: string;
}

class SalesforceSession implements Session {
  constructor(
    private readonly ctx: Context,
    private readonly api: Api,
  ) {}

  async apply(changes: Change[]): Promise<Outcome[]> {
    // The engine sends one action per batch; group anyway, so that every change gets its outcome.
    const groups = new Map<Action, Change[]>();
    for (const change of changes) groups.set(change.action, [...(groups.get(change.action) ?? []), change]);
    const outcomes = new Map<Change, Outcome>();
    for (const [action, group] of groups) {
      const answered = await this.applyAction(action, group);
      group.forEach((change, i) => outcomes.set(change, answered[i]));
    }
    return changes.map((change) => outcomes.get(change)!);
  }

  async close(): Promise<void> {}

  private async applyAction(action: Action, changes: Change[]): Promise<Outcome[]> {
    const external = this.ctx.destination.external_id_field;
    if (action === 'create') return external ? this.upsert(changes, external) : this.save('create', changes.map((change) => ({ change })));
    if (action === 'update' || action === 'clear' || action === 'delete') {
      const outcomes = new Map<Change, Outcome>();
      const known: Pending[] = [];
      const unknown: Change[] = [];
      for (const change of changes) {
        if (change.appId) known.push({ change, id: change.appId });
        else unknown.push(change);
      }
      if (unknown.length > 0) {
        const found = await this.lookup(unknown, external);
        for (const change of unknown) {
          const result = found.get(change)!;
          if (typeof result === 'string') known.push({ change, id: result });
          else outcomes.set(change, result);
        }
      }
      if (known.length > 0) {
        const answered = action === 'delete' ? await this.remove(known) : await this.save('update', known);
        known.forEach((p, i) => outcomes.set(p.change, answered[i]));
      }
      return changes.map((change) => outcomes.get(change)!);
    }
    return changes.map((change) => failed(change, 'rejected', `salesforce does not ${action} records; use the create, update, upsert or mirror strategy`));
  }

  /** The record as it is sent: a clear sets every mapped field but the external id to null. */
  private fieldsOf(change: Change): Record<string, unknown> {
    if (change.action !== 'clear') return change.record;
    const external = this.ctx.destination.external_id_field?.toLowerCase();
    return Object.fromEntries(this.ctx.fields.map((f) => [f, f.toLowerCase() === external ? (change.record[f] ?? null) : null]));
  }

  /** POST (create) or PATCH (update) sObject Collections. */
  private async save(kind: 'create' | 'update', pending: Pending[]): Promise<Outcome[]> {
    const rendered = this.render(pending.map((p) => ({ id: p.id ?? null, record: this.fieldsOf(p.change) })));
    if ('error' in rendered) return pending.map((p) => failed(p.change, 'rejected', rendered.error, pending.length > 1));
    const answer = await this.api.call(kind === 'create' ? 'POST' : 'PATCH', '/composite/sobjects', rendered.body);
    return this.outcomes(
      pending.map((p) => p.change),
      answer,
      (change, item) => item.id ?? change.appId,
    );
  }

  /** PATCH sObject Collections on the external id field: creates or updates each record. */
  private async upsert(changes: Change[], external: string): Promise<Outcome[]> {
    const outcomes = new Map<Change, Outcome>();
    const sendable = changes.filter((change) => {
      const value = valueOf(change.record, external);
      if (value === undefined || value === null || value === '') outcomes.set(change, failed(change, 'rejected', `the record has no value for the external id field ${external}`));
      return !outcomes.has(change);
    });
    if (sendable.length > 0) {
      const rendered = this.render(sendable.map((change) => ({ id: null, record: change.record })));
      const answered =
        'error' in rendered
          ? sendable.map((change) => failed(change, 'rejected', rendered.error, sendable.length > 1))
          : this.outcomes(sendable, await this.api.call('PATCH', `/composite/sobjects/${this.ctx.destination.object}/${external}`, rendered.body), (change, item) => item.id ?? change.appId);
      sendable.forEach((change, i) => outcomes.set(change, answered[i]));
    }
    return changes.map((change) => outcomes.get(change)!);
  }

  private async remove(pending: Pending[]): Promise<Outcome[]> {
    const ids = pending.map((p) => encodeURIComponent(p.id!)).join(',');
    const answer = await this.api.call('DELETE', `/composite/sobjects?ids=${ids}&allOrNone=false`);
    return this.outcomes(
      pending.map((p) => p.change),
      answer,
      (change) => change.appId,
    );
  }

  /**
   * The Ids of records ebb has no Id for, found by the external id field with SOQL. Each change maps
   * to its Id, or to its outcome: not found, ambiguous, or the query's failure.
   */
  private async lookup(changes: Change[], external: string | undefined): Promise<Map<Change, string | Outcome>> {
    const found = new Map<Change, string | Outcome>();
    if (!external) {
      for (const change of changes) {
        found.set(change, failed(change, 'not_found', `ebb knows no Salesforce Id for this record; set destination.external_id_field to find records by a field`));
      }
      return found;
    }
    const { object } = this.ctx.destination;
    const byValue = new Map<string, Change[]>();
    for (const change of changes) {
      const value = valueOf(change.record, external);
      if (value === undefined || value === null || value === '') {
        found.set(change, failed(change, 'not_found', `the record has no value for the external id field ${external}`));
        continue;
      }
      const key = String(value).toLowerCase();
      byValue.set(key, [...(byValue.get(key) ?? []), change]);
    }
    const values = [...byValue.keys()];
    for (let i = 0; i < values.length; i += LOOKUP_CHUNK) {
      const chunk = values.slice(i, i + LOOKUP_CHUNK);
      const soql = `SELECT Id, ${external} FROM ${object} WHERE ${external} IN (${chunk.map((v) => `'${soqlEscape(String(valueOf(byValue.get(v)![0].record, external)))}'`).join(', ')})`;
      const answer = await this.api.call('GET', `/query?q=${encodeURIComponent(soql)}`);
      const rows = 'status' in answer && answer.status === 200 ? (answer.json as { records?: Array<Record<string, unknown>> }).records : undefined;
      if (!rows) {
        const subjects = chunk.flatMap((v) => byValue.get(v)!);
        this.outcomes(subjects, answer, () => undefined).forEach((outcome, j) => found.set(subjects[j], outcome));
        continue;
      }
      const ids = new Map<string, string[]>();
      for (const row of rows) {
        const key = String(valueOf(row, external)).toLowerCase();
        ids.set(key, [...(ids.get(key) ?? []), String(row.Id)]);
      }
      for (const value of chunk) {
        const matches = ids.get(value) ?? [];
        for (const change of byValue.get(value)!) {
          if (matches.length === 1) found.set(change, matches[0]);
          else if (matches.length === 0) found.set(change, failed(change, 'not_found', `no ${object} has ${external} = ${String(valueOf(change.record, external))}`));
          else found.set(change, failed(change, 'rejected', `${matches.length} ${object} records have ${external} = ${String(valueOf(change.record, external))} (${matches.join(', ')}); make the field unique`));
        }
      }
    }
    return found;
  }

  /** Renders a collection request body from the templates; a template error is the batch's rejection. */
  private render(items: Array<{ id: string | null; record: Record<string, unknown> }>): { body: string } | { error: string } {
    const name = 'salesforce/records.json.njk';
    let body: string;
    try {
      body = this.ctx.templates.render(name, { object: this.ctx.destination.object, all_or_none: false, items });
    } catch (e) {
      return { error: `cannot render ${name}: ${errorText(e)}` };
    }
    try {
      JSON.parse(body);
    } catch (e) {
      return { error: `${name} rendered invalid JSON (${errorText(e)}); check the templates/salesforce/ overrides` };
    }
    return { body };
  }

  /** One outcome per change from a collection answer: its item, or the request's failure for all. */
  private outcomes(changes: Change[], answer: Answer, appIdOf: (change: Change, item: ResultItem) => string | null | undefined): Outcome[] {
    if ('failure' in answer) return changes.map((change) => failed(change, answer.kind, answer.failure));
    if (answer.status !== 200) return requestFailed(changes, answer);
    const items = answer.json;
    if (!Array.isArray(items) || items.length !== changes.length) {
      const found = Array.isArray(items) ? `${items.length} results` : 'no result list';
      return changes.map((change) => ({ ...failed(change, 'rejected', `${answer.what} answered 200 with ${found} for ${changes.length} records`), result: { status: 200, body: truncated(answer.text) } }));
    }
    return changes.map((change, i) => {
      const item = items[i] as ResultItem;
      const result = { status: answer.status, body: item };
      if (item.success) return { key: change.key, success: true, appId: appIdOf(change, item) ?? change.appId, result };
      return { ...itemFailed(change, item), result };
    });
  }
}

/** A record's own error in a collection answer, classified for the engine's retries. */
function itemFailed(change: Change, item: ResultItem): Outcome {
  const error = item.errors?.[0] ?? {};
  const code = error.statusCode ?? 'UNKNOWN';
  const fields = error.fields?.length ? ` (fields: ${error.fields.join(', ')})` : '';
  let message = `${code}: ${error.message ?? 'no message'}${fields}`;
  const removal = change.action === 'update' || change.action === 'clear' || change.action === 'delete';
  let kind: ErrorKind = 'rejected';
  let existingAppId: string | undefined;
  if (code === 'DUPLICATE_VALUE') {
    kind = 'conflict';
    // "duplicate value found: Email__c duplicates value on record with id: 0035g00000ABCDE"
    existingAppId = /record with id:\s*([a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?)\b/.exec(error.message ?? '')?.[1];
  } else if (code === 'DUPLICATES_DETECTED') {
    kind = 'conflict';
    const matches = (error.duplicateResult?.matchResults ?? []).flatMap((r) => (r.matchRecords ?? []).map((m) => ({ id: m.record?.Id, confidence: m.matchConfidence ?? 0, rule: r.rule })));
    matches.sort((a, b) => b.confidence - a.confidence);
    existingAppId = matches.find((m) => m.id)?.id;
    if (matches.length) message += `; matches ${matches.map((m) => `${m.id}${m.rule ? ` (${m.rule})` : ''}`).join(', ')}`;
  } else if (removal && (code === 'ENTITY_IS_DELETED' || (code === 'MALFORMED_ID' && (change.action === 'delete' || (error.fields ?? []).some((f) => f.toLowerCase() === 'id'))))) {
    kind = 'not_found';
  } else if (code === 'UNABLE_TO_LOCK_ROW' || code === 'ALL_OR_NONE_OPERATION_ROLLED_BACK' || code === 'SERVER_UNAVAILABLE') {
    // Another transaction held the record, or another record rolled this one back: sent again, it can succeed.
    kind = 'transient';
  } else if (code === 'REQUEST_LIMIT_EXCEEDED') {
    kind = 'rate_limited';
  }
  return { key: change.key, success: false, appId: change.appId, error: { kind, message, ...(existingAppId && { existingAppId }) } };
}

/** Error codes of a 400 that is about the request's shape, not one record: splitting the batch would not help. */
const structural = new Set(['INVALID_FIELD', 'INVALID_TYPE', 'EXCEEDED_ID_LIMIT', 'MALFORMED_QUERY', 'INVALID_QUERY_FILTER_OPERATOR', 'API_DISABLED_FOR_ORG', 'NOT_FOUND']);

/** A request that Salesforce answered with an error status: the same outcome for every change it carried. */
function requestFailed(changes: Change[], answer: Extract<Answer, { status: number }>): Outcome[] {
  const errors = Array.isArray(answer.json) ? (answer.json as Array<{ errorCode?: string; message?: string }>) : [];
  const code = errors[0]?.errorCode;
  let message = `${answer.what} answered ${answer.status}${errorSummary(answer)}`;
  const retryAfterMs = parseRetryAfter(answer.retryAfter);
  let kind: ErrorKind = 'rejected';
  let wholeBatch = false;
  if (code === 'REQUEST_LIMIT_EXCEEDED' || answer.status === 429) {
    kind = 'rate_limited';
    if (answer.limitInfo) message += ` (${answer.limitInfo})`;
  } else if (answer.status >= 500 || answer.status === 408) {
    kind = 'transient';
  } else if (answer.status === 401) {
    message += '; the session was refused: set a fresh access_token, or use the JWT bearer flow, which renews sessions';
  } else if (answer.status === 400 && changes.length > 1 && !structural.has(code ?? '')) {
    // A value of the wrong type fails the whole request: halving the batch finds the record.
    wholeBatch = true;
  }
  const result = { status: answer.status, body: answer.json ?? truncated(answer.text) };
  return changes.map((change) => ({
    key: change.key,
    success: false,
    appId: change.appId,
    result,
    error: { kind, message, ...(retryAfterMs !== undefined && kind !== 'rejected' && { retryAfterMs }), ...(wholeBatch && { wholeBatch }) },
  }));
}

/** `: CODE: message` of an error answer ([{errorCode, message}]), or a snippet of its body. */
function errorSummary(answer: { json: unknown; text: string }): string {
  const first = Array.isArray(answer.json) ? (answer.json[0] as { errorCode?: string; message?: string } | undefined) : undefined;
  if (first?.errorCode) return `: ${first.errorCode}: ${first.message ?? ''}`.trimEnd();
  return snippetSuffix(answer.text);
}

function failed(change: Change, kind: ErrorKind, message: string, wholeBatch = false): Outcome {
  return { key: change.key, success: false, appId: change.appId, error: { kind, message, ...(wholeBatch && { wholeBatch }) } };
}

/** A record's value of a field, whatever the case of its name (Salesforce field names are case-insensitive). */
function valueOf(record: Record<string, unknown>, field: string): unknown {
  if (field in record) return record[field];
  const lower = field.toLowerCase();
  const name = Object.keys(record).find((k) => k.toLowerCase() === lower);
  return name === undefined ? undefined : record[name];
}

/** A string literal's content in SOQL: backslash and quote are escaped with a backslash. */
export function soqlEscape(value: string): string {
  return value.replace(/[\\']/g, (c) => `\\${c}`).replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t');
}

/** An error's message on one line, less nunjucks' `Template render error: (unknown path)`. */
function errorText(e: unknown): string {
  return oneLine(e, /^Template render error: \(unknown path\)\s*/);
}
