/**
 * A flaky contacts app on 127.0.0.1, for delivery tests and the delivery benchmark: single and
 * batch endpoints, and every fault of a real app switchable at start and at run time (latency,
 * 5xx, 429 with Retry-After, enforced rate limits, reset connections, requests never answered,
 * records refused alone or a batch refused whole, 404 on update, 409 on a duplicate email).
 * Probabilistic faults draw from a seeded PRNG, so a test sees the same faults on every run.
 *
 *   POST   /contacts               201 {id, ...} | 400 no email | 422 bad record | 409 {message, id}
 *   PATCH  /contacts/:id           200 {id, ...} | 404 | 422 bad record
 *   DELETE /contacts/:id           204 | 404
 *   GET    /contacts?email=E       200 {id, ...} | 404   (a lookup by the unique email)
 *   POST   /contacts/batch/create  {inputs: [record]}                → 200 {results: [{id} | {error, id?}]}
 *   POST   /contacts/batch/update  {inputs: [{id, properties}]}      → 200 {results: [{id} | {error}]}
 *   POST   /contacts/batch/delete  {inputs: [{id}]}                  → 200 {results: [{id} | {error}]}
 *   A batch answers 422 as a whole instead when `rejectWholeBatch` is on and a record in it is bad.
 *
 * Every request is logged with its arrival time, headers and the records it carried, so that a test
 * can count creates per email, look for a record that must never arrive, or measure request rates.
 * Redirects (to another server: another origin) and non-JSON answers can be injected too.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

type Contact = Record<string, unknown>;

/** A fault that hits a request before the app looks at it. */
export interface Fault {
  /**
   * `error`: answer `status` (default 503); `rate_limit`: 429; `reset`: destroy the socket; `hang`:
   * never answer; `redirect`: answer `status` (default 307) with `Location: location`; `text`:
   * answer `status` (default 200) with `text` as an HTML body (not JSON).
   */
  kind: 'error' | 'rate_limit' | 'reset' | 'hang' | 'redirect' | 'text';
  /** Each matching request is hit with this probability (seeded PRNG). */
  probability?: number;
  /**
   * The first N requests that carry a given record (by email, else by id) are hit. With
   * `probability` too, each of those N is hit with that probability: faults that vary, but never
   * more than N per record.
   */
  firstPerRecord?: number;
  /** The first N matching requests are hit. */
  firstRequests?: number;
  /** Without probability, firstPerRecord or firstRequests, every matching request is hit. */
  status?: number;
  /** Sent as `Retry-After` (seconds) with a 429 or an error status. */
  retryAfterSeconds?: number;
  /** Only requests whose `METHOD path` matches, e.g. /^POST \/contacts$/. */
  match?: RegExp;
  /** Only requests that carry a record for which this is true (and only those records count). */
  only?: (record: Contact) => boolean;
  /** The app does the work first, then the answer is lost: the client cannot know it landed. */
  afterApply?: boolean;
  /** For `redirect`: the Location, e.g. another server's URL (another port is another origin). */
  location?: string;
  /** For `text`: the body. */
  text?: string;
}

/** The app's behaviour; every field can change while the server runs (`configure`). */
export interface FaultConfig {
  /** Milliseconds before each answer. */
  latencyMs: number;
  /** Checked in order for each request; the first that hits decides. */
  faults: Fault[];
  /**
   * An enforced rate limit: a request beyond `requests` in the last `perSeconds` is answered 429
   * with `Retry-After: retryAfterSeconds` (default: per_seconds).
   */
  rateLimit?: { requests: number; perSeconds: number; retryAfterSeconds?: number };
  /** A record the app refuses (422, or an error item in a batch). Default: its email contains "bad". */
  isBad: (record: Contact) => boolean;
  /** A batch with a bad record is refused whole (422) instead of item by item. */
  rejectWholeBatch: boolean;
  /** The seed of the PRNG of probabilistic faults. */
  seed: number;
}

/** A request as the app saw it. */
export interface ReceivedRequest {
  /** Arrival time, epoch milliseconds (with a fraction). */
  at: number;
  method: string;
  path: string;
  /** The records it carried (a batch's inputs; `{id}` for a delete). */
  records: Contact[];
  /** The body as it arrived, byte for byte (JSON.parse would round big numbers in `records`). */
  text: string;
  /** What it was answered; `reset` or `hang` for a dropped connection (set when answered). */
  answer?: number | 'reset' | 'hang';
  /** Its headers, as Node gives them (lower-case names). */
  headers: Record<string, string | string[] | undefined>;
}

