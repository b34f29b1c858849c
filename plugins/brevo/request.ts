/** One request to the Brevo API, and how its answer reads: the parsed body and the wait a 429 asks for. */

/** An HTTP answer, or a transport failure (timeout, reset, refused connection). */
export type Answer = { status: number; headers: Headers; text: string; body: unknown } | { failure: string };

/** Sends one request; never throws, so that only the engine's own errors leave `schedule`. */
export async function send(url: string, init: RequestInit, timeoutMs: number): Promise<Answer> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, body: parseBody(text) };
  } catch (e) {
    if (e instanceof Error && e.name === 'TimeoutError') return { failure: `no answer within ${timeoutMs} ms` };
    return { failure: errorText(e) };
  }
}

function parseBody(text: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Brevo's error body (`errorModel`): `{code, message}`, and for a duplicate `metadata.duplicate_identifiers`. */
export interface BrevoError {
  code?: string;
  message?: string;
  metadata?: { duplicate_identifiers?: string[] } & Record<string, unknown>;
}

export function asError(body: unknown): BrevoError {
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as BrevoError) : {};
}

/**
 * How long a 429 asks to wait: `Retry-After` if Brevo sends one, else `x-sib-ratelimit-reset`, the
 * time until the window resets "expressed in the granularity unit (typically seconds)".
 */
export function rateLimitWaitMs(headers: Headers): number | undefined {
  const retryAfter = parseRetryAfter(headers.get('retry-after'));
  if (retryAfter !== undefined) return retryAfter;
  const reset = Number(headers.get('x-sib-ratelimit-reset'));
  return headers.get('x-sib-ratelimit-reset') !== null && Number.isFinite(reset) && reset >= 0 ? Math.round(reset * 1000) : undefined;
}

/** `Retry-After` is either seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value?.trim()) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.round(seconds * 1000));
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** An answer's text on one line, cut short, for an error message. */
export function snippet(text: string, limit = 300): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > limit ? `${flat.slice(0, limit)}…` : flat;
}

/** An error's message on one line; fetch hides the useful part (ECONNRESET…) in `cause`. */
export function errorText(e: unknown): string {
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause : undefined;
  let text = e instanceof Error ? e.message : String(e);
  if (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    text = (code && !cause.message.includes(code) ? `${code}${cause.message ? `: ${cause.message}` : ''}` : cause.message) || text;
  }
  return text.replace(/\s+/g, ' ').trim();
}
