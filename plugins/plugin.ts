/**
 * The plugin contract: everything a destination plugin implements, and everything the engine
 * gives it. A plugin is a module whose default export is a {@link Plugin}.
 *
 * The engine owns batching, rate limiting, concurrency, retries and the state; a plugin only
 * turns a batch of changes into requests to its app and reports one {@link Outcome} per change.
 */
import type { ZodType } from 'zod';

/** What the engine asks the app to do with one record. */
export type Action = 'create' | 'update' | 'delete' | 'clear' | 'recreate' | 'send';

/** The sync strategies of SPEC §3. */
export type Strategy = 'create' | 'update' | 'upsert' | 'mirror' | 'replace' | 'send';

/**
 * One record to apply. `record` is the transformed record: the exact payload for the app. A
 * number in it that a JS number cannot hold exactly is an ExactNumber (plugins/shared/json.ts):
 * serialise records with stringifyJson from there, which writes every digit. The engine parses
 * `record` from the warehouse's JSON text when it is first read; recordJson(change), from there
 * too, gives that text unparsed to a plugin that sends the whole record as JSON.
 */
export interface Change {
  /** The record key: the key column's value as text, or a JSON array for a composite key. */
  key: string;
  action: Action;
  record: Record<string, unknown>;
  /** The record's identifier in the app, when ebb knows it from an earlier run. */
  appId?: string | null;
}

/** How a failed change failed; the engine decides from this whether and how to retry. */
export type ErrorKind = 'transient' | 'rate_limited' | 'not_found' | 'conflict' | 'rejected';

/** The answer for one change. Every change of a batch gets exactly one outcome. */
export interface Outcome {
  key: string;
  success: boolean;
  /** The record's identifier in the app after this change. */
  appId?: string | null;
  /** What the app answered, stored in history as JSON. Never put secrets here. */
  result?: unknown;
  error?: {
    kind: ErrorKind;
    message: string;
    /** For a `conflict` on create: the identifier of the record that already exists. */
    existingAppId?: string;
    /** For `rate_limited` or `transient`: how long the app asked to wait. */
    retryAfterMs?: number;
    /**
     * The app refused the whole request, not this record alone (one bad record fails a batch
     * endpoint). The engine splits the batch in half until the bad records are isolated.
     */
    wholeBatch?: boolean;
    /**
     * A failure that tells nothing of the record: `connect` when the request never reached the app (connection
     * refused, DNS, disk full), `sent` when it was sent and the app may have applied it without
     * ebb learning its identifier (a timeout, a reset, a 2xx without a readable identifier). A
     * create that failed after `sent` is not resent blindly.
     */
    noAnswer?: 'connect' | 'sent';
  };
}

/** Whether the app holds a record: its identifier, null when it does not, or why the app could not tell. */
export type Match = { key: string; appId: string | null } | { key: string; error: string };

/** What a plugin can do. Each field has a default, so a plugin declares only what differs. */
export interface Capabilities {
  /**
   * Strategies the plugin can honour; only those. It may depend on the sync's destination block
   * (`http` can replace only with requests that empty and refill the set). Default: all six.
   */
  strategies: Strategy[] | ((destination: Record<string, unknown>) => Strategy[]);
  /** The largest batch the app accepts; the sync's `batch_size` is capped to it. Default: none. */
  maxBatchSize?: number;
  /**
   * True when nothing a session applies is visible in the app until `close()` returns (a file
   * rewritten and renamed at the end). After a crash, the engine then resends a run's changes
   * instead of trusting its outcomes. Default: false.
   */
  atomicRun: boolean;
  /**
   * True when a create sent twice cannot make two records: the app upserts, or answers a repeated
   * create with `conflict` and the existing identifier. After a crash, the engine then resends
   * the creates that were in flight; otherwise it flags them NEEDS_REVIEW. It may depend on the
   * sync's destination block. Default: false.
   */
  idempotentCreate: boolean | ((destination: Record<string, unknown>) => boolean);
}

/** The defaults of {@link Capabilities}. */
export const defaultCapabilities: Capabilities = {
  strategies: ['create', 'update', 'upsert', 'mirror', 'replace', 'send'],
  atomicRun: false,
  idempotentCreate: false,
};

/**
 * Renders nunjucks templates: a user's project `templates/` first, then ebb's `templates/`. A name
 * that is not in the context (nor a nunjucks global) throws `undefined variable "name"`.
 */