const defaults: FaultConfig = {
  latencyMs: 0,
  faults: [],
  isBad: (record) => typeof record.email === 'string' && record.email.includes('bad'),
  rejectWholeBatch: false,
  seed: 42,
};

/** mulberry32: a small seeded PRNG with good enough spread for fault injection. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The running app. */
export class FaultServer {
  /** The contacts, by id. */
  readonly contacts = new Map<string, Contact>();
  /** Every request, in arrival order. */
  readonly requests: ReceivedRequest[] = [];
  /** Every contact the app created, in order: a second entry for one email is a duplicate. */
  readonly created: Array<{ id: string; email: unknown; at: number }> = [];
  config: FaultConfig;
  /** The base URL, e.g. http://127.0.0.1:54321. */
  url = '';
  private readonly byEmail = new Map<unknown, string>();
  private readonly seenPerFault = new Map<Fault, Map<string, number>>();
  private readonly hitsPerFault = new Map<Fault, number>();
  private readonly randoms = new Map<Fault, () => number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private nextId = 1;
  private readonly server = createServer((req, res) => {
    this.handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) reply(res, 500, { error: String(e) });
    });
  });

  private constructor(config: Partial<FaultConfig>) {
    this.config = { ...defaults, ...config };
  }

  /** Starts the app on a free port. */
  static async start(config: Partial<FaultConfig> = {}): Promise<FaultServer> {
    const s = new FaultServer(config);
    // The benchmark sends thousands of requests over kept-alive connections.
    s.server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    s.url = `http://127.0.0.1:${(s.server.address() as AddressInfo).port}`;
    return s;
  }

  /** Changes the app's behaviour from now on; a new fault list starts its counts afresh. */
  configure(config: Partial<FaultConfig>): void {
    this.config = { ...this.config, ...config };
  }

  /** Forgets contacts, requests and fault counts; keeps the config. */
  reset(): void {
    this.contacts.clear();
    this.byEmail.clear();
    this.requests.length = 0;
    this.created.length = 0;
    this.seenPerFault.clear();
    this.hitsPerFault.clear();
    this.nextId = 1;
    this.randoms.clear();
  }

  /**
   * Each fault draws from its own PRNG (the seed plus its place in the list): with firstPerRecord,
   * how many requests it hits then does not depend on the order in which requests arrive.
   */
  private random(fault: Fault): number {
    let random = this.randoms.get(fault);
    if (!random) this.randoms.set(fault, (random = prng(this.config.seed + this.config.faults.indexOf(fault))));
    return random();
  }

  async stop(): Promise<void> {
    // Answers still waiting out their latency are never sent: their connections close now.
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Puts a contact into the app behind ebb's back; returns its id. */
  insert(contact: Contact): string {
    const result = this.create(contact);
    if ('error' in result) throw new Error(result.error);
    return result.id;
  }

  /** Deletes a contact behind ebb's back. */
  forget(id: string): void {
    this.remove(id);
  }

  /** The id of the contact with this email. */
  idOf(email: string): string | undefined {
    return this.byEmail.get(email);
  }

  /** How many contacts the app created per email (more than 1 is a duplicate). */
  createdPerEmail(): Map<unknown, number> {
    const counts = new Map<unknown, number>();
    for (const { email } of this.created) counts.set(email, (counts.get(email) ?? 0) + 1);
    return counts;
  }

  /** Every record the app received, in order, with the request that carried it. */
  received(filter: (r: ReceivedRequest) => boolean = () => true): Contact[] {
    return this.requests.filter(filter).flatMap((r) => r.records);
  }

  /** The requests whose `METHOD path` matches. */
  requestsTo(match: RegExp): ReceivedRequest[] {
    return this.requests.filter((r) => match.test(`${r.method} ${r.path}`));
  }

  /** The largest number of requests that arrived within any window of `ms` milliseconds. */
  maxInWindow(ms: number, requests: ReceivedRequest[] = this.requests): number {
    const times = requests.map((r) => r.at).sort((a, b) => a - b);
    let best = 0;
    for (let hi = 0, lo = 0; hi < times.length; hi++) {
      while (times[hi] - times[lo] >= ms) lo++;
      best = Math.max(best, hi - lo + 1);
    }
    return best;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    // Sub-millisecond arrival times, for rate measurements over short windows.
    const at = performance.timeOrigin + performance.now();
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    let body: unknown = null;
    let malformed = false;
    try {
      body = text ? (JSON.parse(text) as unknown) : null;
    } catch {
      malformed = true;
    }
    const seen: ReceivedRequest = { at, method, path, records: recordsOf(path, method, body), headers: req.headers, text };
    this.requests.push(seen);
    if (malformed) return this.answer(seen, res, 400, { error: 'the body is not JSON' });

    const limited = this.rateLimited(at);
    if (limited) return this.answer(seen, res, 429, { error: 'rate limit exceeded' }, { 'retry-after': String(limited) });
    const fault = this.faultFor(seen);
    if (fault && !fault.afterApply) return this.fail(fault, seen, req, res);
    const [status, answer] = this.route(method, path, body);
    if (fault) return this.fail(fault, seen, req, res);
    return this.answer(seen, res, status, answer);
  }

  private async fail(fault: Fault, seen: ReceivedRequest, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (fault.kind === 'reset') {
      seen.answer = 'reset';
      await this.wait();
      req.socket.destroy();
      return;
    }
    if (fault.kind === 'hang') {
      seen.answer = 'hang'; // stop() or the client's timeout closes the connection
      return;
    }
    if (fault.kind === 'redirect') return this.answer(seen, res, fault.status ?? 307, undefined, { location: fault.location ?? '/' });
    if (fault.kind === 'text') {
      seen.answer = fault.status ?? 200;
      await this.wait();
      if (!res.destroyed) res.writeHead(seen.answer, { 'content-type': 'text/html' }).end(fault.text ?? '');
      return;
    }
    const status = fault.kind === 'rate_limit' ? 429 : (fault.status ?? 503);
    const headers: Record<string, string> = fault.retryAfterSeconds === undefined ? {} : { 'retry-after': String(fault.retryAfterSeconds) };
    return this.answer(seen, res, status, { error: fault.kind === 'rate_limit' ? 'too many requests' : 'the app is unavailable' }, headers);
  }

  private async answer(seen: ReceivedRequest, res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): Promise<void> {
    seen.answer = status;
    await this.wait();
    reply(res, status, body, headers);
  }

  private wait(): Promise<void> | void {
    if (this.config.latencyMs <= 0) return;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        resolve();
      }, this.config.latencyMs);
      this.timers.add(timer);
    });
  }

  /** Seconds to wait when the enforced rate limit is exceeded, else 0. */
  private rateLimited(now: number): number {
    const limit = this.config.rateLimit;
    if (!limit) return 0;
    const since = now - limit.perSeconds * 1000;
    let inWindow = 0;
    for (let i = this.requests.length - 2; i >= 0 && this.requests[i].at > since; i--) if (this.requests[i].answer !== 429) inWindow++;
    return inWindow >= limit.requests ? (limit.retryAfterSeconds ?? limit.perSeconds) : 0;
  }

  private faultFor(seen: ReceivedRequest): Fault | undefined {
    const line = `${seen.method} ${seen.path}`;
    for (const fault of this.config.faults) {
      if (fault.match && !fault.match.test(line)) continue;
      const records = fault.only ? seen.records.filter(fault.only) : seen.records;
      if (fault.only && records.length === 0) continue;
      if (fault.firstPerRecord !== undefined) {
        let seenCounts = this.seenPerFault.get(fault);
        if (!seenCounts) this.seenPerFault.set(fault, (seenCounts = new Map()));
        let early = false;
        for (const record of records) {
          const id = String(record.email ?? record.id);
          const n = seenCounts.get(id) ?? 0;
          seenCounts.set(id, n + 1);
          if (n < fault.firstPerRecord) early = true;
        }
        if (early && (fault.probability === undefined || this.random(fault) < fault.probability)) return fault;
      } else if (fault.firstRequests !== undefined) {
        const n = this.hitsPerFault.get(fault) ?? 0;
        this.hitsPerFault.set(fault, n + 1);
        if (n < fault.firstRequests) return fault;
      } else if (fault.probability !== undefined) {
        if (this.random(fault) < fault.probability) return fault;
      } else return fault;
    }
    return undefined;
  }

  private route(method: string, path: string, body: unknown): [number, unknown?] {
    const batch = /^\/contacts\/batch\/(create|update|delete)$/.exec(path);
    if (batch && method === 'POST') {
      const inputs = (body as { inputs?: unknown } | null)?.inputs;
      if (!Array.isArray(inputs)) return [400, { error: 'the body needs inputs: a list' }];
      return this.batch(batch[1] as 'create' | 'update' | 'delete', inputs as Contact[]);
    }
    if (path === '/contacts' && method === 'POST') {
      const contact = body as Contact;
      if (typeof contact?.email !== 'string') return [400, { error: 'email is required' }];
      const result = this.create(contact);
      if ('error' in result) return [result.id ? 409 : 422, result.id ? { message: result.error, id: result.id } : { error: result.error }];
      return [201, { id: result.id, ...contact }];
    }
    const lookup = /^\/contacts\?email=([^&]*)$/.exec(path);
    if (lookup && method === 'GET') {
      const id = this.byEmail.get(decodeURIComponent(lookup[1]));
      return id === undefined ? [404, { error: 'no contact with this email' }] : [200, { id, ...this.contacts.get(id) }];
    }
    const single = /^\/contacts\/([^/?]+)$/.exec(path);
    if (!single) return [404, { error: `no route ${method} ${path}` }];
    const id = decodeURIComponent(single[1]);
    if (method === 'PATCH') {
      const result = this.update(id, body as Contact);
      if ('error' in result) return [result.error === 'not found' ? 404 : 422, { error: result.error }];
      return [200, { id, ...this.contacts.get(id) }];
    }
    if (method === 'DELETE') {
      const result = this.remove(id);
      return 'error' in result ? [404, { error: result.error }] : [204];
    }
    return [405, { error: `method ${method} not allowed` }];
  }

  private batch(action: 'create' | 'update' | 'delete', inputs: Contact[]): [number, unknown] {
    if (this.config.rejectWholeBatch && action !== 'delete') {
      const bad = inputs.findIndex((input) => this.config.isBad(action === 'update' ? ((input.properties ?? {}) as Contact) : input));
      if (bad !== -1) return [422, { error: 'invalid email', index: bad }];
    }
    const results = inputs.map((input) => {
      if (action === 'create') return this.create(input);
      if (action === 'update') return this.update(String(input.id), (input.properties ?? {}) as Contact);
      return this.remove(String(input.id));
    });
    return [200, { results }];
  }

  private create(contact: Contact): { id: string } | { error: string; id?: string } {
    if (this.config.isBad(contact)) return { error: 'invalid email' };
    const existing = this.byEmail.get(contact.email);
    if (existing !== undefined) return { error: `already exists (id ${existing})`, id: existing };
    const id = `c${this.nextId++}`;
    this.contacts.set(id, { ...contact });
    this.byEmail.set(contact.email, id);
    this.created.push({ id, email: contact.email, at: Date.now() });
    return { id };
  }

  private update(id: string, fields: Contact): { id: string } | { error: string } {
    const contact = this.contacts.get(id);
    if (!contact) return { error: 'not found' };
    if (this.config.isBad(fields)) return { error: 'invalid email' };
    if ('email' in fields && fields.email !== contact.email) {
      this.byEmail.delete(contact.email);
      this.byEmail.set(fields.email, id);
    }
    this.contacts.set(id, { ...contact, ...fields });
    return { id };
  }

  private remove(id: string): { id: string } | { error: string } {
    const contact = this.contacts.get(id);
    if (!contact) return { error: 'not found' };
    this.contacts.delete(id);
    this.byEmail.delete(contact.email);
    return { id };
  }
}

/** The records a request carries: a single record, a batch's inputs, or the id of a delete. */
function recordsOf(path: string, method: string, body: unknown): Contact[] {
  const inputs = (body as { inputs?: unknown } | null)?.inputs;
  if (path.startsWith('/contacts/batch/') && Array.isArray(inputs)) {
    return (inputs as Contact[]).map((input) => (typeof input.properties === 'object' && input.properties !== null ? { id: input.id, ...(input.properties as Contact) } : input));
  }
  if (body && typeof body === 'object' && !Array.isArray(body)) {
    const id = /^\/contacts\/([^/?]+)$/.exec(path)?.[1];
    return [{ ...(id && { id: decodeURIComponent(id) }), ...(body as Contact) }];
  }
  const id = /^\/contacts\/([^/?]+)$/.exec(path)?.[1];
  return method === 'DELETE' && id ? [{ id: decodeURIComponent(id) }] : [];
}

function reply(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed) return;
  if (body === undefined) {
    res.writeHead(status, headers).end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}
