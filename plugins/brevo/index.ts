/**
 * The `brevo` plugin: contacts through Brevo's (formerly Sendinblue) v3 API.
 *
 *   create  → POST /v3/contacts, with `updateEnabled` (true unless the strategy is create, so a
 *             contact that exists is updated rather than refused); or, with `batch_import`, whole
 *             batches through POST /v3/contacts/import (asynchronous: the plugin follows the
 *             process with GET /v3/processes/{id} until it is completed)
 *   update  → PUT /v3/contacts/{identifier}?identifierType=…
 *   clear   → the same PUT, with every mapped attribute set to null
 *   delete  → DELETE /v3/contacts/{identifier}?identifierType=…
 *
 * A contact is identified by its Brevo ID once ebb knows it (identifierType contact_id), else by
 * the destination's `identifier`: its email (email_id), its ext_id (ext_id) or its SMS attribute
 * (phone_id). Mapped fields named email, ext_id, emailBlacklisted and smsBlacklisted are the
 * contact's own fields; every other field is an attribute, its name in capitals as Brevo asks.
 *
 * Answers, as Brevo documents them (API reference "Create a contact", "Update a contact", "Delete
 * a contact", "Import contacts", "Get process", the error model, "Rate limits" and "Rate limit
 * headers"): 201 {id} for a created contact, 204 for an update (and for a create with
 * updateEnabled that found the contact); errors {code, message} with codes such as
 * invalid_parameter, missing_parameter, duplicate_parameter ("Unable to create contact, email is
 * already associated with another Contact", with metadata.duplicate_identifiers),
 * document_not_found ("Contact does not exist"), unauthorized, permission_denied,
 * not_enough_credits; 202 {processId} for an import; 429 with x-sib-ratelimit-limit, -remaining
 * and -reset (seconds until the window resets). The /v3/contacts endpoints allow 36,000 requests
 * an hour, 10 a second.
 *
 * Request bodies are nunjucks templates, `templates/brevo/*.json.njk`, which a project can
 * override from its own `templates/brevo/`. Every request goes through `ctx.schedule`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Action, Change, ErrorKind, Outcome, Plugin, Session, SessionContext } from '../plugin.ts';
import { errorText, parseRetryAfter, sendScheduled, snippet, type Answer } from '../shared/http.ts';
import { asError, rateLimitWaitMs, type BrevoError } from './request.ts';

/** The connection's config. */
export const brevoConfigSchema = z.strictObject({
  /** An API key (SMTP & API → API keys), sent as the `api-key` header. */
  api_key: z.string().min(1, "give the API key, e.g. \"{{ env_var('BREVO_API_KEY') }}\""),
  /** Where the API lives, with its version; a test server can stand in. */
  base_url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).default('https://api.brevo.com/v3'),
  timeout_ms: z.number().int().positive().default(30_000),
});
export type BrevoConfig = z.infer<typeof brevoConfigSchema>;

/** How a contact is found when ebb does not know its Brevo ID yet. */
export const brevoIdentifiers = ['email', 'ext_id', 'sms'] as const;
export type BrevoIdentifier = (typeof brevoIdentifiers)[number];

/** The `identifierType` of each identifier, and the mapped field that holds it. */
const identifierTypes: Record<BrevoIdentifier, string> = { email: 'email_id', ext_id: 'ext_id', sms: 'phone_id' };
const identifierFields: Record<BrevoIdentifier, string> = { email: 'email', ext_id: 'ext_id', sms: 'SMS' };

