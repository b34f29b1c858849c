/**
 * The HTTP helpers the API plugins (http, webhook, salesforce, hubspot, brevo) share: one request
 * that never throws, how an answer's body and `Retry-After` read, and an error or a body on one line;
 * and, for the generic ones (http, webhook), what a status means. What an app's own error bodies
 * mean stays in its plugin.
 */
import type { Readable, Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type * as UndiciModule from 'undici';
import { importModule } from '../../engine/import-module.ts';
import { redact } from '../../engine/redact.ts';
import { idText, parseJson } from './json.ts';
import type { Action, Change, ErrorKind, Outcome, PluginContext } from '../plugin.ts';

/** The most of an answer's body that ebb reads (1 MiB); past it, the body is cut and `capped` is set. */
export const maxAnswerBytes = 1024 * 1024;

/** Error codes of a connection that was never made: the request did not leave. */
const notSent = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * An HTTP answer (its body parsed as JSON where it is JSON; `capped` when ebb stopped reading it at
 * the cap), or no answer ebb can use: a transport failure (timeout, reset, refused connection:
 * `transient`) or a redirect (`rejected`, see {@link send}). `sent` is false when the request never
 * reached the app (refused, DNS, no route).
 */
export type Answer = { status: number; headers: Headers; text: string; body: unknown; capped: boolean } | { failure: string; kind: 'transient' | 'rejected'; sent: boolean };

/** What a plugin sends: a method (GET by default), headers and a body of text. */
export interface Outgoing {
  method?: string;
  headers?: HeadersInit;
  body?: string;
}

type Undici = typeof UndiciModule;
let undici: Promise<Undici> | undefined;

/**
 * {@link send} under the connection's rate limit and concurrency (`ctx.schedule`). A request that
 * the limiter did not send because it is gone (Redis lost) is a failure that never reached the
 * app: the other requests of a batch keep their answers, and the engine ends the run.
 */
export async function sendScheduled(ctx: Pick<PluginContext<unknown>, 'schedule'>, url: string | URL, init: Outgoing, timeoutMs: number, maxBytes?: number): Promise<Answer> {
  let started = false;
  try {
    return await ctx.schedule(() => {
      started = true;
      return send(url, init, timeoutMs, maxBytes);
    });
  } catch (e) {
    if (started) throw e;
    return { failure: `not sent: ${errorText(e)}`, kind: 'transient', sent: false };
  }
}

/**
 * Sends one request; never throws, so that only the engine's own errors leave `schedule`. It goes
 * through undici's `request`: a thousand batch requests to a local app took half the CPU they take
 * through `fetch`, which wraps every body in WHATWG streams. undici is loaded on the first request,
 * not with the command.
 *
 * Redirects are never followed: fetch would resend a 301/302/303 as a GET without its body (an
 * app that never got the record would count as a success), and a redirect may point at another
 * origin, which must never see the request's credentials. A 3xx is a failure that names its
 * `Location`. The body is read up to `maxBytes` (default {@link maxAnswerBytes}), and inflated
 * if the app compressed it (ebb does not ask for compression, but a header of the connection may).
 */
export async function send(url: string | URL, init: Outgoing, timeoutMs: number, maxBytes = maxAnswerBytes): Promise<Answer> {
  try {
    const { request } = await (undici ??= importModule<Undici>('undici'));
    // A copy: the caller's headers are its own.
    const headers = new Headers(init.headers);
    // fetch said `node`; request says nothing, and some gateways refuse a request without one.
    if (!headers.has('user-agent')) headers.set('user-agent', 'ebb');
    const res = await request(url, {
      method: (init.method ?? 'GET') as UndiciModule.Dispatcher.HttpMethod,
      headers,
      body: init.body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const answered = answerHeaders(res.headers);
    if (res.statusCode >= 300 && res.statusCode < 400) {
      await res.body.dump();
      const location = answered.get('location');
      return {
        failure: `answered ${res.statusCode} with a redirect to ${location ?? '(no Location)'}, which ebb does not follow: set the connection's URL to the address the app answers at`,
        kind: 'rejected',
        sent: true,
      };
    }
    const { text, capped } = await readCapped(res.body, answered, maxBytes);
    return { status: res.statusCode, headers: answered, text, body: capped ? text : parseBody(text), capped };
  } catch (e) {
    if (e instanceof Error && e.name === 'TimeoutError') return { failure: `no answer within ${timeoutMs} ms`, kind: 'transient', sent: true };
    return { failure: errorText(e), kind: 'transient', sent: !notSent.has(errorCode(e) ?? '') };
  }
}

/** An answer's headers as the plugins read them (`get`, `has`). */
function answerHeaders(raw: Record<string, string | string[] | undefined>): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else if (value !== undefined) headers.append(name, value);
  }
  return headers;
}

/** The decompressors of the encodings fetch would have inflated. */
const inflaters: Record<string, () => Transform> = { gzip: createGunzip, 'x-gzip': createGunzip, deflate: createInflate, br: createBrotliDecompress };

/** An answer's body as text, read up to `maxBytes` bytes: an app cannot make ebb hold more in memory. */
async function readCapped(body: Readable & { text(): Promise<string> }, headers: Headers, maxBytes: number): Promise<{ text: string; capped: boolean }> {
  const encoding = headers.get('content-encoding')?.trim().toLowerCase();
  const inflate = encoding ? inflaters[encoding] : undefined;
  // An answer that says its length, within the cap, is read at once.
  const length = Number(headers.get('content-length') ?? NaN);
  if (!inflate && length >= 0 && length <= maxBytes) return { text: await body.text(), capped: false };
  const source: Readable = inflate ? body.pipe(inflate()) : body;
  const decoder = new TextDecoder();
  let text = '';
  let read = 0;
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      if (read + chunk.byteLength > maxBytes) {
        text += decoder.decode(chunk.subarray(0, maxBytes - read));
        return { text, capped: true };
      }
      read += chunk.byteLength;
      text += decoder.decode(chunk, { stream: true });
    }
    return { text: text + decoder.decode(), capped: false };
  } finally {
    // Stopped at the cap (or failed): the rest of the answer is not read, and its connection goes.
    body.destroy();
  }
}

