/**
 * Receivers of ebb's notifications for the alert tests, each on 127.0.0.1 at a free port:
 * - a webhook receiver that verifies `X-Ebb-Signature: sha256=<hex>` = HMAC-SHA256(secret,
 *   "<X-Ebb-Timestamp>.<raw body>") in constant time, and a timestamp within 5 minutes (401 if not);
 * - a Slack-shaped receiver: an incoming webhook takes `{"text": ...}` as JSON and answers `ok`
 *   (400 `invalid_payload` otherwise), as Slack's does;
 * - an SMTP server (smtp-server) that keeps every message it accepts.
 * Each HTTP receiver can be "down": it answers 503 while `down` is true, or to the next `refuseNext` requests.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { SMTPServer } from 'smtp-server';

export interface Received {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json: Record<string, unknown>;
  /** The webhook's signature was valid (always true for Slack). */
  verified: boolean;
  status: number;
}

/** A webhook receiver (`/hook`) and a Slack-shaped one (`/services/T0/B0/slacktoken123`) on one server. */
export class HttpReceivers {
  readonly received: Received[] = [];
  /** Answer 503 to everything while true. */
  down = false;
  /** Answer 503 to this many requests more. */
  refuseNext = 0;
  /** Requests answered 503 while down. */
  refused = 0;
  url = '';
  private server!: Server;

  constructor(private readonly secret: string) {}

  static async start(secret: string): Promise<HttpReceivers> {
    const r = new HttpReceivers(secret);
    r.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        const answer = (status: number, text: string) => {
          res.writeHead(status, { 'content-type': 'text/plain' });
          res.end(text);
        };
        if (r.down || r.refuseNext > 0) {
          r.refuseNext = Math.max(0, r.refuseNext - 1);
          r.refused += 1;
          return answer(503, 'down');
        }
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(body) as Record<string, unknown>;
        } catch {
          return answer(400, 'invalid_payload');
        }
        const base = { path: req.url ?? '', headers: req.headers, body, json };
        if (req.url?.startsWith('/services/')) {
          const ok = req.headers['content-type']?.startsWith('application/json') && typeof json.text === 'string' && json.text.length > 0;
          r.received.push({ ...base, verified: true, status: ok ? 200 : 400 });
          return ok ? answer(200, 'ok') : answer(400, 'invalid_payload');
        }
        const verified = r.verify(String(req.headers['x-ebb-timestamp'] ?? ''), String(req.headers['x-ebb-signature'] ?? ''), body);
        r.received.push({ ...base, verified, status: verified ? 200 : 401 });
        answer(verified ? 200 : 401, verified ? 'ok' : 'bad signature');
      });
    });
    await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', resolve));
    r.url = `http://127.0.0.1:${(r.server.address() as AddressInfo).port}`;
    return r;
  }

  /** How a receiver checks a notification: the README's example, in TypeScript. */
  private verify(timestamp: string, signature: string, body: string): boolean {
    if (!/^\d+$/.test(timestamp) || Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) return false;
    const expected = Buffer.from(`sha256=${createHmac('sha256', this.secret).update(`${timestamp}.${body}`).digest('hex')}`);
    const given = Buffer.from(signature);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  /** The webhook notifications, in order of arrival. */
  webhooks(): Received[] {
    return this.received.filter((r) => r.path === '/hook');
  }

  slack(): Received[] {
    return this.received.filter((r) => r.path.startsWith('/services/'));
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export interface Mail {
  from: string;
  to: string[];
  data: string;
}

/** A local SMTP server without TLS or authentication, keeping every message. */
export class MailServer {
  readonly mails: Mail[] = [];
  port = 0;
  private server!: SMTPServer;

  static async start(): Promise<MailServer> {
    const m = new MailServer();
    m.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onData(stream, session, callback) {
        let data = '';
        stream.on('data', (c: Buffer) => (data += c.toString('utf8')));
        stream.on('end', () => {
          m.mails.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), data });
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => m.server.listen(0, '127.0.0.1', resolve));
    m.port = (m.server.server.address() as AddressInfo).port;
    return m;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