/** A sync's destination. */
export const brevoDestinationSchema = z
  .looseObject({
    object: z.literal('contacts', { error: 'must be contacts' }),
    /** The field that identifies a contact: email (default), ext_id, or sms (the SMS attribute). */
    identifier: z.enum(brevoIdentifiers, { error: `must be one of ${brevoIdentifiers.join(', ')}` }).default('email'),
    /** Lists the contacts are added to (`listIds`), on create and update. */
    list_ids: z.array(z.number().int().positive()).optional(),
    /** Whether a create updates a contact that exists (`updateEnabled`). Default: true, except under the create strategy. */
    update_enabled: z.boolean().optional(),
    /** Creates go in batches through the contact import (POST /v3/contacts/import), into `list_ids`. */
    batch_import: z.boolean().default(false),
    /** How long to follow an import process until it is completed; 0 does not wait. */
    import_wait_seconds: z.number().min(0).default(600),
    /** The first wait between two looks at an import process; it doubles up to 30 s. */
    import_poll_seconds: z.number().positive().default(2),
  })
  .refine((d) => !d.batch_import || (d.list_ids?.length ?? 0) > 0, {
    message: 'batch_import needs list_ids: Brevo imports contacts into lists (listIds)',
    path: ['list_ids'],
  });
export type BrevoDestination = z.infer<typeof brevoDestinationSchema>;

type Context = SessionContext<BrevoConfig, BrevoDestination>;

/** Brevo's advice for an import body: "a safe limit of around 8 MB" (10 MB at most). */
const IMPORT_BODY_LIMIT = 8 * 1024 * 1024;

/** The contact's own fields; every other mapped field is an attribute. */
const contactFields = new Set(['email', 'ext_id', 'emailBlacklisted', 'smsBlacklisted']);

const plugin: Plugin<BrevoConfig, BrevoDestination> = {
  name: 'brevo',
  configSchema: brevoConfigSchema,
  destinationSchema: brevoDestinationSchema,
  capabilities: {
    strategies: ['create', 'update', 'upsert', 'mirror'],
    // Brevo holds one contact per email, SMS number and ext_id: a create sent twice updates the
    // contact (updateEnabled, or the import's updateExistingContacts) or is refused as a
    // duplicate, which the plugin answers with the existing contact's ID.
    idempotentCreate: true,
  },

  async check(ctx) {
    // GET /v3/account: the cheapest documented call that needs a valid key.
    const answer = await sendScheduled(ctx, `${baseOf(ctx.config)}/account`, { headers: headers(ctx.config) }, ctx.config.timeout_ms);
    if ('failure' in answer) throw new Error(`cannot reach Brevo at ${ctx.config.base_url}: ${answer.failure}`);
    if (answer.status >= 200 && answer.status < 300) return;
    const what = describe(asError(answer.body)) || snippet(answer.text);
    if (answer.status === 401) throw new Error(`Brevo refused the API key (401 ${what}); check api_key`);
    throw new Error(`Brevo answered ${answer.status} to GET /account: ${what}`);
  },

  async open(ctx) {
    const field = identifierFields[ctx.destination.identifier];
    if (!ctx.fields.some((f) => f === field || (ctx.destination.identifier === 'sms' && f.toUpperCase() === 'SMS'))) {
      throw new Error(
        `sync ${ctx.sync}: Brevo identifies contacts by ${ctx.destination.identifier} here, but the mapping has no ${field} field; ` +
          `map ${field}, or set destination.identifier to email, ext_id or sms`,
      );
    }
    return new BrevoSession(ctx);
  },
};

export default plugin;

/** How a request addresses one contact: `/contacts/{identifier}?identifierType={type}`. */
interface Target {
  identifier: string;
  type: string;
}

class BrevoSession implements Session {
  private readonly updateEnabled: boolean;

  constructor(private readonly ctx: Context) {
    this.updateEnabled = ctx.destination.update_enabled ?? ctx.strategy !== 'create';
  }

  async apply(changes: Change[]): Promise<Outcome[]> {
    const groups = new Map<Action, Change[]>();
    for (const change of changes) groups.set(change.action, [...(groups.get(change.action) ?? []), change]);
    const outcomes = new Map<Change, Outcome>();
    for (const [action, group] of groups) {
      const answers =
        action === 'create' && this.ctx.destination.batch_import ? await this.importContacts(group) : await Promise.all(group.map((change) => this.applyOne(action, change)));
      group.forEach((change, i) => outcomes.set(change, answers[i]));
    }
    return changes.map((c) => outcomes.get(c)!);
  }

  async close(): Promise<void> {}

