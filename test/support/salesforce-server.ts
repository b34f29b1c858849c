/**
 * A local stand-in for a Salesforce org, built from Salesforce's published REST API documentation,
 * for the `salesforce` plugin's tests. It implements:
 *
 *   POST   /services/oauth2/token                           OAuth 2.0 JWT bearer flow: grant_type
 *          urn:ietf:params:oauth:grant-type:jwt-bearer, an RS256 assertion with iss (client id), sub
 *          (username), aud (login URL), exp (seconds, at most 3 minutes ahead); the signature is
 *          verified with the public key of the connected app. 200 {access_token, scope,
 *          instance_url, id, token_type: "Bearer"}; 400 {error: "invalid_grant", error_description}.
 *   GET    /services/data/vXX.X/limits                      {DailyApiRequests: {Max, Remaining}, ...}
 *   GET    /services/data/vXX.X/sobjects/{SObject}/describe {name, fields: [{name, type, externalId, idLookup, unique, nillable, ...}]}
 *   GET    /services/data/vXX.X/query?q=SELECT … FROM … WHERE Field IN ('a', 'b')   {totalSize, done, records}
 *   POST   /services/data/vXX.X/composite/sobjects          create ≤ 200 records → [SaveResult]
 *   PATCH  /services/data/vXX.X/composite/sobjects          update ≤ 200 records by id → [SaveResult]
 *   PATCH  /services/data/vXX.X/composite/sobjects/{SObject}/{ExternalIdField}   upsert ≤ 200 → [UpsertResult] (v46.0+)
 *   DELETE /services/data/vXX.X/composite/sobjects?ids=…&allOrNone=…            delete ≤ 200 → [DeleteResult]
 *
 * A SaveResult is {id, success: true, errors: []} or {success: false, errors: [{statusCode,
 * message, fields}]}; with allOrNone the other records answer ALL_OR_NONE_OPERATION_ROLLED_BACK.
 * Record errors modelled: REQUIRED_FIELD_MISSING, INVALID_EMAIL_ADDRESS,
 * FIELD_CUSTOM_VALIDATION_EXCEPTION (a validation rule that refuses chosen emails), DUPLICATE_VALUE
 * on a unique field ("duplicate value found: F duplicates value on record with id: <15-char id>"),
 * DUPLICATES_DETECTED from a blocking duplicate rule (duplicateResult.matchResults[].matchRecords[]
 * .record.Id names the existing records), ENTITY_IS_DELETED, MALFORMED_ID, DUPLICATE_EXTERNAL_ID.
 * Request errors, as a list [{message, errorCode}]: 401 INVALID_SESSION_ID, 403
 * REQUEST_LIMIT_EXCEEDED ("TotalRequests Limit exceeded."; Salesforce sends no Retry-After), 400
 * INVALID_FIELD / JSON_PARSER_ERROR / EXCEEDED_ID_LIMIT, 404 NOT_FOUND, 503 SERVER_UNAVAILABLE. Every
 * /services/data answer carries `Sforce-Limit-Info: api-usage=used/max`.
 *
 * Record ids are 18-character ids (15-character id plus the case-safe checksum); a 15-character id
 * is accepted wherever an id is, as Salesforce does.
 *
 * Sources: developer.salesforce.com REST API Developer Guide — "Create/Update/Upsert/Delete Records
 * Using sObject Collections", "Status Codes and Error Responses", "Limit Info Header"; the OAuth 2.0
 * JWT Bearer Flow for Server-to-Server Integration; SOAP API "DuplicateError" / "DuplicateResult".
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPublicKey, createVerify, randomBytes, type KeyObject } from 'node:crypto';

type SObject = Record<string, unknown>;

/** A field of an sObject, as describe reports it. */
export interface FieldSpec {
  type: 'id' | 'string' | 'email' | 'double' | 'boolean' | 'date';
  /** Must hold a value on create (Contact.LastName). */
  required?: boolean;
  /** A unique field: a second record with its value is refused with DUPLICATE_VALUE. */
  unique?: boolean;
  /** Marked External ID: usable by upsert. */
  externalId?: boolean;
}

