/**
 * A HubSpot CRM v3 contract server on 127.0.0.1, built from HubSpot's published documentation:
 * "Using object APIs" (batch endpoints, 100 inputs per request, upsert by idProperty with email or
 * a unique property, batch/archive, multi-status errors keyed by objectWriteTraceId), "Error
 * handling" (the error body {status, message, correlationId, category, errors, context}; 207
 * Multi-Status; 423 Locked), "API usage guidelines" (the X-HubSpot-RateLimit-* headers, 429 with
 * policyName) and the contacts guide (email is the unique identifier of a contact; a duplicate
 * answers CONFLICT "Contact already exists. Existing ID: <id>").
 *
 *   GET  /crm/v3/objects/{object}?limit=N       200 {results, paging?}
 *   POST /crm/v3/objects/{object}/batch/create  201 | 207 with errors (inputs carry objectWriteTraceId)
 *                                               | 409 CONFLICT / 400 VALIDATION_ERROR for the whole batch (they do not)
 *   POST /crm/v3/objects/{object}/batch/upsert  200 | 207 (custom unique property) | 400 whole batch (email:
 *                                               "partial upserts are not supported when using email")
 *   POST /crm/v3/objects/{object}/batch/update  200 | 207 (OBJECT_NOT_FOUND with context.ids, other errors per input)
 *   POST /crm/v3/objects/{object}/batch/archive 204
 *   POST /crm/v3/objects/{object}/batch/read    200 | 207 (OBJECT_NOT_FOUND with context.ids)
 *
 * Every request needs `authorization: Bearer <token>` (401 INVALID_AUTHENTICATION otherwise) and is
 * logged. Faults: a 429 with HubSpot's real answer, any status once, emails the app refuses.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';

export type HubSpotObjectName = 'contacts' | 'companies';
type Properties = Record<string, string>;

/** A record as HubSpot keeps it. */
export interface HubSpotRecord {
  id: string;
  properties: Properties;
  createdAt: string;
  updatedAt: string;
}

/** A request as the server saw it. */
export interface HubSpotRequest {
  at: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
  status?: number;
}

export interface HubSpotServerOptions {
  /** The private app token the server accepts. */
  token?: string;
  /** Custom properties with unique values ("hasUniqueValue"), per object; email is unique for contacts. */
  uniqueProperties?: Partial<Record<HubSpotObjectName, string[]>>;
}

/** An answer given once, to the next request whose `METHOD path` matches. */
interface OneShot {
  match?: RegExp;
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

const objectTypeIds: Record<HubSpotObjectName, string> = { contacts: '0-1', companies: '0-2' };
const singular: Record<HubSpotObjectName, string> = { contacts: 'Contact', companies: 'Company' };
export const HUBSPOT_MAX_INPUTS = 100;

interface Input {
  id?: unknown;
  idProperty?: unknown;
  properties?: unknown;
  objectWriteTraceId?: unknown;
}

/** A per-input error, as a multi-status answer lists it. */
interface InputError {
  status: 'error';
  category: string;
  message: string;
  context: Record<string, string[]>;
  errors?: Array<Record<string, unknown>>;
}

export class HubSpotServer {
  readonly requests: HubSpotRequest[] = [];
  url = '';
  readonly token: string;
  private readonly stores: Record<HubSpotObjectName, Map<string, HubSpotRecord>> = { contacts: new Map(), companies: new Map() };
  private readonly unique: Record<HubSpotObjectName, string[]>;
  private readonly refused = new Set<string>();
  private readonly oneShots: OneShot[] = [];
  private nextId = 1001;
  private readonly server = createServer((req, res) => {
    this.handle(req, res).catch((e: unknown) => reply(res, 500, { status: 'error', message: String(e), category: 'INTERNAL_ERROR' }));
  });

  private constructor(options: HubSpotServerOptions) {
    this.token = options.token ?? 'pat-na1-test-token';
    this.unique = { contacts: ['email', ...(options.uniqueProperties?.contacts ?? [])], companies: options.uniqueProperties?.companies ?? [] };
  }