  private applyOne(action: Action, change: Change): Promise<Outcome> {
    switch (action) {
      case 'create':
        return this.create(change);
      case 'update':
      case 'clear':
        return this.update(change, action === 'clear');
      case 'delete':
        return this.remove(change);
      default:
        return Promise.resolve(failure(change, 'rejected', `the brevo plugin does not ${action} records; use create, update, upsert or mirror`));
    }
  }

  /** POST /contacts: 201 {id} for a new contact; 204 when updateEnabled found one (its ID is then looked up). */
  private async create(change: Change): Promise<Outcome> {
    const value = this.identifierValue(change.record);
    if (value === undefined) return failure(change, 'rejected', this.noIdentifier());
    const body = this.render(change, 'brevo/create_contact.json.njk', {
      contact: contactOf(change.record, 'create'),
      list_ids: this.ctx.destination.list_ids ?? [],
      update_enabled: this.updateEnabled,
    });
    if (typeof body !== 'string') return body;
    const answer = await this.request('POST', '/contacts', body);
    const what = 'POST /contacts';
    if (!('failure' in answer) && answer.status === 201) {
      const id = (answer.body as { id?: unknown } | null)?.id;
      return { key: change.key, success: true, appId: id === undefined ? this.fallbackAppId(value) : String(id), result: { status: 201, id } };
    }
    if (!('failure' in answer) && answer.status === 204) {
      // updateEnabled: the contact existed and was updated; Brevo does not say its ID.
      const id = await this.lookup({ identifier: value, type: identifierTypes[this.ctx.destination.identifier] });
      return { key: change.key, success: true, appId: id ?? this.fallbackAppId(value), result: { status: 204, updated: true } };
    }
    const outcome = errorOutcome(change, answer, what, 'create');
    if (outcome.error?.kind === 'conflict') {
      // duplicate_parameter: the contact exists, and Brevo does not say its ID; look it up by what it named.
      const target = this.duplicateTarget(change.record, asError((answer as { body: unknown }).body));
      const existing = target && (await this.lookup(target));
      if (existing) outcome.error.existingAppId = existing;
    }
    return outcome;
  }

  /** PUT /contacts/{identifier}: 204; 404 document_not_found is not_found. */
  private async update(change: Change, clear: boolean): Promise<Outcome> {
    const target = this.targetOf(change, !clear);
    if (!target) return failure(change, 'rejected', clear ? "ebb does not know this contact's Brevo ID, so it cannot clear it" : this.noIdentifier());
    const body = this.render(change, 'brevo/update_contact.json.njk', {
      contact: contactOf(change.record, clear ? 'clear' : 'update', this.ctx.destination.identifier),
      list_ids: clear ? [] : (this.ctx.destination.list_ids ?? []),
      app_id: change.appId ?? null,
    });
    if (typeof body !== 'string') return body;
    const answer = await this.request('PUT', pathOf(target), body);
    if (!('failure' in answer) && answer.status >= 200 && answer.status < 300) {
      return { key: change.key, success: true, appId: this.appIdAfterUpdate(change, clear), result: { status: answer.status } };
    }
    return errorOutcome(change, answer, `PUT ${pathOf(target)}`, clear ? 'clear' : 'update');
  }

  /** DELETE /contacts/{identifier}: 204; a 404 is not_found, which the engine counts as done. */
  private async remove(change: Change): Promise<Outcome> {
    const target = this.targetOf(change, true);
    if (!target) return failure(change, 'rejected', this.noIdentifier());
    const answer = await this.request('DELETE', pathOf(target));
    if (!('failure' in answer) && answer.status >= 200 && answer.status < 300) {
      return { key: change.key, success: true, appId: change.appId, result: { status: answer.status } };
    }
    return errorOutcome(change, answer, `DELETE ${pathOf(target)}`, 'delete');
  }

