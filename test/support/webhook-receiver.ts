/**
 * A webhook receiver on 127.0.0.1 for the `webhook` plugin's tests: it implements the receiving
 * side of the contract that docs/destinations/webhook.md documents, the way a receiver should.
 *
 * - Verifies every request: `X-Ebb-Timestamp` within 5 minutes of now, and `X-Ebb-Signature:
 *   sha256=<hex>` equal (constant-time) to HMAC-SHA256(secret, "<timestamp>.<raw body>"); 401 if not.
 * - Reads the envelope {key, action, object, sync, app_id, sent_at, data}, or a JSON array of them.
 * - Keeps the records like a small app: create → 201 {id} (409 {error, id} when a record with the
 *   same email exists), update and clear → 200 {id}, delete → 200, each found by app_id, or
 *   without one by key, then by email (404 when none), send → 202, stored by key; ping → 200.
 * - Drops a repeated delivery: a 2xx answer is remembered by `Idempotency-Key` and sent again.
 * - Faults: 429 with Retry-After, a record refused with 422 (a batch holding it is refused whole),
 *   5xx, and the request log.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHmac, timingSafeEqual } from 'node:crypto';

type Data = Record<string, unknown>;

/** An event as the plugin sends it, with its default envelope. */
export interface WebhookEvent {
  key: string;
  action: string;
  object?: string;
  sync?: string;
  app_id?: string | null;
  sent_at?: string;
  data: Data;
}

/** A request as the receiver saw it. */
export interface ReceivedWebhook {
  at: number;
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** Whether the signature and timestamp were valid. */
  verified: boolean;
  status?: number;
}

export interface ReceiverOptions {
  secret: string;
  /** Header names, if the sync changed them. */
  signatureHeader?: string;
  timestampHeader?: string;
  /** How old a timestamp may be, in seconds. */
  toleranceSeconds?: number;
}

/** A stored record. */
interface Stored {
  id: string;
  key: string;
  data: Data;
}