  static async start(options: HubSpotServerOptions = {}): Promise<HubSpotServer> {
    const s = new HubSpotServer(options);
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    s.url = `http://127.0.0.1:${(s.server.address() as AddressInfo).port}`;
    return s;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // --- Test controls -------------------------------------------------------------------------

  /** The records of an object, in creation order. */
  records(object: HubSpotObjectName = 'contacts'): HubSpotRecord[] {
    return [...this.stores[object].values()];
  }

  /** Puts a record into HubSpot behind ebb's back; returns its ID. */
  insert(object: HubSpotObjectName, properties: Record<string, unknown>): string {
    const record = this.newRecord(properties);
    this.stores[object].set(record.id, record);
    return record.id;
  }

  /** The ID of the record whose property has this value. */
  idOf(object: HubSpotObjectName, property: string, value: string): string | undefined {
    return this.find(object, property, value)?.id;
  }

  /** The next request (matching `match`, if given) answers 429 with HubSpot's SECONDLY limit answer. */
  rateLimitOnce(options: { policy?: 'SECONDLY' | 'TEN_SECONDLY_ROLLING'; match?: RegExp; retryAfterSeconds?: number } = {}): void {
    const policy = options.policy ?? 'SECONDLY';
    const headers: Record<string, string> = {
      ...this.rateHeaders(),
      'x-hubspot-ratelimit-remaining': '0',
      'x-hubspot-ratelimit-secondly-remaining': '0',
    };
    if (options.retryAfterSeconds !== undefined) headers['retry-after'] = String(options.retryAfterSeconds);
    const word = policy === 'SECONDLY' ? 'secondly' : 'ten_secondly_rolling';
    this.oneShots.push({
      match: options.match,
      status: 429,
      headers,
      body: {
        status: 'error',
        message: `You have reached your ${word} limit.`,
        errorType: 'RATE_LIMIT',
        correlationId: randomUUID(),
        policyName: policy,
        groupName: `publicapi:private-app-api-calls-${policy === 'SECONDLY' ? 'secondly' : 'ten-secondly'}:123456`,
      },
    });
  }

  /** The next request (matching `match`) gets this answer, e.g. a 502 or a 423 Locked. */
  answerOnce(status: number, body?: unknown, options: { match?: RegExp; headers?: Record<string, string> } = {}): void {
    this.oneShots.push({ status, body, match: options.match, headers: options.headers });
  }

  /** HubSpot refuses this email as invalid (INVALID_EMAIL), wherever it is written. */
  rejectEmail(email: string): void {
    this.refused.add(email.toLowerCase());
  }

  /** Stops refusing emails and drops pending one-shot answers. */
  clear(): void {
    this.refused.clear();
    this.oneShots.length = 0;
  }

  /** The requests whose `METHOD path` matches. */
  requestsTo(match: RegExp): HubSpotRequest[] {
    return this.requests.filter((r) => match.test(`${r.method} ${r.path}`));
  }

  // --- HTTP ----------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://localhost');
    let body: unknown = null;
    let malformed = false;
    try {
      body = text ? (JSON.parse(text) as unknown) : null;
    } catch {
      malformed = true;
    }
    const seen: HubSpotRequest = { at: Date.now(), method, path: url.pathname + url.search, headers: req.headers, body: malformed ? text : body };
    this.requests.push(seen);
    const answer = (status: number, payload?: unknown, headers: Record<string, string> = {}) => {
      seen.status = status;
      reply(res, status, payload, { ...this.rateHeaders(), ...headers });
    };

    if (req.headers.authorization !== `Bearer ${this.token}`) {
      return answer(401, {
        status: 'error',
        message: 'Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview',
        correlationId: randomUUID(),
        category: 'INVALID_AUTHENTICATION',
      });
    }
    const shot = this.oneShots.findIndex((s) => !s.match || s.match.test(`${method} ${seen.path}`));
    if (shot !== -1) {
      const [s] = this.oneShots.splice(shot, 1);
      seen.status = s.status;
      reply(res, s.status, s.body, { ...this.rateHeaders(), ...s.headers });
      return;
    }
    if (malformed) return answer(400, { status: 'error', message: 'Invalid input JSON on line 1', correlationId: randomUUID(), category: 'VALIDATION_ERROR' });

    const route = /^\/crm\/v3\/objects\/([^/]+)(?:\/batch\/(create|upsert|update|archive|read))?$/.exec(url.pathname);
    const object = route?.[1] as HubSpotObjectName | undefined;
    if (!route || !object || !(object in this.stores)) return answer(404, { status: 'error', message: `Unable to infer object type from: ${route?.[1] ?? url.pathname}`, correlationId: randomUUID(), category: 'OBJECT_NOT_FOUND' });
    const endpoint = route[2];
    if (!endpoint) {
      if (method !== 'GET') return answer(405, { status: 'error', message: `${method} not allowed`, category: 'VALIDATION_ERROR' });
      const limit = Math.min(Number(url.searchParams.get('limit') ?? 10) || 10, 100);
      return answer(200, { results: this.records(object).slice(0, limit).map((r) => this.view(r)) });
    }
    if (method !== 'POST') return answer(405, { status: 'error', message: `${method} not allowed`, category: 'VALIDATION_ERROR' });
    const inputs = (body as { inputs?: unknown } | null)?.inputs;
    if (!Array.isArray(inputs)) return answer(400, { status: 'error', message: 'Invalid input JSON: inputs is required', correlationId: randomUUID(), category: 'VALIDATION_ERROR' });
    if (inputs.length > HUBSPOT_MAX_INPUTS) {
      return answer(400, {
        status: 'error',
        message: `Batch input must contain at most ${HUBSPOT_MAX_INPUTS} inputs (got ${inputs.length})`,
        correlationId: randomUUID(),
        category: 'VALIDATION_ERROR',
      });
    }
    const list = inputs as Input[];
    const [status, payload] =
      endpoint === 'create'
        ? this.create(object, list)
        : endpoint === 'upsert'
          ? this.upsert(object, list)
          : endpoint === 'update'
            ? this.update(object, list)
            : endpoint === 'archive'
              ? this.archive(object, list)
              : this.read(object, list, body as Record<string, unknown>);
    return answer(status, payload);
  }