/** An sObject type of the org. */
export interface ObjectSpec {
  /** The key prefix of its ids: 003 for Contact. */
  prefix: string;
  fields: Record<string, FieldSpec>;
  /** A blocking duplicate rule: a record whose values of these fields match an existing one is refused. */
  duplicateRule?: { name: string; matchingRule: string; fields: string[] };
}

/** The standard Contact, with the Standard Contact Duplicate Rule blocking on email, and two custom fields. */
export const contactSpec: ObjectSpec = {
  prefix: '003',
  fields: {
    Id: { type: 'id' },
    FirstName: { type: 'string' },
    LastName: { type: 'string', required: true },
    Email: { type: 'email' },
    Score__c: { type: 'double' },
    External_Id__c: { type: 'string', externalId: true, unique: true },
  },
  duplicateRule: { name: 'Standard_Contact_Duplicate_Rule', matchingRule: 'Standard_Contact_Match_Rule_v1_1', fields: ['Email'] },
};

export interface SalesforceServerOptions {
  objects?: Record<string, ObjectSpec>;
  /** The connected app for the JWT bearer flow: its consumer key, the users allowed, and its certificate's public key (PEM). */
  connectedApp?: { clientId: string; usernames: string[]; publicKey: string };
  /** Access tokens that are valid from the start (the plain access_token configuration). */
  tokens?: string[];
  /** The org's daily API request allocation. */
  dailyApiRequests?: number;
}

/** A request as the org saw it. */
export interface SalesforceRequest {
  at: number;
  method: string;
  /** The path with its query string. */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  status?: number;
}

const ROLLED_BACK = {
  statusCode: 'ALL_OR_NONE_OPERATION_ROLLED_BACK',
  message: 'Record rolled back because not all records were valid and the request was using AllOrNone header',
  fields: [],
};

