/**
 * The contacts API of contacts-server.ts behind a slow front door, for the crash tests: every
 * request waits a few milliseconds before it reaches the app and again before its answer leaves,
 * so that a run lasts long enough to be killed in the middle. Every exchange is logged with its
 * answer, which tells how many contacts each email really got.
 *
 * A request that reached the app is carried out even if the client is gone (killed) before the
 * answer: that is the case crash safety is about. `GET /contacts?email=E` finds a contact by its
 * email (200 with it, or 404), for the lookup of records in doubt.
 */
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { ContactsServer } from './contacts-server.ts';

/** One request and the app's answer to it. */
export interface Exchange {
  method: string;
  path: string;
  body: Record<string, unknown> | null;
  status: number;
  answer: Record<string, unknown> | null;
}

export class SlowContacts {
  /** The requests that reached the app, in the order the app answered them. */
  readonly exchanges: Exchange[] = [];
  /** Emits `arrived` when a request comes in, and `landed` (with it) once the app has carried it out. */
  readonly events = new EventEmitter<{ arrived: []; landed: [Exchange] }>();
  url = '';
  private inFlight = 0;
  private readonly server = createServer((req, res) => {
    this.handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(502).end();
    });
  });

  private constructor(
    readonly app: ContactsServer,
    /** The delay in milliseconds added before and after the app: [min, max]. */
    private readonly latencyMs: [number, number],
  ) {}

  static async start(latencyMs: [number, number] = [2, 10]): Promise<SlowContacts> {
    const s = new SlowContacts(await ContactsServer.start(), latencyMs);
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    s.url = `http://127.0.0.1:${(s.server.address() as AddressInfo).port}`;
    return s;
  }

  /** The contacts the app holds, by email (without their ids). */
  byEmail(): Map<string, Record<string, unknown>> {
    const out = new Map<string, Record<string, unknown>>();
    for (const contact of this.app.contacts.values()) out.set(String(contact.email), contact);
    return out;
  }

  /** Resolves once no request is being handled (the app has carried out everything it got). */
  async idle(): Promise<void> {
    while (this.inFlight > 0) await sleep(5);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.app.stop();
  }

  /** The answer to a lookup by email: the contact, or 404. */
  private lookup(email: string): Response {
    const found = [...this.app.contacts].find(([, c]) => c.email === email);
    const headers = { 'content-type': 'application/json' };
    return found ? new Response(JSON.stringify({ id: found[0], ...found[1] }), { status: 200, headers }) : new Response(JSON.stringify({ error: 'not found' }), { status: 404, headers });
  }

  private delay(): Promise<void> {
    const [min, max] = this.latencyMs;
    return sleep(min + Math.random() * (max - min));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.inFlight += 1;
    try {
      this.events.emit('arrived');
      let text = '';
      for await (const chunk of req) text += String(chunk);
      await this.delay();
      const found = /^\/contacts\?email=([^&]*)$/.exec(req.url ?? '');
      const forwarded = found
        ? this.lookup(decodeURIComponent(found[1]))
        : await fetch(this.app.url + (req.url ?? '/'), {
            method: req.method,
            headers: text ? { 'content-type': 'application/json' } : {},
            body: text || undefined,
          });
      const answerText = await forwarded.text();
      const exchange: Exchange = {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        body: text ? (JSON.parse(text) as Record<string, unknown>) : null,
        status: forwarded.status,
        answer: answerText && forwarded.headers.get('content-type')?.includes('json') ? (JSON.parse(answerText) as Record<string, unknown>) : null,
      };
      this.exchanges.push(exchange);
      this.events.emit('landed', exchange);
      await this.delay();
      // The client may be gone (killed): the app did its part anyway.
      res.on('error', () => undefined);
      if (!res.destroyed) res.writeHead(forwarded.status, { 'content-type': forwarded.headers.get('content-type') ?? 'text/plain' }).end(answerText);
    } finally {
      this.inFlight -= 1;
    }
  }
}