  /**
   * Creates through the contact import: one POST /contacts/import per 8 MB of contacts, each
   * followed with GET /processes/{id} until Brevo says it is completed. Brevo reports a contact
   * it could not import only in the import's report (by email or at notifyUrl), not in the API.
   */
  private async importContacts(changes: Change[]): Promise<Outcome[]> {
    const outcomes = new Map<Change, Outcome>();
    const chunks: Change[][] = [[]];
    let size = 0;
    for (const change of changes) {
      if (this.identifierValue(change.record) === undefined) {
        outcomes.set(change, failure(change, 'rejected', this.noIdentifier()));
        continue;
      }
      const bytes = JSON.stringify(change.record).length + 64;
      if (size + bytes > IMPORT_BODY_LIMIT && chunks.at(-1)!.length > 0) {
        chunks.push([]);
        size = 0;
      }
      chunks.at(-1)!.push(change);
      size += bytes;
    }
    for (const chunk of chunks.filter((c) => c.length > 0)) {
      const answers = await this.importChunk(chunk);
      chunk.forEach((change, i) => outcomes.set(change, answers[i]));
    }
    return changes.map((c) => outcomes.get(c)!);
  }

  private async importChunk(changes: Change[]): Promise<Outcome[]> {
    const template = 'brevo/import_contacts.json.njk';
    let body: string;
    try {
      body = this.ctx.templates.render(template, {
        contacts: changes.map((c) => contactOf(c.record, 'import')),
        changes: changes.map((c) => ({ key: c.key, record: c.record })),
        list_ids: this.ctx.destination.list_ids ?? [],
        update_existing_contacts: this.updateEnabled,
      });
    } catch (e) {
      const message = `cannot render ${template}: ${cleanTemplateError(e)}`;
      return changes.map((c) => ({ key: c.key, success: false, appId: c.appId, error: { kind: 'rejected', message, ...(changes.length > 1 && { wholeBatch: true }) } }));
    }
    const what = `POST /contacts/import${changes.length > 1 ? ` (a batch of ${changes.length})` : ''}`;
    const answer = await this.request('POST', '/contacts/import', body);
    if ('failure' in answer || answer.status < 200 || answer.status >= 300) {
      return changes.map((c) => {
        const outcome = errorOutcome(c, answer, what, 'create');
        // A body refused as a whole (400) may hold one bad contact: the engine splits the batch.
        if (changes.length > 1 && outcome.error?.kind === 'rejected' && !('failure' in answer) && answer.status === 400) outcome.error.wholeBatch = true;
        return outcome;
      });
    }
    const processId = (answer.body as { processId?: unknown } | null)?.processId;
    const done = await this.followProcess(processId);
    return changes.map((c) => {
      const appId = this.fallbackAppId(this.identifierValue(c.record)!);
      if (done.ok) return { key: c.key, success: true, appId, result: { status: answer.status, processId, processStatus: done.status } };
      return { key: c.key, success: false, appId: c.appId, result: { status: answer.status, processId, processStatus: done.status }, error: { kind: 'transient', message: `${what}: ${done.message}` } };
    });
  }

  /** Looks at an import process until it is completed, or until import_wait_seconds have passed. */
  private async followProcess(processId: unknown): Promise<{ ok: boolean; status?: string; message?: string }> {
    const waitMs = this.ctx.destination.import_wait_seconds * 1000;
    if (waitMs === 0 || processId === undefined || processId === null) return { ok: true, status: 'queued' };
    const deadline = Date.now() + waitMs;
    let delay = this.ctx.destination.import_poll_seconds * 1000;
    let status: string | undefined;
    while (Date.now() < deadline) {
      await sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
      delay = Math.min(delay * 2, 30_000);
      const answer = await this.request('GET', `/processes/${encodeURIComponent(String(processId))}`);
      if ('failure' in answer || answer.status >= 500 || answer.status === 429) continue;
      if (answer.status < 200 || answer.status >= 300) {
        return { ok: false, message: `GET /processes/${String(processId)} answered ${answer.status}: ${describe(asError(answer.body)) || snippet(answer.text)}` };
      }
      status = String((answer.body as { status?: unknown } | null)?.status ?? '');
      if (status === 'completed') return { ok: true, status };
    }
    return { ok: false, status, message: `import process ${String(processId)} was not completed within ${this.ctx.destination.import_wait_seconds} s (last status: ${status ?? 'unknown'})` };
  }