/** The org. */
export class SalesforceServer {
  /** Records by sObject type, then by 18-character id. */
  readonly records = new Map<string, Map<string, SObject>>();
  readonly requests: SalesforceRequest[] = [];
  /** The login URL and the instance URL: the same server. */
  url = '';
  readonly objects: Record<string, ObjectSpec>;
  private readonly tokens = new Set<string>();
  private readonly publicKey: KeyObject | undefined;
  private readonly rejected = new Set<string>();
  private limitNext = 0;
  private failNext: number[] = [];
  private apiUsage = 0;
  private nextId = 1;
  private readonly server = createServer((req, res) => {
    this.handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) send(res, 500, [{ message: String(e), errorCode: 'UNKNOWN_EXCEPTION' }]);
    });
  });

  private constructor(private readonly options: SalesforceServerOptions) {
    this.objects = options.objects ?? { Contact: contactSpec };
    for (const name of Object.keys(this.objects)) this.records.set(name, new Map());
    for (const token of options.tokens ?? []) this.tokens.add(token);
    if (options.connectedApp) this.publicKey = createPublicKey(options.connectedApp.publicKey);
  }

  static async start(options: SalesforceServerOptions = {}): Promise<SalesforceServer> {
    const s = new SalesforceServer(options);
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    s.url = `http://127.0.0.1:${(s.server.address() as AddressInfo).port}`;
    return s;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- test controls --------------------------------------------------------------------------

  /** The next `count` API requests are refused with 403 REQUEST_LIMIT_EXCEEDED. */
  limitRequests(count = 1): void {
    this.limitNext += count;
  }

  /** The next API requests answer these statuses (503 SERVER_UNAVAILABLE, 500 UNKNOWN_EXCEPTION…). */
  failRequests(...statuses: number[]): void {
    this.failNext.push(...statuses);
  }

  /** A validation rule refuses records with this email (FIELD_CUSTOM_VALIDATION_EXCEPTION). */
  rejectEmail(email: string): void {
    this.rejected.add(email.toLowerCase());
  }

  clearFaults(): void {
    this.rejected.clear();
    this.limitNext = 0;
    this.failNext = [];
  }

  /** Every session ends (as after the org's session timeout): the next API call answers 401. */
  expireSessions(): void {
    this.tokens.clear();
  }

  /** The connected app no longer lets this user in (the JWT bearer flow answers invalid_grant). */
  revokeUser(name: string): void {
    const users = this.options.connectedApp?.usernames;
    if (users?.includes(name)) users.splice(users.indexOf(name), 1);
  }

  /** The connected app lets this user in (pre-authorized). */
  approveUser(name: string): void {
    const users = this.options.connectedApp?.usernames;
    if (users && !users.includes(name)) users.push(name);
  }

  /** Adds a valid access token. */
  addToken(token: string): void {
    this.tokens.add(token);
  }

  /** Puts a record into the org behind ebb's back (no rules run); returns its id. */
  insert(object: string, fields: SObject): string {
    const id = this.newId(object);
    this.table(object).set(id, { ...fields, Id: id });
    return id;
  }

  /** Deletes a record behind ebb's back. */
  remove(object: string, id: string): void {
    this.table(object).delete(to18(id));
  }

  /** The records of an sObject type, without their Id. */
  list(object: string): SObject[] {
    return [...this.table(object).values()].map(({ Id: _id, ...rest }) => rest);
  }

  /** The API requests (not the token requests) whose `METHOD path` matches. */
  requestsTo(match: RegExp): SalesforceRequest[] {
    return this.requests.filter((r) => match.test(`${r.method} ${r.path}`));
  }

  reset(): void {
    for (const table of this.records.values()) table.clear();
    this.requests.length = 0;
    this.clearFaults();
    for (const token of this.options.tokens ?? []) this.tokens.add(token);
  }

  // ---- HTTP ------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const seen: SalesforceRequest = { at: Date.now(), method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body };
    this.requests.push(seen);
    const url = new URL(seen.path, this.url);
    const answer = (status: number, payload?: unknown, headers: Record<string, string> = {}) => {
      seen.status = status;
      send(res, status, payload, headers);
    };

    if (url.pathname === '/services/oauth2/token' && seen.method === 'POST') {
      const [status, payload] = this.token(new URLSearchParams(body));
      return answer(status, payload);
    }
    const api = /^\/services\/data\/v(\d+\.\d)(\/.*)$/.exec(url.pathname);
    if (!api) return answer(404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]);

    const limit = (extra = 0) => ({ 'sforce-limit-info': `api-usage=${Math.min(this.apiUsage + extra, this.dailyMax)}/${this.dailyMax}` });
    const auth = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ''));
    if (!auth || !this.tokens.has(auth[1])) return answer(401, [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }]);
    if (this.limitNext > 0) {
      this.limitNext--;
      return answer(403, [{ message: 'TotalRequests Limit exceeded.', errorCode: 'REQUEST_LIMIT_EXCEEDED' }], { 'sforce-limit-info': `api-usage=${this.dailyMax}/${this.dailyMax}` });
    }
    this.apiUsage++;
    const failure = this.failNext.shift();
    if (failure !== undefined) {
      const code = failure === 503 ? 'SERVER_UNAVAILABLE' : 'UNKNOWN_EXCEPTION';
      return answer(failure, [{ message: failure === 503 ? 'Server temporarily unavailable' : 'An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)', errorCode: code }], limit());
    }

    const version = Number(api[1]);
    const [status, payload] = this.route(seen.method, api[2], url.searchParams, body, version);
    return answer(status, payload, limit());
  }

  private get dailyMax(): number {
    return this.options.dailyApiRequests ?? 15_000;
  }

  private route(method: string, path: string, query: URLSearchParams, body: string, version: number): [number, unknown] {
    const notFound: [number, unknown] = [404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]];
    if (method === 'GET' && path === '/limits') {
      return [200, { DailyApiRequests: { Max: this.dailyMax, Remaining: this.dailyMax - this.apiUsage }, DailyBulkApiBatches: { Max: 15_000, Remaining: 15_000 } }];
    }
    const describe = /^\/sobjects\/(\w+)\/describe\/?$/.exec(path);
    if (method === 'GET' && describe) {
      const spec = this.objects[describe[1]];
      return spec ? [200, describeOf(describe[1], spec)] : notFound;
    }
    if (method === 'GET' && path === '/query') return this.query(query.get('q') ?? '');
    if (path === '/composite/sobjects' || path === '/composite/sobjects/') {
      if (version < 42) return notFound;
      if (method === 'DELETE') return this.deleteAll(query);
      let parsed: { allOrNone?: boolean; records?: SObject[] };
      try {
        parsed = JSON.parse(body) as typeof parsed;
      } catch (e) {
        return [400, [{ message: `Unexpected character: ${(e as Error).message}`, errorCode: 'JSON_PARSER_ERROR' }]];
      }
      if (method === 'POST') return this.save('create', parsed);
      if (method === 'PATCH') return this.save('update', parsed);
      return [405, [{ errorCode: 'METHOD_NOT_ALLOWED', message: `HTTP Method '${method}' not allowed. Allowed are POST,PATCH,DELETE` }]];
    }
    const upsert = /^\/composite\/sobjects\/(\w+)\/(\w+)\/?$/.exec(path);
    if (upsert && method === 'PATCH') {
      if (version < 46) return notFound;
      let parsed: { allOrNone?: boolean; records?: SObject[] };
      try {
        parsed = JSON.parse(body) as typeof parsed;
      } catch (e) {
        return [400, [{ message: `Unexpected character: ${(e as Error).message}`, errorCode: 'JSON_PARSER_ERROR' }]];
      }
      return this.save('upsert', parsed, upsert[1], upsert[2]);
    }
    return notFound;
  }

  /** The JWT bearer flow: checks the assertion as Salesforce documents it, then issues a token. */
  private token(form: URLSearchParams): [number, unknown] {
    const invalid = (description: string): [number, unknown] => [400, { error: 'invalid_grant', error_description: description }];
    const app = this.options.connectedApp;
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
      return [400, { error: 'unsupported_grant_type', error_description: 'grant type not supported' }];
    }
    const parts = (form.get('assertion') ?? '').split('.');
    if (!app || !this.publicKey || parts.length !== 3) return invalid('invalid assertion');
    let header: { alg?: string };
    let claims: { iss?: string; sub?: string; aud?: string; exp?: number };
    try {
      header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')) as typeof header;
      claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as typeof claims;
    } catch {
      return invalid('invalid assertion');
    }
    if (header.alg !== 'RS256') return invalid('invalid assertion');
    const verifier = createVerify('RSA-SHA256');
    verifier.update(`${parts[0]}.${parts[1]}`);
    if (!verifier.verify(this.publicKey, Buffer.from(parts[2], 'base64url'))) return invalid('invalid assertion');
    if (claims.iss !== app.clientId) return [400, { error: 'invalid_client_id', error_description: 'client identifier invalid' }];
    if (claims.aud !== this.url) return invalid('audience is invalid');
    const now = Math.floor(Date.now() / 1000);
    if (typeof claims.exp !== 'number' || claims.exp < now || claims.exp > now + 300) return invalid('expired authorization code');
    if (!claims.sub || !app.usernames.includes(claims.sub)) return invalid("user hasn't approved this consumer");
    const token = `00D5g000000abcd!${randomBytes(24).toString('base64url')}`;
    this.tokens.add(token);
    return [200, { access_token: token, scope: 'api', instance_url: this.url, id: `${this.url}/id/00D5g000000abcdEAA/0055g000001XyZAAA`, token_type: 'Bearer' }];
  }

  /** SELECT f1, f2 FROM Obj WHERE Field IN ('a', 'b'): the one query shape the plugin sends. */
  private query(soql: string): [number, unknown] {
    const m = /^\s*SELECT\s+(.+?)\s+FROM\s+(\w+)\s+WHERE\s+(\w+)\s+IN\s*\((.*)\)\s*$/is.exec(soql);
    if (!m) return [400, [{ message: `unexpected token: ${soql.slice(0, 40)}`, errorCode: 'MALFORMED_QUERY' }]];
    const [, select, object, field, list] = m;
    const spec = this.objects[object];
    if (!spec) return [400, [{ message: `sObject type '${object}' is not supported.`, errorCode: 'INVALID_TYPE' }]];
    const fields = select.split(',').map((f) => f.trim());
    for (const f of [...fields, field]) {
      if (!spec.fields[f]) return [400, [{ message: `No such column '${f}' on entity '${object}'.`, errorCode: 'INVALID_FIELD' }]];
    }
    const values = parseSoqlList(list);
    if (!values) return [400, [{ message: 'unexpected token in IN list', errorCode: 'MALFORMED_QUERY' }]];
    const wanted = new Set(values.map((v) => v.toLowerCase()));
    const records = [...this.table(object).values()]
      .filter((r) => typeof r[field] === 'string' && wanted.has((r[field] as string).toLowerCase()))
      .map((r) => ({ attributes: { type: object, url: `/services/data/v62.0/sobjects/${object}/${String(r.Id)}` }, ...Object.fromEntries(fields.map((f) => [f, r[f] ?? null])) }));
    return [200, { totalSize: records.length, done: true, records }];
  }

  /** create, update or upsert through sObject Collections. */
  private save(action: 'create' | 'update' | 'upsert', body: { allOrNone?: boolean; records?: SObject[] }, urlObject?: string, externalField?: string): [number, unknown] {
    const records = body.records;
    if (!Array.isArray(records) || records.length === 0) return [400, [{ message: 'records is required', errorCode: 'INVALID_FIELD' }]];
    if (records.length > 200) return [400, [{ message: 'record limit reached. cannot submit more than 200 records into this call', errorCode: 'EXCEEDED_ID_LIMIT' }]];
    if (urlObject !== undefined) {
      const spec = this.objects[urlObject];
      if (!spec) return [404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]];
      const field = spec.fields[externalField!];
      if (!field || !(field.externalId || externalField === 'Id')) {
        return [400, [{ message: `Field ${externalField} is not an External ID or indexed field for ${urlObject}`, errorCode: 'INVALID_FIELD' }]];
      }
    }
    // Checks that refuse the whole request: no type, an unknown type or field, a value of the wrong type.
    for (const record of records) {
      const type = (record.attributes as { type?: string } | undefined)?.type;
      if (!type) return [400, [{ message: 'No SObject Type defined in attributes', errorCode: 'INVALID_TYPE' }]];
      const spec = this.objects[type];
      if (!spec) return [400, [{ message: `sObject type '${type}' is not supported.`, errorCode: 'INVALID_TYPE' }]];
      if (urlObject !== undefined && type !== urlObject) return [400, [{ message: `The sObject type ${type} doesn't match ${urlObject}`, errorCode: 'INVALID_TYPE' }]];
      for (const [name, value] of Object.entries(record)) {
        if (name === 'attributes' || name.toLowerCase() === 'id') continue;
        const field = spec.fields[name];
        if (!field) return [400, [{ message: `No such column '${name}' on sobject of type ${type}`, errorCode: 'INVALID_FIELD' }]];
        if (value !== null && field.type === 'double' && typeof value !== 'number') {
          return [400, [{ message: `Cannot deserialize instance of double from VALUE_STRING value ${JSON.stringify(value)} or request may be missing a required field`, errorCode: 'JSON_PARSER_ERROR' }]];
        }
        if (value !== null && field.type !== 'double' && field.type !== 'boolean' && typeof value === 'object') {
          return [400, [{ message: `Cannot deserialize instance of ${field.type} from START_OBJECT value`, errorCode: 'JSON_PARSER_ERROR' }]];
        }
      }
    }

    // Records are saved in order, each seeing the ones before it; allOrNone undoes them all on a failure.
    const snapshot = body.allOrNone ? new Map([...this.records].map(([k, v]) => [k, new Map([...v].map(([id, r]) => [id, { ...r }]))])) : undefined;
    const results = records.map((record) => this.saveOne(action, record, externalField));
    if (snapshot && results.some((r) => !r.success)) {
      for (const [k, v] of snapshot) this.records.set(k, v);
      return [200, results.map((r) => (r.success ? { id: null, success: false, errors: [ROLLED_BACK] } : r))];
    }
    return [200, results];
  }

  private saveOne(action: 'create' | 'update' | 'upsert', record: SObject, externalField?: string): { id?: string | null; success: boolean; errors: unknown[]; created?: boolean } {
    const { attributes, ...input } = record;
    const type = (attributes as { type: string }).type;
    const spec = this.objects[type];
    const table = this.table(type);
    const fail = (statusCode: string, message: string, fields: string[] = [], extra: object = {}) => ({
      ...(action === 'upsert' ? { id: null } : {}),
      success: false,
      errors: [{ statusCode, message, fields, ...extra }],
      ...(action === 'upsert' ? { created: false } : {}),
    });
    const idKey = Object.keys(input).find((k) => k.toLowerCase() === 'id');
    const rawId = idKey === undefined ? undefined : input[idKey];
    if (idKey !== undefined) delete input[idKey];

    let existingId: string | undefined;
    if (action === 'create') {
      if (rawId !== undefined && rawId !== null) return fail('INVALID_FIELD_FOR_INSERT_UPDATE', 'cannot specify Id in an insert call', ['Id']);
    } else if (action === 'update') {
      if (typeof rawId !== 'string' || !isIdOf(rawId, spec.prefix)) return fail('MALFORMED_ID', `${type} ID: id value of incorrect type: ${String(rawId)}`, ['Id']);
      existingId = to18(rawId);
      if (!table.has(existingId)) return fail('ENTITY_IS_DELETED', 'entity is deleted');
    } else {
      const value = input[externalField!];
      if (value === undefined || value === null || value === '') return fail('REQUIRED_FIELD_MISSING', `Required fields are missing: [${externalField}]`, [externalField!]);
      const matches = [...table.values()].filter((r) => equalValue(r[externalField!], value));
      if (matches.length > 1) return fail('DUPLICATE_EXTERNAL_ID', `${externalField}: more than one record found for external id field: ${matches.map((r) => String(r.Id)).join(', ')}`, [externalField!]);
      existingId = matches[0]?.Id as string | undefined;
    }

    const merged: SObject = { ...(existingId ? table.get(existingId) : {}), ...input };
    for (const [name, field] of Object.entries(spec.fields)) {
      if (field.required && (merged[name] === undefined || merged[name] === null || merged[name] === '')) {
        return fail('REQUIRED_FIELD_MISSING', `Required fields are missing: [${name}]`, [name]);
      }
      if (field.type === 'email' && typeof merged[name] === 'string' && merged[name] !== '' && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(merged[name] as string)) {
        return fail('INVALID_EMAIL_ADDRESS', `${name}: invalid email address: ${String(merged[name])}`, [name]);
      }
    }
    const email = typeof merged.Email === 'string' ? merged.Email.toLowerCase() : undefined;
    if (email && this.rejected.has(email)) return fail('FIELD_CUSTOM_VALIDATION_EXCEPTION', 'This email address is on the do-not-contact list.', []);
    for (const [name, field] of Object.entries(spec.fields)) {
      if (!field.unique || merged[name] === undefined || merged[name] === null) continue;
      const other = [...table.values()].find((r) => r.Id !== existingId && equalValue(r[name], merged[name]));
      if (other) return fail('DUPLICATE_VALUE', `duplicate value found: ${name} duplicates value on record with id: ${String(other.Id).slice(0, 15)}`);
    }
    const rule = spec.duplicateRule;
    if (rule && rule.fields.every((f) => merged[f] !== undefined && merged[f] !== null && merged[f] !== '')) {
      const matches = [...table.values()].filter((r) => r.Id !== existingId && rule.fields.every((f) => equalValue(r[f], merged[f])));
      if (matches.length > 0) return fail('DUPLICATES_DETECTED', 'Use one of these records?', [], { duplicateResult: duplicateResult(type, rule, matches) });
    }

    const id = existingId ?? this.newId(type);
    table.set(id, { ...merged, Id: id });
    if (action === 'upsert') return { id, success: true, errors: [], created: existingId === undefined };
    return { id, success: true, errors: [] };
  }

  private deleteAll(query: URLSearchParams): [number, unknown] {
    const ids = (query.get('ids') ?? '').split(',').filter(Boolean);
    if (ids.length === 0) return [400, [{ message: 'ids is required', errorCode: 'INVALID_FIELD' }]];
    if (ids.length > 200) return [400, [{ message: 'record limit reached. cannot submit more than 200 records into this call', errorCode: 'EXCEEDED_ID_LIMIT' }]];
    const allOrNone = query.get('allOrNone') === 'true';
    const results = ids.map((raw) => {
      const object = Object.entries(this.objects).find(([, spec]) => isIdOf(raw, spec.prefix))?.[0];
      if (!object) return { success: false, errors: [{ statusCode: 'MALFORMED_ID', message: `malformed id ${raw}`, fields: [] }] };
      const id = to18(raw);
      if (!this.table(object).has(id)) return { id, success: false, errors: [{ statusCode: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [] }] };
      return { id, success: true, errors: [], object };
    });
    if (allOrNone && results.some((r) => !r.success)) {
      return [200, results.map(({ object: _o, ...r }) => (r.success ? { id: r.id, success: false, errors: [ROLLED_BACK] } : r))];
    }
    for (const r of results) if (r.success && r.object && r.id) this.table(r.object).delete(r.id);
    return [200, results.map(({ object: _o, ...r }) => r)];
  }

  private table(object: string): Map<string, SObject> {
    const table = this.records.get(object);
    if (!table) throw new Error(`the test org has no sObject ${object}`);
    return table;
  }

  private newId(object: string): string {
    const prefix = this.objects[object]?.prefix ?? 'a00';
    return to18(`${prefix}5g${(this.nextId++).toString(36).toUpperCase().padStart(10, '0')}`);
  }
}

