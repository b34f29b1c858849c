/**
 * A Brevo (formerly Sendinblue) v3 contacts contract server on 127.0.0.1, built from Brevo's
 * published API reference: "Create a contact" (email / ext_id / SMS attribute, attributes,
 * listIds, updateEnabled; 201 {id}, 204 when updateEnabled updated an existing contact, 400
 * duplicate_parameter "Unable to create contact, email is already associated with another
 * Contact" with metadata.duplicate_identifiers), "Get a contact's details" / "Update a contact" /
 * "Delete a contact" (/contacts/{identifier}, an email or an ID, or any identifierType: email_id,
 * contact_id, ext_id, phone_id; 404 document_not_found "Contact does not exist"), "Import
 * contacts" (jsonBody, listIds or newList, updateExistingContacts, emptyContactsAttributes; 202
 * {processId}), "Get process" (status queued, in_process, completed), the error model {code,
 * message}, "Rate limit headers" (x-sib-ratelimit-limit, -remaining, -reset on every answer, 429
 * when the window is spent) and "Get account" for the key check.
 *
 *   GET    /v3/account                       200 | 401 unauthorized "Key not found"
 *   POST   /v3/contacts                      201 {id} | 204 | 400 {code, message}
 *   GET    /v3/contacts/{identifier}         200 contact | 404
 *   PUT    /v3/contacts/{identifier}         204 | 400 | 404
 *   DELETE /v3/contacts/{identifier}         204 | 404
 *   POST   /v3/contacts/import               202 {processId} | 400
 *   GET    /v3/processes/{id}                200 {id, status, name} | 404
 *
 * Every request needs the `api-key` header and is logged. Faults: a 429 with Brevo's headers,
 * any answer once, emails Brevo refuses as invalid.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A contact as Brevo keeps it. */
export interface BrevoContactRecord {
  id: number;
  email?: string;
  ext_id?: string;
  emailBlacklisted: boolean;
  smsBlacklisted: boolean;
  listIds: number[];
  attributes: Record<string, unknown>;
  createdAt: string;
  modifiedAt: string;
}

/** A request as the server saw it. */
export interface BrevoRequest {
  at: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
  status?: number;
}

interface OneShot {
  match?: RegExp;
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

interface Process {
  id: number;
  name: string;
  looks: number;
  apply: () => void;
  applied: boolean;
}

export interface BrevoServerOptions {
  apiKey?: string;
  /** How many GET /processes/{id} answer in_process before an import is completed. */
  importLooks?: number;
}

type Body = Record<string, unknown>;

export class BrevoServer {
  readonly requests: BrevoRequest[] = [];
  readonly apiKey: string;
  url = '';
  importLooks: number;
  private readonly contacts = new Map<number, BrevoContactRecord>();
  private readonly processes = new Map<number, Process>();
  private readonly refused = new Set<string>();
  private readonly oneShots: OneShot[] = [];
  private nextId = 1;
  private nextProcess = 77;
  private readonly server = createServer((req, res) => {
    this.handle(req, res).catch((e: unknown) => reply(res, 500, { code: 'internal_error', message: String(e) }));
  });

  private constructor(options: BrevoServerOptions) {
    this.apiKey = options.apiKey ?? 'xkeysib-test-key';
    this.importLooks = options.importLooks ?? 1;
  }