  private rateHeaders(): Record<string, string> {
    return {
      'x-hubspot-ratelimit-daily': '1000000',
      'x-hubspot-ratelimit-daily-remaining': '999000',
      'x-hubspot-ratelimit-interval-milliseconds': '10000',
      'x-hubspot-ratelimit-max': '190',
      'x-hubspot-ratelimit-remaining': '189',
      'x-hubspot-ratelimit-secondly': '19',
      'x-hubspot-ratelimit-secondly-remaining': '18',
    };
  }

  // --- Endpoints -----------------------------------------------------------------------------

  private create(object: HubSpotObjectName, inputs: Input[]): [number, unknown] {
    const multiStatus = inputs.length > 0 && inputs.every((i) => typeof i.objectWriteTraceId === 'string' && i.objectWriteTraceId !== '');
    const results: unknown[] = [];
    const errors: InputError[] = [];
    const claimed = new Map<string, string>();
    const planned: Array<{ input: Input; properties: Properties }> = [];
    for (const input of inputs) {
      const properties = strings(input.properties);
      const trace = multiStatus ? [String(input.objectWriteTraceId)] : [];
      const problem = this.validate(object, properties, undefined, claimed);
      if (problem) {
        if (!multiStatus) return problem.status === 409 ? [409, wholeError(problem.error)] : [400, wholeError(problem.error)];
        errors.push({ ...problem.error, context: { ...problem.error.context, objectWriteTraceId: trace } });
        continue;
      }
      for (const name of this.unique[object]) if (properties[name]) claimed.set(`${name}=${norm(name, properties[name])}`, 'pending');
      planned.push({ input, properties });
    }
    for (const { input, properties } of planned) {
      const record = this.newRecord(properties);
      this.stores[object].set(record.id, record);
      results.push({ ...this.view(record), ...(multiStatus && { objectWriteTraceId: input.objectWriteTraceId }) });
    }
    return [errors.length ? 207 : 201, batchAnswer(results, errors)];
  }