/** The case-safe 18-character form of a 15-character id: a checksum of where the capitals are. */
export function to18(id: string): string {
  if (id.length !== 15) return id;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345';
  let suffix = '';
  for (let chunk = 0; chunk < 3; chunk++) {
    let bits = 0;
    for (let i = 0; i < 5; i++) if (/[A-Z]/.test(id[chunk * 5 + i])) bits |= 1 << i;
    suffix += alphabet[bits];
  }
  return id + suffix;
}

function isIdOf(id: string, prefix: string): boolean {
  if (!/^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$/.test(id) || !id.startsWith(prefix)) return false;
  return id.length === 15 || to18(id.slice(0, 15)) === id;
}

function equalValue(a: unknown, b: unknown): boolean {
  if (typeof a === 'string' && typeof b === 'string') return a.toLowerCase() === b.toLowerCase();
  return a === b && a !== undefined;
}

function duplicateResult(type: string, rule: NonNullable<ObjectSpec['duplicateRule']>, matches: SObject[]) {
  return {
    allowSave: false,
    duplicateRule: rule.name,
    duplicateRuleEntityType: type,
    errorMessage: 'Use one of these records?',
    matchResults: [
      {
        entityType: type,
        errors: [],
        matchEngine: 'ExactMatchEngine',
        matchRecords: matches.map((r) => ({
          additionalInformation: [],
          fieldDiffs: [],
          matchConfidence: 100,
          record: { attributes: { type, url: `/services/data/v62.0/sobjects/${type}/${String(r.Id)}` }, Id: r.Id },
        })),
        rule: rule.matchingRule,
        size: matches.length,
        success: true,
      },
    ],
  };
}

