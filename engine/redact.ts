/**
 * Keeps secrets out of logs, history, error messages, printed output and the catalog.
 *
 * A secret is a value that ebb read from the environment for a credential (see `isSecretUse`).
 * It is masked as `***` in the forms in which an app or a driver may echo it back: as it is,
 * JSON-escaped (once or twice: a JSON body quoted inside a JSON message), URL-encoded (as a
 * component, a form field, or by the URL parser in a query or a path; either hex case), and, for `user:password` given in base64 (basic auth), the
 * decoded pair and its password. A secret shorter than `SHORT` characters is masked only where
 * it stands alone, not inside a longer word or number, so that a 4-character key does not
 * turn every word that contains it into `***`.
 */
import { ExactNumber, stringifyJson } from '../plugins/shared/json.ts';

/** Below this length, a secret is masked only where no letter or digit touches it. */
const SHORT = 8;

/**
 * Every secret value known to this process, in the forms that are masked. Masking is the one
 * thing that is process-wide: a text may reach a log or an answer far from the engine that read
 * its secret (a plugin cuts an app's answer short, an error crosses two engines), and masking the
 * secret of another project too can only hide more. What a secret *stands for* (the variable it
 * came from, which `unresolve` writes back into the catalog) belongs to one project: see {@link Secrets}.
 */
const masked = new Set<string>();
/** One regular expression for every form of every secret, built again when a secret is added. */
let pattern: RegExp | null = null;
/** Whether a JSON text may hold a secret: any form of any secret, JSON-escaped once more, anywhere. */
let presence: RegExp | null = null;

/** Words that make a config key, or an environment variable's name, name a credential. */
const CREDENTIAL_WORDS = new Set([
  'password', 'passwd', 'pwd', 'pass', 'passphrase', 'secret', 'secrets', 'token', 'auth', 'oauth',
  'authorization', 'credential', 'credentials', 'cookie', 'apikey', 'signature',
]);

/** The words of a key or a variable name: `x-api-key` → x, api, key; `privateKey` → private, key. */
function words(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
}

/**
 * True when a key or an environment variable's name names a credential: it has a word such as
 * password, secret, token or auth, or it ends in `key` after another word (`api_key`,
 * `x-api-key`, `CRM_KEY`; not a sync's `key`, nor `private_key_path`).
 */
export function namesCredential(name: string): boolean {
  const w = words(name);
  return w.some((word) => CREDENTIAL_WORDS.has(word)) || (w.length > 1 && w[w.length - 1] === 'key');
}

/**
 * True when a value that `env_var(variable)` gives at this config path is a secret: the
 * variable's name names a credential, or a key on the path does (a connection's name aside),
 * or the value is part of a header.
 */
export function isSecretUse(path: PropertyKey[], variable: string): boolean {
  if (namesCredential(variable)) return true;
  return path.some((p, i) => typeof p === 'string' && !(i === 1 && path[0] === 'connections') && (p.toLowerCase() === 'headers' || namesCredential(p)));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** How URLs encode a value: components, forms, and what the URL parser does to a query or a path. */
function urlForms(value: string): string[] {
  const encoded = encodeURIComponent(value);
  const forms = [encoded, encoded.replace(/%20/g, '+'), new URLSearchParams({ v: value }).toString().slice(2), encodeURI(value)];
  try {
    forms.push(new URL(`http://h/?${value}`).search.slice(1), new URL(`http://h/${value}`).pathname.slice(1));
  } catch {
    // A value the URL parser refuses never made it into a URL.
  }
  return [...forms, ...forms.map((f) => f.replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase()))];
}

/** The forms of a secret that may come back in a message: raw, URL-encoded, JSON-escaped. */
function formsOf(value: string): string[] {
  const bases = [value, ...urlForms(value)];
  const forms = new Set<string>();
  for (const base of bases) {
    let form = base;
    for (let depth = 0; depth < 3; depth++) {
      forms.add(form);
      form = JSON.stringify(form).slice(1, -1);
    }
  }
  return [...forms];
}

/** For a base64 `user:password` (basic auth), the pair and the password it decodes to. */
function basicAuthParts(value: string): string[] {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value) || value.length % 4 !== 0) return [];
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  // Only text that round-trips and looks like a pair; other base64 stays a plain secret.
  if (colon < 1 || Buffer.from(decoded, 'utf8').toString('base64') !== value || /[^\x20-\x7e]/.test(decoded)) return [];
  return [decoded, decoded.slice(colon + 1)].filter(Boolean);
}

