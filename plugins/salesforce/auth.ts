/**
 * Salesforce credentials: a given access token, or the OAuth 2.0 JWT bearer flow (a connected
 * app with a certificate, for server-to-server integrations without a user at the keyboard).
 *
 * JWT bearer flow, as Salesforce documents it: POST {login URL}/services/oauth2/token with
 * `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and `assertion=<JWT>`, where the JWT's
 * header is {"alg":"RS256"} and its claims are iss (the connected app's consumer key), sub (the
 * username), aud (the login URL: https://login.salesforce.com, https://test.salesforce.com or an
 * Experience Cloud site URL) and exp (seconds since the epoch, within 3 minutes). The answer holds
 * access_token and instance_url, the org's own host, where every later request goes. No refresh
 * token is issued and there is no expires_in: a new assertion is sent when the API answers 401.
 */
import { createPrivateKey, createSign, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { PluginContext } from '../plugin.ts';
import type { SalesforceConfig } from './index.ts';
import { send } from '../shared/http.ts';

/** Where and how to call the org's REST API. */
export interface Credentials {
  accessToken: string;
  /** The org's host, e.g. https://acme.my.salesforce.com, without a trailing slash. */
  instanceUrl: string;
}

/** Gets credentials and, for the JWT flow, gets new ones when a session ends. */
export interface Authenticator {
  credentials(): Promise<Credentials>;
  /** New credentials after `stale` was refused; undefined when there is no way to get new ones. */
  renew(stale: Credentials): Promise<Credentials | undefined>;
}

/** Credentials could not be had: `transient` when trying again later may help (network, 5xx). */
export class AuthError extends Error {
  constructor(
    message: string,
    readonly transient = false,
  ) {
    super(message);
    this.name = 'AuthError';
  }
}

/**
 * JWT sessions by connection settings, shared by the runs of one process: one token request per
 * connection, not one per sync. A renewal replaces the entry.
 */
const sessions = new Map<string, Promise<Credentials>>();

/** The authenticator for a connection's config. */
export function authenticator(ctx: PluginContext<SalesforceConfig>): Authenticator {
  const config = ctx.config;
  if (config.access_token !== undefined) {
    const fixed: Credentials = { accessToken: config.access_token, instanceUrl: trimSlash(config.instance_url!) };
    return { credentials: async () => fixed, renew: async () => undefined };
  }
  const cacheKey = JSON.stringify([config.base_url, config.client_id, config.username, config.audience, config.private_key_path]);
  const fetchNew = () => {
    const pending = requestToken(ctx);
    sessions.set(cacheKey, pending);
    // A failed attempt is not kept: the next run tries again.
    pending.catch(() => sessions.get(cacheKey) === pending && sessions.delete(cacheKey));
    return pending;
  };
  return {
    credentials: () => sessions.get(cacheKey) ?? fetchNew(),
    async renew(stale) {
      const current = await sessions.get(cacheKey)?.catch(() => undefined);
      // Another request renewed the session already: use that one.
      if (current && current.accessToken !== stale.accessToken) return current;
      return fetchNew();
    },
  };
}

/** Forgets the cached JWT sessions (tests). */
export function forgetSessions(): void {
  sessions.clear();
}

/** Signs an assertion and exchanges it for an access token. Throws a message that says what to fix. */
async function requestToken(ctx: PluginContext<SalesforceConfig>): Promise<Credentials> {
  const config = ctx.config;
  const key = await privateKey(ctx);
  const audience = trimSlash(config.audience ?? config.base_url);
  const assertion = signJwt({ iss: config.client_id!, sub: config.username!, aud: audience, exp: Math.floor(Date.now() / 1000) + 180 }, key);
  const url = `${trimSlash(config.base_url)}/services/oauth2/token`;
  const body = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }).toString();
  const sent = await ctx.schedule(() =>
    send(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, body }, config.timeout_ms),
  );
  if ('failure' in sent) throw new AuthError(`cannot reach ${url} for the JWT bearer flow: ${sent.failure}`, sent.kind === 'transient');
  const { status, text } = sent;
  let answer: { access_token?: string; instance_url?: string; error?: string; error_description?: string } = {};
  try {
    answer = JSON.parse(text) as typeof answer;
  } catch {
    // Reported below with the status.
  }
  if (status === 200 && answer.access_token) {
    const instanceUrl = config.instance_url ?? answer.instance_url;
    if (!instanceUrl) throw new AuthError('the token answer holds no instance_url; set instance_url in the connection config');
    return { accessToken: answer.access_token, instanceUrl: trimSlash(instanceUrl) };
  }
  const reason = answer.error ? `${answer.error}: ${answer.error_description ?? ''}`.trim() : `HTTP ${status} ${text.replace(/\s+/g, ' ').slice(0, 200)}`;
  throw new AuthError(`the JWT bearer flow was refused (${reason}).${hint(answer.error_description ?? answer.error ?? '', config, audience)}`, status >= 500 || status === 429);
}

/** What to do about a refused assertion, from Salesforce's error_description. */
function hint(description: string, config: SalesforceConfig, audience: string): string {
  if (/approved this consumer/.test(description)) {
    return ` Pre-authorize ${config.username} for the connected app (Manage → Permitted Users: "Admin approved users are pre-authorized", then add the user's profile or a permission set).`;
  }
  if (/audience/.test(description)) return ` The audience was ${audience}; set audience (or base_url) to https://login.salesforce.com, https://test.salesforce.com for a sandbox, or your Experience Cloud site URL.`;
  if (/client identifier|client_id/.test(description)) return ' client_id must be the connected app\'s consumer key.';
  if (/invalid assertion|signature/.test(description)) return ' Check that private_key_path holds the key of the certificate uploaded to the connected app ("Use digital signatures").';
  if (/expired/.test(description)) return " Check this machine's clock: the assertion is valid for 3 minutes.";
  return '';
}

async function privateKey(ctx: PluginContext<SalesforceConfig>): Promise<KeyObject> {
  const { private_key: inline, private_key_path: path } = ctx.config;
  let pem = inline;
  if (pem === undefined) {
    const file = resolve(ctx.projectDir, path!);
    try {
      pem = await readFile(file, 'utf8');
    } catch (e) {
      throw new AuthError(`cannot read private_key_path ${path}: ${errorText(e)}`);
    }
  }
  try {
    return createPrivateKey(pem);
  } catch (e) {
    throw new AuthError(`the private key ${path ?? '(private_key)'} is not a PEM RSA private key: ${errorText(e)}`);
  }
}

/** An RS256 JWT, as Salesforce's JWT bearer flow expects it. */
export function signJwt(claims: Record<string, unknown>, key: KeyObject): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const unsigned = `${encode({ alg: 'RS256' })}.${encode(claims)}`;
  const signature = createSign('RSA-SHA256').update(unsigned).sign(key).toString('base64url');
  return `${unsigned}.${signature}`;
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

function errorText(e: unknown): string {
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause : undefined;
  return (cause?.message || (e instanceof Error ? e.message : String(e))).replace(/\s+/g, ' ').trim();
}