function describeOf(name: string, spec: ObjectSpec) {
  return {
    name,
    label: name,
    createable: true,
    updateable: true,
    deletable: true,
    keyPrefix: spec.prefix,
    fields: Object.entries(spec.fields).map(([field, f]) => ({
      name: field,
      type: f.type,
      externalId: f.externalId ?? false,
      idLookup: field === 'Id' || (f.externalId ?? false),
      unique: f.unique ?? false,
      nillable: !f.required && field !== 'Id',
      createable: field !== 'Id',
      updateable: field !== 'Id',
    })),
  };
}

/** The values of a SOQL IN list of quoted strings, with \' and \\ escapes; null when malformed. */
function parseSoqlList(list: string): string[] | null {
  const values: string[] = [];
  const re = /\s*'((?:[^'\\]|\\.)*)'\s*(,|$)/gy;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(list)) !== null) {
    values.push(m[1].replace(/\\(.)/g, '$1'));
    end = re.lastIndex;
    if (m[2] === '') break;
  }
  return end === list.length && values.length > 0 ? values : null;
}

function send(res: ServerResponse, status: number, payload?: unknown, headers: Record<string, string> = {}): void {
  if (payload === undefined) {
    res.writeHead(status, headers).end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8', ...headers }).end(JSON.stringify(payload));
}
