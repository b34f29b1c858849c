/**
 * The HTTP helpers the API plugins (http, webhook, salesforce, hubspot, brevo) share: one request
 * that never throws, how an answer's body and `Retry-After` read, and an error or a body on one line.
 * What an app's error bodies mean stays in its plugin.
 */
import { redact } from '../../engine/redact.ts';
import { parseJson } from './json.ts';

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

/**
 * Sends one request; never throws, so that only the engine's own errors leave `schedule`.
 * Redirects are never followed: fetch would resend a 301/302/303 as a GET without its body (an
 * app that never got the record would count as a success), and a redirect may point at another
 * origin, which must never see the request's credentials. A 3xx is a failure that names its
 * `Location`. The body is read up to `maxBytes` (default {@link maxAnswerBytes}).
 */
export async function send(url: string | URL | Request, init: RequestInit, timeoutMs: number, maxBytes = maxAnswerBytes): Promise<Answer> {
  try {
    const res = await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    if (res.status >= 300 && res.status < 400) {
      await res.body?.cancel();
      const location = res.headers.get('location');
      return {
        failure: `answered ${res.status} with a redirect to ${location ?? '(no Location)'}, which ebb does not follow: set the connection's URL to the address the app answers at`,
        kind: 'rejected',
        sent: true,
      };
    }
    const { text, capped } = await readCapped(res, maxBytes);
    return { status: res.status, headers: res.headers, text, body: capped ? text : parseBody(text), capped };
  } catch (e) {
    if (e instanceof Error && e.name === 'TimeoutError') return { failure: `no answer within ${timeoutMs} ms`, kind: 'transient', sent: true };
    const code = e instanceof Error && e.cause instanceof Error ? (e.cause as NodeJS.ErrnoException).code : undefined;
    return { failure: errorText(e), kind: 'transient', sent: !notSent.has(code ?? '') };
  }
}

/** An answer's body as text, read up to `maxBytes` bytes: an app cannot make ebb hold more in memory. */
async function readCapped(res: Response, maxBytes: number): Promise<{ text: string; capped: boolean }> {
  if (!res.body) return { text: '', capped: false };
  // An answer that says its length, within the cap, is read at once (unless compressed: fetch
  // inflates it, and the length is the compressed one).
  const length = Number(res.headers.get('content-length') ?? NaN);
  if (length >= 0 && length <= maxBytes && !res.headers.has('content-encoding')) return { text: await res.text(), capped: false };
  const decoder = new TextDecoder();
  const reader = res.body.getReader();
  let text = '';
  let read = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { text: text + decoder.decode(), capped: false };
    if (read + value.byteLength > maxBytes) {
      text += decoder.decode(value.subarray(0, maxBytes - read));
      await reader.cancel();
      return { text, capped: true };
    }
    read += value.byteLength;
    text += decoder.decode(value, { stream: true });
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

/** An error's message on one line, less a leading `strip`; fetch hides the useful part (ECONNRESET…) in `cause`. */
export function errorText(e: unknown, strip?: RegExp): string {
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause : undefined;
  let text = e instanceof Error ? e.message : String(e);
  if (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    text = (code && !cause.message.includes(code) ? `${code}${cause.message ? `: ${cause.message}` : ''}` : cause.message) || text;
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
