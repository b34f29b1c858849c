/**
 * The HTTP helpers the API plugins (http, webhook, salesforce, hubspot, brevo) share: one request
 * that never throws, how an answer's body and `Retry-After` read, and an error or a body on one line.
 * What an app's error bodies mean stays in its plugin.
 */
import { redact } from '../../engine/redact.ts';

/**
 * An HTTP answer (its body parsed as JSON where it is JSON), or a transport failure (timeout, reset,
 * refused connection); `sent` is false when the request never reached the app (refused, DNS, no route).
 */
export type Answer = { status: number; headers: Headers; text: string; body: unknown } | { failure: string; sent: boolean };

/** Error codes of a connection that was never made: the request did not leave. */
const notSent = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

/** Sends one request; never throws, so that only the engine's own errors leave `schedule`. */
export async function send(url: string | Request, init: RequestInit, timeoutMs: number): Promise<Answer> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, body: parseBody(text) };
  } catch (e) {
    if (e instanceof Error && e.name === 'TimeoutError') return { failure: `no answer within ${timeoutMs} ms`, sent: true };
    const code = e instanceof Error && e.cause instanceof Error ? (e.cause as NodeJS.ErrnoException).code : undefined;
    return { failure: errorText(e), sent: !notSent.has(code ?? '') };
  }
}

/** An answer's body: null when empty, the parsed JSON, else `notJson(text)` (the text itself by default). */
export function parseBody(text: string, notJson: (text: string) => unknown = (t) => t): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text) as unknown;
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

/** A body's text as stored in a result: as it is up to `limit` characters, else cut there and marked truncated. */
export function truncated(body: string, limit = 4096): string {
  const text = redact(body);
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