/** Masks a value (an empty one is no secret) in every text from now on, with the user:password pair it may encode. */
export function addSecret(value: string): void {
  for (const v of [value, ...basicAuthParts(value)]) {
    if (v === '' || masked.has(v)) continue;
    masked.add(v);
    pattern = null;
    presence = null;
  }
}

/** The regular expression alternative of one secret: each of its forms, bounded when it is short. */
function alternative(value: string): string {
  const forms = formsOf(value)
    .sort((a, b) => b.length - a.length)
    .map(escapeRegExp)
    .join('|');
  return value.length < SHORT ? `(?<![A-Za-z0-9])(?:${forms})(?![A-Za-z0-9])` : `(?:${forms})`;
}

function secretPattern(): RegExp | null {
  if (masked.size === 0) return null;
  // Longer secrets first, so that one secret inside another is masked as the longer one.
  pattern ??= new RegExp([...masked].sort((a, b) => b.length - a.length).map(alternative).join('|'), 'g');
  return pattern;
}

/** Replaces every registered secret in a text, in any of its forms, with `***`. */
export function redact(text: string): string {
  const re = secretPattern();
  return re ? text.replace(re, '***') : text;
}

/** A copy of a value (a result, a log entry) with every secret masked in its strings and keys. */
export function redactValue<T>(value: T): T {
  if (typeof value === 'string') return redact(value) as T;
  if (Array.isArray(value)) return value.map(redactValue) as T;
  if (value && typeof value === 'object' && !(value instanceof Date) && !(value instanceof ExactNumber)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [redact(k), redactValue(v)])) as T;
  }
  return value;
}

/**
 * A test for the JSON text of a value in which `redactValue` would mask something: a string (or a
 * key) that holds a form of a secret shows in the text as that form JSON-escaped, whatever stands
 * around it. Unbounded (a short secret inside a word counts too), so it finds a superset.
 */
function presencePattern(): RegExp | null {
  if (masked.size === 0) return null;
  if (!presence) {
    const forms = new Set<string>();
    for (const value of masked) for (const form of formsOf(value)) forms.add(JSON.stringify(form).slice(1, -1));
    presence = new RegExp([...forms].map(escapeRegExp).join('|'));
  }
  return presence;
}

/** JSON text of a value with every secret masked (masked before serialising, so the JSON stays valid). */
export function toJson(value: unknown, indent?: number): string {
  // Every digit of a big number (a bigint, a record's ExactNumber), where JSON.stringify would round or throw.
  const text = stringifyJson(value, indent);
  // Most values hold no secret: one scan of their text says so, without copying the value.
  const re = presencePattern();
  return re && re.test(text) ? stringifyJson(redactValue(value), indent) : text;
}

/**
 * The secrets of one project: each value with the environment variable it came from. A project
 * loaded in the same process as another never takes its variables: `unresolve` writes back only
 * the calls of this project's ebb.yml, and `secretIn` finds only its secrets. Each one added is
 * masked everywhere too ({@link addSecret}).
 */
export class Secrets {
  private readonly variables = new Map<string, string | undefined>();

  /** Registers a secret value with the environment variable it came from, if any. */
  add(value: string, variable?: string): void {
    addSecret(value);
    const add = (v: string, from?: string) => {
      if (v === '' || (this.variables.has(v) && (this.variables.get(v) || !from))) return;
      this.variables.set(v, from);
    };
    add(value, variable);
    // Derived forms have no variable of their own: `unresolve` must not turn them into the base64 one.
    for (const part of basicAuthParts(value)) add(part);
  }

  /** The secret that a text holds, if any: its environment variable's name, or '' when it has none. */
  secretIn(text: string): string | undefined {
    for (const [value, variable] of this.variables) if (new RegExp(alternative(value)).test(text)) return variable ?? '';
    return undefined;
  }

  /**
   * Puts `{{ env_var('NAME') }}` back where a secret was resolved, in every string of a value, so
   * that a definition stored in the catalog holds no secret; loading it resolves the variables again.
   */
  unresolve<T>(value: T): T {
    if (typeof value === 'string') {
      let out: string = value;
      for (const [secret, variable] of [...this.variables].sort(([a], [b]) => b.length - a.length)) {
        if (!variable) continue;
        const bounded = secret.length < SHORT ? `(?<![A-Za-z0-9])${escapeRegExp(secret)}(?![A-Za-z0-9])` : escapeRegExp(secret);
        out = out.replace(new RegExp(bounded, 'g'), () => `{{ env_var('${variable}') }}`);
      }
      return out as T;
    }
    if (Array.isArray(value)) return value.map((v: unknown) => this.unresolve(v)) as T;
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.unresolve(v)])) as T;
    return value;
  }
}