export class WebhookReceiver {
  url = '';
  readonly requests: ReceivedWebhook[] = [];
  /** The records, by id. */
  readonly records = new Map<string, Stored>();
  /** Every event that was applied, in order. */
  readonly events: WebhookEvent[] = [];
  private readonly answered = new Map<string, [number, unknown]>();
  private readonly rejected = new Set<string>();
  private rateLimits = 0;
  private retryAfterSeconds = 1;
  private failures: number[] = [];
  private nextId = 1;
  private readonly server = createServer((req, res) => {
    this.handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) reply(res, 500, { error: String(e) });
    });
  });

  private constructor(private readonly options: ReceiverOptions) {}

  static async start(options: ReceiverOptions): Promise<WebhookReceiver> {
    const r = new WebhookReceiver(options);
    await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', resolve));
    r.url = `http://127.0.0.1:${(r.server.address() as AddressInfo).port}`;
    return r;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The next `count` requests answer 429 with `Retry-After: seconds`. */
  rateLimit(count = 1, seconds = 1): void {
    this.rateLimits += count;
    this.retryAfterSeconds = seconds;
  }

  /** Events whose data has this email are refused with 422. */
  rejectEmail(email: string): void {
    this.rejected.add(email);
  }

  /** The next requests answer these statuses. */
  fail(...statuses: number[]): void {
    this.failures.push(...statuses);
  }

  clearFaults(): void {
    this.rejected.clear();
    this.rateLimits = 0;
    this.failures = [];
  }

  reset(): void {
    this.records.clear();
    this.requests.length = 0;
    this.events.length = 0;
    this.answered.clear();
    this.nextId = 1;
    this.clearFaults();
  }

  /** Puts a record in behind ebb's back; returns its id. */
  insert(key: string, data: Data): string {
    const id = `r${this.nextId++}`;
    this.records.set(id, { id, key, data });
    return id;
  }

  /** The records' data. */
  list(): Data[] {
    return [...this.records.values()].map((r) => r.data);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const seen: ReceivedWebhook = { at: Date.now(), method: req.method ?? 'POST', path: req.url ?? '/', headers: req.headers, body, verified: this.verify(req, body) };
    this.requests.push(seen);
    const answer = (status: number, payload?: unknown, headers: Record<string, string> = {}) => {
      seen.status = status;
      reply(res, status, payload, headers);
    };
    if (!seen.verified) return answer(401, { error: 'invalid signature or timestamp' });
    if (this.rateLimits > 0) {
      this.rateLimits--;
      return answer(429, { error: 'rate limited' }, { 'retry-after': String(this.retryAfterSeconds) });
    }
    const failure = this.failures.shift();
    if (failure !== undefined) return answer(failure, { error: 'the receiver is unavailable' });

    const key = String(req.headers['idempotency-key'] ?? '');
    const repeat = key ? this.answered.get(key) : undefined;
    if (repeat) return answer(repeat[0], repeat[1]);

    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return answer(400, { error: 'the body is not JSON' });
    }
    const events = (Array.isArray(parsed) ? parsed : [parsed]) as WebhookEvent[];
    if (events.length === 1 && events[0].action === 'ping') return answer(200, { ok: true });
    const bad = events.find((e) => typeof e.data?.email === 'string' && this.rejected.has(e.data.email));
    if (bad) return answer(422, { error: `invalid email ${String(bad.data.email)}`, key: bad.key });

    // A batch is applied whole or not at all.
    const before = new Map([...this.records].map(([id, r]) => [id, { ...r }]));
    const applied = this.events.length;
    const results: Array<[number, unknown]> = [];
    for (const event of events) {
      const result = this.apply(event);
      results.push(result);
      if (result[0] >= 300) break;
    }
    let status: number;
    let payload: unknown;
    if (!Array.isArray(parsed)) [status, payload] = results[0];
    else {
      const refusal = results.find((r) => r[0] >= 300);
      [status, payload] = refusal ?? [200, results.map((r) => r[1])];
      if (refusal) {
        this.records.clear();
        for (const [id, r] of before) this.records.set(id, r);
        this.events.length = applied;
      }
    }
    if (key && status < 300) this.answered.set(key, [status, payload]);
    return answer(status, payload);
  }

  private apply(event: WebhookEvent): [number, unknown] {
    const byEmail = (email: unknown, except?: string) => [...this.records.values()].find((r) => r.id !== except && email !== undefined && r.data.email === email);
    switch (event.action) {
      case 'create': {
        const existing = byEmail(event.data.email);
        if (existing) return [409, { error: 'a record with this email exists', id: existing.id }];
        const id = this.insert(event.key, event.data);
        this.events.push(event);
        return [201, { id }];
      }
      case 'update':
      case 'clear': {
        const stored = this.target(event);
        if (!stored) return [404, { error: `no record ${String(event.app_id)}` }];
        if (event.action === 'update' && byEmail(event.data.email, stored.id)) return [409, { error: 'another record has this email', id: byEmail(event.data.email, stored.id)!.id }];
        stored.data = event.data;
        this.events.push(event);
        return [200, { id: stored.id }];
      }
      case 'delete': {
        const stored = this.target(event);
        if (!stored) return [404, { error: `no record ${String(event.app_id)}` }];
        this.records.delete(stored.id);
        this.events.push(event);
        return [200, { id: stored.id }];
      }
      case 'send': {
        const stored = [...this.records.values()].find((r) => r.key === event.key);
        if (stored) stored.data = event.data;
        else this.insert(event.key, event.data);
        this.events.push(event);
        return [202, { received: true }];
      }
      default:
        return [400, { error: `unknown action ${event.action}` }];
    }
  }

  /** The record an update, clear or delete is about: by app_id, else (ebb knows no id yet) by key, then by email. */
  private target(event: WebhookEvent): Stored | undefined {
    if (event.app_id) return this.records.get(event.app_id);
    const records = [...this.records.values()];
    return records.find((r) => r.key === event.key) ?? records.find((r) => event.data.email !== undefined && event.data.email !== null && r.data.email === event.data.email);
  }

  /** The receiver's check, as docs/destinations/webhook.md tells receivers to do it. */
  private verify(req: IncomingMessage, body: string): boolean {
    const timestamp = String(req.headers[(this.options.timestampHeader ?? 'X-Ebb-Timestamp').toLowerCase()] ?? '');
    const signature = String(req.headers[(this.options.signatureHeader ?? 'X-Ebb-Signature').toLowerCase()] ?? '');
    if (!/^\d+$/.test(timestamp) || Math.abs(Date.now() / 1000 - Number(timestamp)) > (this.options.toleranceSeconds ?? 300)) return false;
    const expected = `sha256=${createHmac('sha256', this.options.secret).update(`${timestamp}.${body}`).digest('hex')}`;
    return signature.length === expected.length && timingSafeEqual(Buffer.from(signature), Buffer.from(expected));
  }
}

function reply(res: ServerResponse, status: number, payload?: unknown, headers: Record<string, string> = {}): void {
  if (payload === undefined) {
    res.writeHead(status, headers).end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(payload));
}