  /** GET /contacts/{identifier}: the contact's ID, or undefined. */
  private async lookup(target: Target): Promise<string | undefined> {
    const answer = await this.request('GET', pathOf(target));
    if ('failure' in answer || answer.status !== 200) return undefined;
    const id = (answer.body as { id?: unknown } | null)?.id;
    return id === undefined || id === null ? undefined : String(id);
  }

  /** How to address a contact: its Brevo ID (or the identifier ebb stored), else the record's identifier. */
  private targetOf(change: Change, fromRecord: boolean): Target | undefined {
    if (change.appId) return parseAppId(change.appId);
    const value = fromRecord ? this.identifierValue(change.record) : undefined;
    return value === undefined ? undefined : { identifier: value, type: identifierTypes[this.ctx.destination.identifier] };
  }

  /** The contact a duplicate_parameter names: by the identifier Brevo lists, with the record's value. */
  private duplicateTarget(record: Record<string, unknown>, error: BrevoError): Target | undefined {
    const named = error.metadata?.duplicate_identifiers?.[0]?.toLowerCase();
    const identifier: BrevoIdentifier = named === 'email' ? 'email' : named === 'ext_id' ? 'ext_id' : named === 'sms' ? 'sms' : this.ctx.destination.identifier;
    const value = valueOf(record, identifier);
    return value === undefined ? undefined : { identifier: value, type: identifierTypes[identifier] };
  }

  /** After an update: the ID ebb knows; an email it stored follows the contact's new email. */
  private appIdAfterUpdate(change: Change, clear: boolean): string | null | undefined {
    const email = clear ? undefined : valueOf(change.record, 'email');
    if (!change.appId) return email !== undefined && this.ctx.destination.identifier === 'email' ? email.toLowerCase() : change.appId;
    return parseAppId(change.appId).type === 'email_id' && email !== undefined ? email.toLowerCase() : change.appId;
  }

  /**
   * When Brevo does not say a contact's ID (an import), ebb keeps an identifier that addresses it:
   * its email, or `ext_id:<value>` / `phone_id:<value>`.
   */
  private fallbackAppId(value: string): string {
    const { identifier } = this.ctx.destination;
    return identifier === 'email' ? value.toLowerCase() : `${identifierTypes[identifier]}:${value}`;
  }

  private identifierValue(record: Record<string, unknown>): string | undefined {
    return valueOf(record, this.ctx.destination.identifier);
  }

  private noIdentifier(): string {
    const field = identifierFields[this.ctx.destination.identifier];
    return `the record has no ${field}, which identifies Brevo contacts here (destination.identifier: ${this.ctx.destination.identifier})`;
  }

  /** Renders a request body; a template error rejects the record. */
  private render(change: Change, template: string, context: Record<string, unknown>): string | Outcome {
    try {
      return this.ctx.templates.render(template, { record: change.record, key: change.key, action: change.action, ...context });
    } catch (e) {
      return failure(change, 'rejected', `cannot render ${template}: ${cleanTemplateError(e)}`);
    }
  }

  private request(method: string, path: string, body?: string): Promise<Answer> {
    const url = `${baseOf(this.ctx.config)}${path}`;
    return sendScheduled(this.ctx, url, { method, headers: headers(this.ctx.config), body }, this.ctx.config.timeout_ms);
  }
}

function baseOf(config: BrevoConfig): string {
  return config.base_url.replace(/\/+$/, '');
}

function headers(config: BrevoConfig): Record<string, string> {
  return { 'api-key': config.api_key, 'content-type': 'application/json', accept: 'application/json' };
}

function pathOf(target: Target): string {
  return `/contacts/${encodeURIComponent(target.identifier)}?identifierType=${target.type}`;
}

/** An ID ebb stored: a Brevo contact ID (digits), an email, or `ext_id:` / `phone_id:` and a value. */
export function parseAppId(appId: string): Target {
  const prefixed = /^(ext_id|phone_id):(.*)$/s.exec(appId);
  if (prefixed) return { identifier: prefixed[2], type: prefixed[1] };
  if (/^\d+$/.test(appId)) return { identifier: appId, type: 'contact_id' };
  return { identifier: appId, type: appId.includes('@') ? 'email_id' : 'contact_id' };
}

