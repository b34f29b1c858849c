/**
 * A CRM on 127.0.0.1 for end-to-end tests of `ebb run` with the http plugin: contacts in a Map,
 * a unique email, every request logged, and faults decided per request by rules (reject one
 * email, fail each record once, echo the credentials back...).
 *
 *   POST   /contacts      201 {id} | 409 {id} when the email exists
 *   PATCH  /contacts/:id  200 {id} | 404
 *   DELETE /contacts/:id  204 | 404
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A request as the app saw it; `body` is parsed JSON (null without a body). */
export interface CrmRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown> | null;
}

/** An answer that a rule imposes instead of the normal one. */
export interface CrmAnswer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** Looks at a request before the app does; an answer short-circuits it. */
export type Rule = (request: CrmRequest) => CrmAnswer | undefined;

/** The running app. */
export class CrmApp {
  readonly contacts = new Map<string, Record<string, unknown>>();
  readonly requests: CrmRequest[] = [];
  /** Checked in order for every request; the first answer wins. */
  rules: Rule[] = [];
  url = '';
  private nextId = 1;
  private readonly server = createServer((req, res) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    req.on('end', () => {
      const request: CrmRequest = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : null };
      this.requests.push(request);
      const answer = this.rules.map((rule) => rule(request)).find(Boolean) ?? this.answer(request);
      reply(res, answer);
    });
  });

  static async start(): Promise<CrmApp> {
    const app = new CrmApp();
    await new Promise<void>((resolve) => app.server.listen(0, '127.0.0.1', resolve));
    app.url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    return app;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Adds a contact as if someone else had created it; returns its id. */
  seed(contact: Record<string, unknown>): string {
    const id = `c${this.nextId++}`;
    this.contacts.set(id, contact);
    return id;
  }

  /** The contacts by email, without their ids: what the app holds. */
  byEmail(): Record<string, Record<string, unknown>> {
    return Object.fromEntries([...this.contacts.values()].map((c) => [String(c.email), c]));
  }

  /** The id of the contact with this email. */
  idOf(email: string): string | undefined {
    return [...this.contacts].find(([, c]) => c.email === email)?.[0];
  }

  /** The emails of the records sent in requests (method and path optional filters). */
  sentEmails(method?: string): string[] {
    return this.requests.filter((r) => !method || r.method === method).map((r) => String(r.body?.email));
  }

  private answer({ method, path: url, body }: CrmRequest): CrmAnswer {
    const path = url.split('?')[0];
    if (method === 'POST' && path === '/contacts') {
      const existing = [...this.contacts].find(([, c]) => c.email === body?.email);
      if (existing) return { status: 409, body: { error: 'duplicate email', id: existing[0] } };
      return { status: 201, body: { id: this.seed(body ?? {}) } };
    }
    const id = /^\/contacts\/([^/?]+)$/.exec(path)?.[1];
    if (!id || !this.contacts.has(decodeURIComponent(id))) return { status: 404, body: { error: `no contact at ${path}` } };
    const key = decodeURIComponent(id);
    if (method === 'DELETE') {
      this.contacts.delete(key);
      return { status: 204 };
    }
    if (method === 'PATCH') {
      this.contacts.set(key, { ...this.contacts.get(key), ...body });
      return { status: 200, body: { id: key } };
    }
    return { status: 405, body: { error: `${method} not allowed` } };
  }
}

/** A rule: requests that carry one of these emails are answered with `status` (422 by default). */
export function rejectEmails(emails: Iterable<string>, status = 422): Rule {
  const set = new Set(emails);
  return (r) => (set.has(String(r.body?.email)) ? { status, body: { error: `invalid email ${String(r.body?.email)}` } } : undefined);
}

/** A rule: the first request of each email is answered with `status` (503 by default). */
export function failOncePerRecord(status = 503): Rule {
  const seen = new Set<string>();
  return (r) => {
    const email = String(r.body?.email);
    if (seen.has(email)) return undefined;
    seen.add(email);
    return { status, body: { error: 'try again' } };
  };
}

/** The requests templates of a sync to this app (SPEC §6). */
export const crmRequests = {
  create: { method: 'POST', path: '/contacts', body: '{{ record | tojson }}', app_id: '{{ response.id }}' },
  update: { method: 'PATCH', path: '/contacts/{{ app_id }}', body: '{{ record | tojson }}' },
  delete: { method: 'DELETE', path: '/contacts/{{ app_id }}' },
};

function reply(res: ServerResponse, { status, body, headers = {} }: CrmAnswer): void {
  if (body === undefined) res.writeHead(status, headers).end();
  else res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}