export interface TemplateRenderer {
  /** Renders a template string (it may `{% include %}` template files). */
  renderString(template: string, context: Record<string, unknown>): string;
  /**
   * Renders a URL path template: the output of each `{{ … }}` is percent-encoded as one path
   * segment (`/`, `?` and `#` included), and one that is empty, `.` or `..` throws. `| safe` (or
   * `| urlencode`) leaves a value as it is.
   */
  renderPath(template: string, context: Record<string, unknown>): string;
  /** Renders a template file, looked up by its path, e.g. `hubspot/contact.json.njk`. */
  render(name: string, context: Record<string, unknown>): string;
  /**
   * Checks a template before any run against a sample context: returns its syntax error, unknown
   * filter or undefined variable, else undefined (other errors may come from the sample values
   * alone). `path: true` checks it as `renderPath` renders it.
   */
  check(template: string, context: Record<string, unknown>, options?: { path?: boolean }): string | undefined;
  /**
   * Whether a template uses `name` only as `name | tojson` (and includes no other template): then
   * a JsonText (plugins/shared/json.ts) may stand in for the value in the context, printed as it is.
   */
  jsonOnly(template: string, name: string): boolean;
}

/** What the engine gives a plugin for one connection. */
export interface PluginContext<Config> {
  /** The connection's `config`, parsed by the plugin's `configSchema`. */
  config: Config;
  /** The connection's name in ebb.yml. */
  connection: string;
  /** The directory of ebb.yml: relative paths in the config are relative to it. */
  projectDir: string;
  templates: TemplateRenderer;
  /**
   * Runs one request to the app under the connection's rate limit and concurrency. Every call
   * that reaches the app goes through it. It throws without running `request` when the limiter
   * that several ebb processes share is gone (Redis lost): that request was not sent. The engine
   * then ends the run; a plugin that sends several requests per batch gives the changes of such
   * a request an outcome with `noAnswer: 'connect'`, so that the answers of the others are kept.
   */
  schedule<T>(request: () => Promise<T>): Promise<T>;
}

/** What the engine gives a plugin for one run of one sync. */
export interface SessionContext<Config, Destination> extends PluginContext<Config> {
  sync: string;
  strategy: Strategy;
  /** The sync's `destination` block, parsed by the plugin's `destinationSchema`. */
  destination: Destination & { object: string };
  /** The destination fields of the mapping, in order. */
  fields: string[];
}

/** What a destination check gets: a sync's context, without a run. */
export interface DestinationContext<Config, Destination> extends PluginContext<Config> {
  sync: string;
  strategy: Strategy;
  /** The sync's `destination` block, parsed by the plugin's `destinationSchema`. */
  destination: Destination & { object: string };
  /** The destination fields of the mapping, in order. */
  fields: string[];
  /** The warehouse type of each mapped field, as the warehouse names it (`INTEGER`, `VARCHAR`), when known. */
  fieldTypes?: Record<string, string>;
}

/** A problem with a sync's destination, at a path inside the sync (`mapping.score`, `destination.object`). */
export interface DestinationIssue {
  path: string;
  message: string;
}

/** One run's conversation with the app. */
export interface Session {
  /** Applies a batch; all its changes have the same action. Returns one outcome per change. */
  apply(changes: Change[]): Promise<Outcome[]>;
  /**
   * Finds records in the app by their fields (say, by email): one {@link Match} per change. The
   * engine asks it about creates that may have reached the app unanswered (in doubt). Optional.
   */
  find?(changes: Change[]): Promise<Match[]>;
  /** Ends the run: `commit` is false when the run failed and nothing more must land. */
  close(commit: boolean): Promise<void>;
}

/** A destination plugin. */
export interface Plugin<Config = unknown, Destination = Record<string, unknown>> {
  /** The name used as `plugin:` in ebb.yml. */
  name: string;
  /** Validates the connection's `config`. */
  configSchema: ZodType<Config>;
  /** Validates the plugin-specific keys of a sync's `destination` block. */
  destinationSchema?: ZodType<Destination>;
  capabilities?: Partial<Capabilities>;
  /** Tests connectivity and credentials; throws an Error whose message says what is wrong. */
  check(ctx: PluginContext<Config>): Promise<void>;
  /**
   * Checks a sync's destination in the app before any run (the object exists, the fields and their
   * types fit) and returns its problems; `ebb validate`, `ebb check` and `ebb run` call it. Throws
   * when the app cannot be asked (then only a warning is printed). Optional.
   */
  validate?(ctx: DestinationContext<Config, Destination>): Promise<DestinationIssue[]>;
  /** Starts a run of one sync. */
  open(ctx: SessionContext<Config, Destination>): Promise<Session>;
}