/** The value of an identifier in a record; the SMS attribute may be mapped as sms or SMS. */
function valueOf(record: Record<string, unknown>, identifier: BrevoIdentifier): string | undefined {
  const field = identifierFields[identifier];
  const key = identifier === 'sms' ? Object.keys(record).find((k) => k.toUpperCase() === 'SMS') : field;
  const value = key === undefined ? undefined : record[key];
  if (value === null || value === undefined) return undefined;
  const text = String(value).trim();
  return text === '' ? undefined : text;
}

/** A Brevo contact body, without the lists: `{email?, ext_id?, emailBlacklisted?, smsBlacklisted?, attributes}`. */
export interface BrevoContact {
  email?: string;
  ext_id?: string;
  emailBlacklisted?: boolean;
  smsBlacklisted?: boolean;
  attributes: Record<string, unknown>;
}

/**
 * A record as a Brevo contact. In a create, null values are left out. In an update, the email goes
 * in the EMAIL attribute (PUT changes a contact's email that way) and null clears an attribute. A
 * clear sets every attribute to null and leaves the identifiers alone. An import row carries every
 * attribute, null as "" (the import erases attributes given empty, `emptyContactsAttributes`).
 */
export function contactOf(record: Record<string, unknown>, mode: 'create' | 'update' | 'clear' | 'import', identifier: BrevoIdentifier = 'email'): BrevoContact {
  const contact: BrevoContact = { attributes: {} };
  for (const [name, value] of Object.entries(record)) {
    const empty = value === null || value === undefined;
    if (contactFields.has(name)) {
      if (mode === 'clear' || empty) continue;
      if (name === 'email') {
        if (mode === 'update') contact.attributes.EMAIL = String(value);
        else contact.email = String(value);
      } else if (name === 'ext_id') contact.ext_id = String(value);
      else if (typeof value === 'boolean') contact[name as 'emailBlacklisted' | 'smsBlacklisted'] = value;
      continue;
    }
    const attribute = name.toUpperCase();
    if (mode === 'clear' && identifier === 'sms' && attribute === 'SMS') continue;
    if (empty) {
      if (mode === 'create') continue;
      contact.attributes[attribute] = mode === 'import' ? '' : null;
    } else contact.attributes[attribute] = mode === 'clear' ? null : value;
  }
  return contact;
}

/** The outcome of an answer other than 2xx (or of no answer at all). */
function errorOutcome(change: Change, answer: Answer, what: string, action: Action): Outcome {
  if ('failure' in answer) return failure(change, answer.kind, `${what} failed: ${answer.failure}`);
  const error = asError(answer.body);
  const kind = classify(answer.status, error.code, action);
  const retryAfterMs = kind === 'rate_limited' ? rateLimitWaitMs(answer.headers) : kind === 'transient' ? parseRetryAfter(answer.headers.get('retry-after')) : undefined;
  const detail = describe(error) || snippet(answer.text);
  return {
    key: change.key,
    success: false,
    appId: change.appId,
    result: { status: answer.status, ...(Object.keys(error).length > 0 ? { error } : answer.text && { body: snippet(answer.text, 2000) }) },
    error: { kind, message: `${what} answered ${answer.status}${detail ? `: ${detail}` : ''}`, ...(retryAfterMs !== undefined && { retryAfterMs }) },
  };
}

/** Brevo's answers, as what the engine does with them. */
function classify(status: number, code: string | undefined, action: Action): ErrorKind {
  if (status === 429) return 'rate_limited';
  if (status >= 500 || status === 408) return 'transient';
  if ((status === 404 || code === 'document_not_found') && action !== 'create') return 'not_found';
  if (code === 'duplicate_parameter' && action === 'create') return 'conflict';
  return 'rejected';
}

function failure(change: Change, kind: ErrorKind, message: string): Outcome {
  return { key: change.key, success: false, appId: change.appId, error: { kind, message } };
}

function describe(error: BrevoError): string {
  return [error.code, error.message].filter(Boolean).join(': ');
}

function cleanTemplateError(e: unknown): string {
  return errorText(e).replace(/^(Template render error: )?\([^)]*\)\s*/, '');
}
