/** How the Brevo API's answers read: its error body and the wait a 429 asks for. */
import { parseRetryAfter } from '../shared/http.ts';

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