  private upsert(object: HubSpotObjectName, inputs: Input[]): [number, unknown] {
    const results: unknown[] = [];
    const errors: InputError[] = [];
    const writes: Array<() => void> = [];
    const byEmail = inputs.some((i) => i.idProperty === 'email');
    for (const input of inputs) {
      const idProperty = typeof input.idProperty === 'string' ? input.idProperty : '';
      if (!this.unique[object].includes(idProperty)) {
        return [400, wholeError({ status: 'error', category: 'VALIDATION_ERROR', message: `Unable to perform update/upsert by non-unique ${objectTypeIds[object]} property`, context: {} })];
      }
      const value = input.id === undefined || input.id === null ? '' : String(input.id);
      const properties = { ...strings(input.properties), [idProperty]: value };
      const existing = this.find(object, idProperty, value);
      const problem = value ? this.validate(object, properties, existing?.id) : { status: 400, error: inputError('VALIDATION_ERROR', `Missing value for ${idProperty}`) };
      if (problem) {
        // "Partial upserts are not supported when using email as the idProperty": one bad input fails the batch.
        if (byEmail) return [400, wholeError(problem.error)];
        errors.push({ ...problem.error, context: { ...problem.error.context, objectWriteTraceId: traceOf(input) } });
        continue;
      }
      writes.push(() => {
        const record = this.find(object, idProperty, value);
        const now = new Date().toISOString();
        if (record) {
          Object.assign(record.properties, properties);
          record.updatedAt = now;
          results.push({ ...this.view(record), new: false, ...traceField(input) });
        } else {
          const created = this.newRecord(properties);
          this.stores[object].set(created.id, created);
          results.push({ ...this.view(created), new: true, ...traceField(input) });
        }
      });
    }
    for (const write of writes) write();
    return [errors.length ? 207 : 200, batchAnswer(results, errors)];
  }

  private update(object: HubSpotObjectName, inputs: Input[]): [number, unknown] {
    const results: unknown[] = [];
    const errors: InputError[] = [];
    const missing: string[] = [];
    const missingTraces: string[] = [];
    for (const input of inputs) {
      const idProperty = typeof input.idProperty === 'string' ? input.idProperty : undefined;
      if (idProperty && !this.unique[object].includes(idProperty)) {
        return [400, wholeError({ status: 'error', category: 'VALIDATION_ERROR', message: `Unable to perform update/upsert by non-unique ${objectTypeIds[object]} property`, context: {} })];
      }
      const id = String(input.id ?? '');
      const record = idProperty ? this.find(object, idProperty, id) : this.stores[object].get(id);
      if (!record) {
        missing.push(id);
        missingTraces.push(...traceOf(input));
        continue;
      }
      const properties = strings(input.properties);
      const problem = this.validate(object, { ...record.properties, ...properties }, record.id);
      if (problem) {
        errors.push({ ...problem.error, context: { ...problem.error.context, objectWriteTraceId: traceOf(input) } });
        continue;
      }
      Object.assign(record.properties, properties);
      record.updatedAt = new Date().toISOString();
      results.push({ ...this.view(record), ...traceField(input) });
    }
    if (missing.length) {
      errors.unshift({
        status: 'error',
        category: 'OBJECT_NOT_FOUND',
        message: `Could not get some ${singular[object].toUpperCase()} objects, they may be deleted or not exist. Check that ids are valid.`,
        context: { ids: missing, ...(missingTraces.length && { objectWriteTraceId: missingTraces }) },
      });
    }
    return [errors.length ? 207 : 200, batchAnswer(results, errors)];
  }

  private archive(object: HubSpotObjectName, inputs: Input[]): [number, unknown] {
    // HubSpot answers 204 whether or not each record still existed.
    for (const input of inputs) this.stores[object].delete(String(input.id ?? ''));
    return [204, undefined];
  }

  private read(object: HubSpotObjectName, inputs: Input[], body: Record<string, unknown>): [number, unknown] {
    const idProperty = typeof body.idProperty === 'string' ? body.idProperty : undefined;
    if (idProperty && !this.unique[object].includes(idProperty)) {
      return [400, wholeError({ status: 'error', category: 'VALIDATION_ERROR', message: `${idProperty} is not a unique property of ${objectTypeIds[object]}`, context: {} })];
    }
    const wanted = Array.isArray(body.properties) ? body.properties.map(String) : undefined;
    const results: unknown[] = [];
    const missing: string[] = [];
    for (const input of inputs) {
      const id = String(input.id ?? '');
      const record = idProperty ? this.find(object, idProperty, id) : this.stores[object].get(id);
      if (record) results.push(this.view(record, wanted));
      else missing.push(id);
    }
    const errors: InputError[] = missing.length
      ? [{ status: 'error', category: 'OBJECT_NOT_FOUND', message: `Could not get some ${singular[object].toUpperCase()} objects, they may be deleted or not exist. Check that ids are valid.`, context: { ids: missing } }]
      : [];
    return [errors.length ? 207 : 200, batchAnswer(results, errors)];
  }

