/**
 * A small CRM for the demo (`npm run demo`): contacts kept in memory, behind a bearer token.
 *
 *   GET    /               200 ok (what `ebb check` reaches)
 *   POST   /contacts       201 {id}; 409 {"message":"contact exists","id":...} when the email is taken
 *   GET    /contacts/:id   200 the contact; 404 when unknown
 *   PATCH  /contacts/:id   200 the contact; 404 when unknown; 409 when the new email belongs to another contact
 *   DELETE /contacts/:id   204; 404 when unknown
 *
 * Every request needs `Authorization: Bearer <token>` (401 without one). Set CRM_LOG=1 to log requests.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Contact = Record<string, unknown> & { id: string };

export interface Crm {
  port: number;
  /** The contacts by id; the demo reads it to count what the CRM holds. */
  contacts: Map<string, Contact>;
  close: () => Promise<void>;
}

export interface CrmOptions {
  /** The bearer token to require; any non-empty token when not set. */
  token?: string;
  /** Log each request to stderr (default: the CRM_LOG environment variable). */
  log?: boolean;
}

/** Starts the CRM on 127.0.0.1, on a free port. */
export async function startCrm(options: CrmOptions = {}): Promise<Crm> {
  const contacts = new Map<string, Contact>();
  const log = options.log ?? Boolean(process.env.CRM_LOG);
  let nextId = 1;

  const byEmail = (email: unknown, except?: string): Contact | undefined => {
    if (typeof email !== 'string') return undefined;
    for (const c of contacts.values()) if (c.id !== except && c.email === email) return c;
    return undefined;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? 'GET';
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const send = (status: number, body?: unknown) => {
      if (log) process.stderr.write(`crm: ${method} ${path} -> ${status}\n`);
      if (body === undefined) {
        res.writeHead(status).end();
        return;
      }
      if (typeof body === 'string') res.writeHead(status, { 'content-type': 'text/plain' }).end(body);
      else res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };

    const auth = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (!auth || (options.token !== undefined && auth[1] !== options.token)) return send(401, { message: 'missing or invalid bearer token' });

    if (path === '/') return method === 'GET' ? send(200, 'ok') : send(405, { message: 'method not allowed' });

    if (path === '/contacts' && method === 'POST') {
      const body = await readJson(req);
      if (!body) return send(400, { message: 'the body must be a JSON object' });
      const existing = byEmail(body.email);
      if (existing) return send(409, { message: 'contact exists', id: existing.id });
      const id = String(nextId++);
      contacts.set(id, { ...body, id });
      return send(201, { id });
    }

    const match = /^\/contacts\/([^/]+)$/.exec(path);
    if (!match) return send(404, { message: `no route ${method} ${path}` });
    const id = decodeURIComponent(match[1]);
    const contact = contacts.get(id);
    if (!contact) return send(404, { message: `contact ${id} not found` });
    switch (method) {
      case 'GET':
        return send(200, contact);
      case 'PATCH': {
        const body = await readJson(req);
        if (!body) return send(400, { message: 'the body must be a JSON object' });
        const other = byEmail(body.email, id);
        if (other) return send(409, { message: 'contact exists', id: other.id });
        const updated = { ...contact, ...body, id };
        contacts.set(id, updated);
        return send(200, updated);
      }
      case 'DELETE':
        contacts.delete(id);
        return send(204);
      default:
        return send(405, { message: 'method not allowed' });
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: e instanceof Error ? e.message : String(e) }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    contacts,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((e) => (e ? reject(e) : resolve()));
      }),
  };
}

/** The request's body as a JSON object, or undefined when it is not one. */
async function readJson(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  try {
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
