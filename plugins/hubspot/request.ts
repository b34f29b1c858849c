/**
 * How the HubSpot API's answers read: the error body, its category and the wait that a 429 asks
 * for (HubSpot's rate-limit headers and policy names).
 */
import type { ErrorKind } from '../plugin.ts';
import { parseRetryAfter } from '../shared/http.ts';
import { idText } from '../shared/json.ts';

/** HubSpot's error body: `{status: "error", message, correlationId, category, errors?, context?, policyName?}`. */
export interface HubSpotError {
  status?: string;
  message?: string;
  category?: string;
  subCategory?: unknown;
  context?: Record<string, unknown>;
  errors?: Array<{ message?: string; code?: string; context?: unknown }>;
  policyName?: string;
  errorType?: string;
  correlationId?: string;
}

export function asError(body: unknown): HubSpotError {
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as HubSpotError) : {};
}

/** `409 CONFLICT`: "Contact already exists. Existing ID: 12345", or `context.existingId` in a multi-status error. */
export function existingIdOf(error: HubSpotError): string | undefined {
  const fromContext = error.context?.existingId;
  if (Array.isArray(fromContext) && fromContext.length > 0) return String(fromContext[0]);
  const id = idText(fromContext);
  if (id !== undefined) return id;
  return /Existing ID:\s*(\d+)/i.exec(error.message ?? '')?.[1];
}

/** A batch error's category, as what the engine does with it. */
export function kindOfCategory(category: string | undefined): ErrorKind {
  switch (category) {
    case 'OBJECT_NOT_FOUND':
      return 'not_found';
    case 'CONFLICT':
      return 'conflict';
    case 'RATE_LIMITS':
    case 'RATE_LIMIT':
      return 'rate_limited';
    default:
      return 'rejected';
  }
}

/**
 * How long a 429 asks to wait. `Retry-After` when HubSpot sends it; otherwise by the limit that
 * was hit (`policyName` in the body): SECONDLY is a one-second window, TEN_SECONDLY_ROLLING the
 * window that `X-HubSpot-RateLimit-Interval-Milliseconds` names (10 s). A DAILY limit resets at
 * midnight in the account's time zone: no wait within a run helps, so it gives none.
 */
export function rateLimitWaitMs(headers: Headers, body: unknown): number | undefined {
  const retryAfter = parseRetryAfter(headers.get('retry-after'));
  if (retryAfter !== undefined) return retryAfter;
  const policy = asError(body).policyName?.toUpperCase();
  if (policy === 'DAILY') return undefined;
  if (policy === 'SECONDLY') return 1000;
  const interval = Number(headers.get('x-hubspot-ratelimit-interval-milliseconds'));
  if (Number.isFinite(interval) && interval > 0) return interval;
  return policy === 'TEN_SECONDLY_ROLLING' ? 10_000 : 1000;
}
