/**
 * A small REST API on 127.0.0.1 for the http plugin's tests: contacts kept in a Map, a unique
 * email, and faults injected on demand (any status, a reset connection, no answer at all).
 *
 *   POST   /contacts      201 {id, ...} | 400 no email | 409 {id} duplicate email
 *   GET    /contacts/:id  200 | 404
 *   PATCH  /contacts/:id  200 {id, ...} | 404        (PUT alike)
 *   DELETE /contacts/:id  204 | 404
 *   POST   /events        202 "accepted" (a text body)
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A request as the server saw it. */
export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** An injected answer, used once by the next request whose path matches (any path if unset). */
export type Fault = { path?: string } & (
  | { status: number; headers?: Record<string, string>; body?: unknown }
  | { drop: 'reset' | 'hang' }
);

/** The running server. */
export class ContactsServer {
  readonly contacts = new Map<string, Record<string, unknown>>();
  readonly requests: SeenRequest[] = [];
  private readonly faults: Fault[] = [];
  private nextId = 1;
  /** The base URL, e.g. http://127.0.0.1:54321. */
  url = '';
  private readonly server = createServer((req, res) => {
    // A bug in a handler answers 500 rather than crashing the test run.
    this.handle(req, res).catch((e: unknown) => send(res, 500, { error: String(e) }));
  });

  /** Starts a server on a free port. */
  static async start(): Promise<ContactsServer> {
    const s = new ContactsServer();
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    s.url = `http://127.0.0.1:${(s.server.address() as AddressInfo).port}`;
    return s;
  }

  /** Makes a later request fail as described. */
  inject(fault: Fault): void {
    this.faults.push(fault);
  }

  /** Forgets every contact, request and fault, and numbers contacts from c1 again. */
  reset(): void {
    this.contacts.clear();
    this.requests.length = 0;
    this.faults.length = 0;
    this.nextId = 1;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve, reject) => this.server.close((e) => (e ? reject(e) : resolve())));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of req) body += String(chunk);
    const path = req.url ?? '/';
    const method = req.method ?? 'GET';
    this.requests.push({ method, path, headers: req.headers, body });

    const at = this.faults.findIndex((f) => f.path === undefined || f.path === path);
    if (at !== -1) {
      const [fault] = this.faults.splice(at, 1);
      if ('drop' in fault) {
        if (fault.drop === 'reset') req.socket.destroy();
        return; // 'hang': never answers; stop() closes the connection
      }
      return send(res, fault.status, fault.body, fault.headers);
    }

    if (path === '/events' && method === 'POST') {
      res.writeHead(202, { 'content-type': 'text/plain' }).end('accepted');
      return;
    }
    if (path === '/contacts' && method === 'POST') {
      const contact = JSON.parse(body) as Record<string, unknown>;
      if (typeof contact.email !== 'string') return send(res, 400, { error: 'email is required' });
      const existing = [...this.contacts].find(([, c]) => c.email === contact.email);
      if (existing) return send(res, 409, { error: 'duplicate email', id: existing[0] });
      const id = `c${this.nextId++}`;
      this.contacts.set(id, contact);
      return send(res, 201, { id, ...contact });
    }
    const match = /^\/contacts\/([^/?]+)$/.exec(path);
    if (!match) return send(res, 404, { error: `no route ${method} ${path}` });
    const id = decodeURIComponent(match[1]);
    const contact = this.contacts.get(id);
    if (!contact) return send(res, 404, { error: `no contact ${id}` });
    if (method === 'GET') return send(res, 200, { id, ...contact });
    if (method === 'DELETE') {
      this.contacts.delete(id);
      return send(res, 204);
    }
    if (method === 'PATCH' || method === 'PUT') {
      const updated = { ...(method === 'PATCH' ? contact : {}), ...(JSON.parse(body) as Record<string, unknown>) };
      this.contacts.set(id, updated);
      return send(res, 200, { id, ...updated });
    }
    return send(res, 405, { error: `method ${method} not allowed` });
  }
}

function send(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  if (body === undefined) {
    res.writeHead(status, headers).end();
    return;
  }
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const type = typeof body === 'string' ? 'text/plain' : 'application/json';
  res.writeHead(status, { 'content-type': type, ...headers }).end(text);
}