/** An answer's body: null when empty, the parsed JSON, else `notJson(text)` (the text itself by default). */
export function parseBody(text: string, notJson: (text: string) => unknown = (t) => t): unknown {
  if (text === '') return null;
  try {
    // Losslessly: an app's identifier beyond 2^53 keeps its digits (json.ts).
    return parseJson(text);
  } catch {
    return notJson(text);
  }
}

/** `Retry-After` in milliseconds: it is either seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value?.trim()) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.round(seconds * 1000));
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** SPEC §6, for an app without error bodies of its own: what a non-2xx status means. A 408 is a timeout, which SPEC §3 counts as transient. */
export function classify(status: number, action: Action): ErrorKind {
  if (status === 404 && (action === 'update' || action === 'delete' || action === 'clear')) return 'not_found';
  if (status === 409) return 'conflict';
  if (status === 429) return 'rate_limited';
  if (status >= 500 || status === 408) return 'transient';
  return 'rejected';
}

/** The record that already exists, from a 409 answer such as `{"existing_id": 42}` or `{"id": 42}`. */
function existingId(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { id, existing_id } = body as { id?: unknown; existing_id?: unknown };
  return idText(existing_id ?? id);
}

/** The outcome of a non-2xx answer (its body parsed as `response`), with what the engine needs to retry it. */
export function answerError(change: Change, kind: ErrorKind, message: string, answer: { headers: Headers }, response: unknown, result: unknown, wholeBatch = false): Outcome {
  const existingAppId = kind === 'conflict' ? existingId(response) : undefined;
  const retryAfterMs = kind === 'rate_limited' || kind === 'transient' ? parseRetryAfter(answer.headers.get('retry-after')) : undefined;
  return {
    key: change.key,
    success: false,
    appId: change.appId,
    result,
    error: { kind, message, ...(existingAppId !== undefined && { existingAppId }), ...(retryAfterMs !== undefined && { retryAfterMs }), ...(wholeBatch && { wholeBatch }) },
  };
}

/** The error that says what went wrong: fetch's own hides it (ECONNRESET…) in `cause`. */
function rootError(e: unknown): unknown {
  return e instanceof Error && e.cause instanceof Error ? e.cause : e;
}

/** A transport error's code (ECONNREFUSED, UND_ERR_SOCKET…), if it has one. */
function errorCode(e: unknown): string | undefined {
  const code = (rootError(e) as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** An error's message on one line, with its code when the message does not say it, less a leading `strip`. */
export function errorText(e: unknown, strip?: RegExp): string {
  const root = rootError(e);
  let text = e instanceof Error ? e.message : String(e);
  if (root instanceof Error) {
    const code = errorCode(root);
    text = (code && !root.message.includes(code) ? `${code}${root.message ? `: ${root.message}` : ''}` : root.message) || text;
  }
  return (strip ? text.replace(strip, '') : text).replace(/\s+/g, ' ').trim();
}

// The texts below are masked before they are cut: a cut through a secret would leave half of it.

/**
 * A body's text as stored in a result: as it is up to `limit` characters, else cut there and marked
 * truncated; `capped` (ebb stopped reading the answer at {@link maxAnswerBytes}) is noted too.
 */
export function truncated(body: string, limit = 4096, capped = false): string {
  const text = redact(body);
  if (capped) return `${text.slice(0, limit)}… (truncated; the answer was longer than ${maxAnswerBytes} bytes, and ebb read no further)`;
  return text.length > limit ? `${text.slice(0, limit)}… (truncated; ${text.length} characters)` : text;
}

/** An answer's text on one line, cut short with `…`, for an error message. */
export function snippet(text: string, limit = 300): string {
  const flat = redact(text).replace(/\s+/g, ' ').trim();
  return flat.length > limit ? `${flat.slice(0, limit)}…` : flat;
}

/** `: ` and the first 200 characters of an answer's text on one line, to end an error message; '' for no text. */
export function snippetSuffix(text: string): string {
  const flat = redact(text).replace(/\s+/g, ' ').trim().slice(0, 200);
  return flat ? `: ${flat}` : '';
}

/** A base URL and a path with exactly one slash between them. */
export function joinUrl(base: string, path: string): string {
  return `${base.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
}