  static async start(options: BrevoServerOptions = {}): Promise<BrevoServer> {
    const s = new BrevoServer(options);
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    s.url = `http://127.0.0.1:${(s.server.address() as AddressInfo).port}/v3`;
    return s;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // --- Test controls -------------------------------------------------------------------------

  /** The contacts, in creation order. */
  list(): BrevoContactRecord[] {
    return [...this.contacts.values()];
  }

  /** Puts a contact into Brevo behind ebb's back; returns its ID. */
  insert(contact: { email?: string; ext_id?: string; attributes?: Record<string, unknown> }): number {
    const record = this.newContact({ email: contact.email?.toLowerCase(), ext_id: contact.ext_id, attributes: { ...contact.attributes } });
    return record.id;
  }

  /** The ID of the contact with this email. */
  idOf(email: string): number | undefined {
    return this.byEmail(email)?.id;
  }

  /** The next request (matching `match`) answers 429 with Brevo's rate-limit headers, the window resetting in `resetSeconds`. */
  rateLimitOnce(options: { resetSeconds?: number; match?: RegExp } = {}): void {
    this.oneShots.push({
      match: options.match,
      status: 429,
      headers: { 'x-sib-ratelimit-limit': '10', 'x-sib-ratelimit-remaining': '0', 'x-sib-ratelimit-reset': String(options.resetSeconds ?? 1) },
      body: { code: 'too_many_requests', message: 'The expected rate limit is exceeded.' },
    });
  }

  /** The next request (matching `match`) gets this answer. */
  answerOnce(status: number, body?: unknown, options: { match?: RegExp; headers?: Record<string, string> } = {}): void {
    this.oneShots.push({ status, body, match: options.match, headers: options.headers });
  }

  /** Brevo refuses this email as invalid (invalid_parameter). */
  rejectEmail(email: string): void {
    this.refused.add(email.toLowerCase());
  }

  clear(): void {
    this.refused.clear();
    this.oneShots.length = 0;
  }

  requestsTo(match: RegExp): BrevoRequest[] {
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
    const seen: BrevoRequest = { at: Date.now(), method, path: url.pathname + url.search, headers: req.headers, body: malformed ? text : body };
    this.requests.push(seen);
    const limits = { 'x-sib-ratelimit-limit': '10', 'x-sib-ratelimit-remaining': '9', 'x-sib-ratelimit-reset': '1' };
    const answer = (status: number, payload?: unknown, headers: Record<string, string> = {}) => {
      seen.status = status;
      reply(res, status, payload, { ...limits, ...headers });
    };

    if (req.headers['api-key'] !== this.apiKey) return answer(401, { code: 'unauthorized', message: 'Key not found' });
    const shot = this.oneShots.findIndex((s) => !s.match || s.match.test(`${method} ${seen.path}`));
    if (shot !== -1) {
      const [s] = this.oneShots.splice(shot, 1);
      return answer(s.status, s.body, s.headers);
    }
    if (malformed) return answer(400, { code: 'bad_request', message: 'Input must be a valid JSON object' });

    const path = url.pathname.replace(/^\/v3/, '');
    if (path === '/account' && method === 'GET') {
      return answer(200, { email: 'owner@acme.test', firstName: 'Owner', lastName: 'Acme', companyName: 'Acme', plan: [{ type: 'free', credits: 300, creditsType: 'sendLimit' }] });
    }
    if (path === '/contacts' && method === 'POST') return answer(...this.create((body ?? {}) as Body));
    if (path === '/contacts/import' && method === 'POST') return answer(...this.import((body ?? {}) as Body));
    const processMatch = /^\/processes\/(\d+)$/.exec(path);
    if (processMatch && method === 'GET') return answer(...this.process(Number(processMatch[1])));
    const one = /^\/contacts\/([^/]+)$/.exec(path);
    if (one) {
      const contact = this.resolve(decodeURIComponent(one[1]), url.searchParams.get('identifierType'));
      if (!contact) return answer(404, { code: 'document_not_found', message: 'Contact does not exist' });
      if (method === 'GET') return answer(200, this.view(contact));
      if (method === 'PUT') return answer(...this.update(contact, (body ?? {}) as Body));
      if (method === 'DELETE') {
        this.contacts.delete(contact.id);
        return answer(204);
      }
    }
    return answer(405, { code: 'method_not_allowed', message: `${method} Method is not allowed on this path` });
  }

  // --- Endpoints -----------------------------------------------------------------------------

  private create(body: Body): [number, unknown?] {
    const email = typeof body.email === 'string' ? body.email.trim().toLowerCase() : undefined;
    const extId = typeof body.ext_id === 'string' ? body.ext_id : undefined;
    const attributes = (typeof body.attributes === 'object' && body.attributes !== null ? body.attributes : {}) as Record<string, unknown>;
    const sms = typeof attributes.SMS === 'string' ? attributes.SMS : undefined;
    if (!email && !extId && !sms) return [400, { code: 'missing_parameter', message: 'email, ext_id or the SMS attribute is required to create a contact' }];
    if (email && this.invalid(email)) return [400, { code: 'invalid_parameter', message: 'Invalid email address' }];
    const existing = (email && this.byEmail(email)) || (extId && this.byExtId(extId)) || (sms && this.bySms(sms)) || undefined;
    if (existing) {
      if (body.updateEnabled !== true) {
        const which = email && this.byEmail(email) ? 'email' : extId && this.byExtId(extId) ? 'ext_id' : 'SMS';
        return [400, { code: 'duplicate_parameter', message: `Unable to create contact, ${which} is already associated with another Contact`, metadata: { duplicate_identifiers: [which] } }];
      }
      this.write(existing, { ...body, attributes: { ...attributes, ...(email && { EMAIL: email }) } });
      return [204];
    }
    const record = this.newContact({ email, ext_id: extId, attributes: {} });
    this.write(record, body);
    return [201, { id: record.id }];
  }

  private update(contact: BrevoContactRecord, body: Body): [number, unknown?] {
    const attributes = (typeof body.attributes === 'object' && body.attributes !== null ? body.attributes : {}) as Record<string, unknown>;
    const email = typeof attributes.EMAIL === 'string' ? attributes.EMAIL.trim().toLowerCase() : undefined;
    if (email !== undefined) {
      if (this.invalid(email)) return [400, { code: 'invalid_parameter', message: 'Invalid email address' }];
      const holder = this.byEmail(email);
      if (holder && holder.id !== contact.id) {
        return [400, { code: 'duplicate_parameter', message: 'Unable to update contact, email is already associated with another Contact', metadata: { duplicate_identifiers: ['email'] } }];
      }
    }
    this.write(contact, body);
    return [204];
  }

  private import(body: Body): [number, unknown?] {
    const rows = body.jsonBody;
    if (!Array.isArray(rows)) return [400, { code: 'missing_parameter', message: 'fileUrl, fileBody or jsonBody is required' }];
    const lists = Array.isArray(body.listIds) ? (body.listIds as number[]) : [];
    if (lists.length === 0 && !body.newList) return [400, { code: 'missing_parameter', message: 'listIds or newList is required' }];
    const updateExisting = body.updateExistingContacts !== false;
    const emptyErases = body.emptyContactsAttributes === true;
    const id = this.nextProcess++;
    const apply = () => {
      for (const row of rows as Body[]) {
        const email = typeof row.email === 'string' ? row.email.trim().toLowerCase() : undefined;
        const extId = typeof row.ext_id === 'string' ? row.ext_id : undefined;
        // A row Brevo cannot import is skipped; it shows only in the import's report.
        if ((!email && !extId) || (email && this.invalid(email))) continue;
        const attributes = Object.fromEntries(
          Object.entries((row.attributes ?? {}) as Record<string, unknown>)
            .filter(([, v]) => emptyErases || (v !== '' && v !== null))
            .map(([k, v]) => [k, v === '' ? null : v]),
        );
        const existing = (email && this.byEmail(email)) || (extId && this.byExtId(extId)) || undefined;
        if (existing && !updateExisting) continue;
        const record = existing ?? this.newContact({ email, ext_id: extId, attributes: {} });
        this.write(record, { attributes, listIds: lists });
      }
    };
    this.processes.set(id, { id, name: `import_contacts_${id}`, looks: 0, apply, applied: false });
    return [202, { processId: id }];
  }

  private process(id: number): [number, unknown] {
    const process = this.processes.get(id);
    if (!process) return [404, { code: 'document_not_found', message: 'Process does not exist' }];
    process.looks += 1;
    const done = process.looks > this.importLooks;
    if (done && !process.applied) {
      process.apply();
      process.applied = true;
    }
    return [200, { id, status: done ? 'completed' : process.looks === 1 ? 'queued' : 'in_process', name: process.name }];
  }

  // --- The store -----------------------------------------------------------------------------

  private newContact(init: { email?: string; ext_id?: string; attributes: Record<string, unknown> }): BrevoContactRecord {
    const now = new Date().toISOString();
    const record: BrevoContactRecord = { id: this.nextId++, email: init.email, ext_id: init.ext_id, emailBlacklisted: false, smsBlacklisted: false, listIds: [], attributes: { ...init.attributes }, createdAt: now, modifiedAt: now };
    this.contacts.set(record.id, record);
    return record;
  }

  /** Applies a create or update body: attributes (null clears one), EMAIL, ext_id, blacklists, lists. */
  private write(contact: BrevoContactRecord, body: Body): void {
    const attributes = (typeof body.attributes === 'object' && body.attributes !== null ? body.attributes : {}) as Record<string, unknown>;
    for (const [name, value] of Object.entries(attributes)) {
      if (name === 'EMAIL') {
        if (typeof value === 'string' && value) contact.email = value.trim().toLowerCase();
        continue;
      }
      if (value === null || value === '') delete contact.attributes[name];
      else contact.attributes[name] = value;
    }
    if (typeof body.email === 'string') contact.email = body.email.trim().toLowerCase();
    if (typeof body.ext_id === 'string') contact.ext_id = body.ext_id;
    if (typeof body.emailBlacklisted === 'boolean') contact.emailBlacklisted = body.emailBlacklisted;
    if (typeof body.smsBlacklisted === 'boolean') contact.smsBlacklisted = body.smsBlacklisted;
    if (Array.isArray(body.listIds)) contact.listIds = [...new Set([...contact.listIds, ...(body.listIds as number[])])];
    if (Array.isArray(body.unlinkListIds)) contact.listIds = contact.listIds.filter((l) => !(body.unlinkListIds as number[]).includes(l));
    contact.modifiedAt = new Date().toISOString();
  }

  /** /contacts/{identifier}: an email or an ID directly, or any identifierType. */
  private resolve(identifier: string, type: string | null): BrevoContactRecord | undefined {
    switch (type ?? (identifier.includes('@') ? 'email_id' : 'contact_id')) {
      case 'email_id':
        return this.byEmail(identifier);
      case 'contact_id':
        return this.contacts.get(Number(identifier));
      case 'ext_id':
        return this.byExtId(identifier);
      case 'phone_id':
        return this.bySms(identifier);
      default:
        return undefined;
    }
  }

  private byEmail(email: string): BrevoContactRecord | undefined {
    const wanted = email.trim().toLowerCase();
    return this.list().find((c) => c.email === wanted);
  }

  private byExtId(extId: string): BrevoContactRecord | undefined {
    return this.list().find((c) => c.ext_id === extId);
  }

  private bySms(sms: string): BrevoContactRecord | undefined {
    return this.list().find((c) => c.attributes.SMS === sms);
  }

  private invalid(email: string): boolean {
    return this.refused.has(email) || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email);
  }

  private view(c: BrevoContactRecord): Record<string, unknown> {
    return { id: c.id, email: c.email, ...(c.ext_id && { ext_id: c.ext_id }), emailBlacklisted: c.emailBlacklisted, smsBlacklisted: c.smsBlacklisted, createdAt: c.createdAt, modifiedAt: c.modifiedAt, listIds: c.listIds, attributes: c.attributes };
  }
}

function reply(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed) return;
  if (body === undefined || status === 204) {
    res.writeHead(status, headers).end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers }).end(JSON.stringify(body));
}