  // --- The store -----------------------------------------------------------------------------

  private newRecord(properties: Record<string, unknown>): HubSpotRecord {
    const now = new Date().toISOString();
    const id = String(this.nextId++);
    return { id, properties: { ...strings(properties), hs_object_id: id }, createdAt: now, updatedAt: now };
  }

  private find(object: HubSpotObjectName, property: string, value: string): HubSpotRecord | undefined {
    if (property === 'hs_object_id') return this.stores[object].get(value);
    const wanted = norm(property, value);
    for (const record of this.stores[object].values()) {
      const mine = record.properties[property];
      if (mine !== undefined && mine !== '' && norm(property, mine) === wanted) return record;
    }
    return undefined;
  }

  /** Why HubSpot would refuse these properties: a refused email, or a unique value another record holds. */
  private validate(object: HubSpotObjectName, properties: Properties, selfId: string | undefined, claimed?: Map<string, string>): { status: number; error: InputError } | undefined {
    const email = properties.email;
    if (email && (this.refused.has(email.toLowerCase()) || !email.includes('@'))) {
      const detail = { isValid: false, message: `Email address ${email} is invalid`, error: 'INVALID_EMAIL', name: 'email', localizedErrorMessage: `Email address ${email} is invalid` };
      return {
        status: 400,
        error: {
          ...inputError('VALIDATION_ERROR', `Property values were not valid: ${JSON.stringify([detail])}`),
          errors: [{ message: `Email address ${email} is invalid`, code: 'INVALID_EMAIL', context: { propertyName: ['email'] } }],
        },
      };
    }
    for (const name of this.unique[object]) {
      const value = properties[name];
      if (!value) continue;
      const holder = this.find(object, name, value);
      if (holder && holder.id !== selfId) {
        const message = name === 'email' ? `${singular[object]} already exists. Existing ID: ${holder.id}` : `A ${singular[object].toLowerCase()} with the unique value ${value} for ${name} already exists. Existing ID: ${holder.id}`;
        return { status: 409, error: { ...inputError('CONFLICT', message), context: { existingId: [holder.id] } } };
      }
      if (claimed?.has(`${name}=${norm(name, value)}`)) {
        return { status: 409, error: inputError('CONFLICT', `Duplicate ${name} ${value} in the batch input`) };
      }
    }
    return undefined;
  }

  private view(record: HubSpotRecord, wanted?: string[]): Record<string, unknown> {
    const properties = wanted ? Object.fromEntries(['hs_object_id', ...wanted].filter((p) => p in record.properties).map((p) => [p, record.properties[p]])) : { ...record.properties };
    return { id: record.id, properties, createdAt: record.createdAt, updatedAt: record.updatedAt, archived: false };
  }
}

function inputError(category: string, message: string): InputError {
  return { status: 'error', category, message, context: {} };
}

/** A whole-request error: HubSpot's standard error body. */
function wholeError(error: InputError): Record<string, unknown> {
  const { context, ...rest } = error;
  return { ...rest, correlationId: randomUUID(), ...(Object.keys(context).length > 0 && { context }) };
}

function batchAnswer(results: unknown[], errors: InputError[]): Record<string, unknown> {
  const now = new Date().toISOString();
  return { status: 'COMPLETE', results, ...(errors.length > 0 && { numErrors: errors.length, errors }), startedAt: now, completedAt: now };
}

function traceOf(input: Input): string[] {
  return typeof input.objectWriteTraceId === 'string' ? [input.objectWriteTraceId] : [];
}

function traceField(input: Input): Record<string, string> {
  return typeof input.objectWriteTraceId === 'string' ? { objectWriteTraceId: input.objectWriteTraceId } : {};
}

/** HubSpot keeps every property value as a string, and an email in lower case. */
function strings(value: unknown): Properties {
  if (typeof value !== 'object' || value === null) return {};
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>).map(([k, v]) => {
      const text = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
      return [k, k === 'email' ? text.trim().toLowerCase() : text];
    }),
  );
}

/** Emails match whatever their case. */
function norm(property: string, value: string): string {
  return property === 'email' ? value.trim().toLowerCase() : value;
}

function reply(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed) return;
  if (body === undefined || status === 204) {
    res.writeHead(status, headers).end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json;charset=utf-8', ...headers }).end(JSON.stringify(body));
}
