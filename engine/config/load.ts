/** Loads ebb.yml: YAML, `env_var()`, the zod schema, then the checks that span several fields. */
import { readFile } from 'node:fs/promises';
import { resolve, join } from 'node:path';
import { parseDocument } from 'yaml';
import { ZodObject, type z } from 'zod';
import { closest } from 'fastest-levenshtein';
import { ConfigError, formatPath, type ConfigIssue } from '../errors.ts';
import { projectSchema, type ProjectConfig } from './schema.ts';
import { loadPlugin } from '../plugins.ts';
import { defaultCapabilities, type Plugin } from '../../plugins/plugin.ts';
import { addSecret, isSecretUse, Secrets } from '../redact.ts';
import { resolveDbtModels } from './dbt.ts';
import { dependencyIssues } from '../schedule/dependencies.ts';
import { channelIssues } from '../alerts/channels.ts';

/** A loaded, valid project. */
export interface Project {
  dir: string;
  file: string;
  config: ProjectConfig;
  plugins: Map<string, Plugin>;
  /** The secrets its ebb.yml resolved, with their variables: this project's alone. */
  secrets: Secrets;
}

const ENV_VAR = /\{\{\s*env_var\(\s*(['"])([^'"]+)\1\s*(?:,\s*(['"])([^'"]*)\3\s*)?\)\s*\}\}/g;

/**
 * Replaces `{{ env_var('NAME', 'default') }}` in every string and registers the values used as
 * secrets (see redact.ts), in `secrets` when given, else for masking only; reports missing
 * variables (unless `optional`: then they are empty) and malformed calls.
 */
export function resolveEnvVars(value: unknown, path: PropertyKey[], issues: ConfigIssue[], optional = false, secrets?: Secrets): unknown {
  if (typeof value === 'string') {
    // A call that the pattern does not match (`env_var(FOO)`, a missing quote or brace) would stay in the value as text.
    if ((value.match(/env_var\s*\(/g)?.length ?? 0) > (value.match(ENV_VAR)?.length ?? 0)) {
      issues.push({ path: formatPath(path), message: "malformed env_var() call; write {{ env_var('NAME') }} or {{ env_var('NAME', 'default') }}, with the name in quotes" });
    }
    return value.replace(ENV_VAR, (_m, _q, name: string, _q2, fallback: string | undefined) => {
      const set = process.env[name];
      if (set !== undefined) {
        if (isSecretUse(path, name)) {
          if (secrets) secrets.add(set, name);
          else addSecret(set);
        }
        return set;
      }
      if (fallback !== undefined) return fallback;
      if (!optional) issues.push({ path: formatPath(path), message: `environment variable ${name} is not set, and env_var() gives no default` });
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => resolveEnvVars(v, [...path, i], issues, optional, secrets));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveEnvVars(v, [...path, k], issues, optional, secrets)]));
  }
  return value;
}

/** Turns zod issues into ebb's issues, with their paths. */
export function zodIssues(error: z.ZodError, prefix: PropertyKey[] = []): ConfigIssue[] {
  return error.issues.flatMap((i) =>
    // An unknown key is reported at its own path (`syncs[0].sorce`), not at its parent's.
    i.code === 'unrecognized_keys'
      ? i.keys.map((key) => ({ path: formatPath([...prefix, ...i.path, key]), message: 'unknown key; check its spelling against the config reference in the README' }))
      : [{ path: formatPath([...prefix, ...i.path]), message: i.message }],
  );
}

/** How to load a project: `dbtManifest` is `--dbt-manifest` (it wins over `dbt.manifest` in ebb.yml). */
export interface LoadOptions {
  dbtManifest?: string;
  /**
   * For commands that reach no app (status, runs, history): environment variables outside
   * `warehouse:` may be unset, and the connections' plugins are neither loaded nor checked.
   */
  withoutApps?: boolean;
}

/** Reads and validates `<dir>/ebb.yml`. Throws a ConfigError listing every problem. */
export async function loadProject(projectDir = '.', options: LoadOptions = {}): Promise<Project> {
  const dir = resolve(projectDir);
  const file = join(dir, 'ebb.yml');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new ConfigError([{ path: '', message: `no ebb.yml in ${dir}; run \`ebb init\` to create a project, or pass --project-dir` }]);
  }
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => ({ path: `line ${e.linePos?.[0].line ?? '?'}`, message: e.message.split('\n')[0] })));
  }
  const issues: ConfigIssue[] = [];
  const secrets = new Secrets();
  const js: unknown = doc.toJS();
  const raw =
    options.withoutApps && js && typeof js === 'object'
      ? Object.fromEntries(Object.entries(js).map(([k, v]) => [k, resolveEnvVars(v, [k], issues, k !== 'warehouse', secrets)]))
      : resolveEnvVars(js, [], issues, false, secrets);
  if (issues.length > 0) throw new ConfigError(issues);
  const parsed = projectSchema.safeParse(raw ?? {});
  if (!parsed.success) throw new ConfigError(zodIssues(parsed.error));
  const config = parsed.data;
  const plugins = new Map<string, Plugin>();
  await checkProject(config, dir, plugins, secrets, issues, !options.withoutApps);
  issues.push(...dependencyIssues(config.syncs), ...channelIssues(config, secrets));
  await resolveDbtModels(config, dir, options.dbtManifest, issues);
  if (issues.length > 0) throw new ConfigError(issues);
  return { dir, file, config, plugins, secrets };
}

/** The keys of a loose object schema (one that lets unknown keys through), else null. */
function looseKeys(schema: z.ZodType): string[] | null {
  if (!(schema instanceof ZodObject)) return null;
  const catchall = (schema.def.catchall as z.ZodType | undefined)?.def.type;
  return catchall === 'unknown' || catchall === 'any' ? Object.keys(schema.shape as Record<string, unknown>) : null;
}

/** The checks that zod cannot express: names, references, plugin configs and capabilities. */
async function checkProject(config: ProjectConfig, dir: string, plugins: Map<string, Plugin>, secrets: Secrets, issues: ConfigIssue[], withPlugins: boolean) {
  for (const [name, conn] of Object.entries(withPlugins ? config.connections : {})) {
    try {
      const plugin = await loadPlugin(conn.plugin, dir);
      plugins.set(name, plugin);
      const result = plugin.configSchema.safeParse(conn.config);
      if (!result.success) issues.push(...zodIssues(result.error, ['connections', name, 'config']));
    } catch (e) {
      issues.push({ path: `connections.${name}.plugin`, message: (e as Error).message });
    }
  }
  const seen = new Set<string>();
  const connectionNames = Object.keys(config.connections);
  config.syncs.forEach((sync, i) => {
    const at = (...p: PropertyKey[]) => formatPath(['syncs', i, ...p]);
    if (seen.has(sync.name)) issues.push({ path: at('name'), message: `duplicate sync name "${sync.name}"` });
    seen.add(sync.name);
    for (const [field, value] of Object.entries(sync.mapping)) {
      if (field.startsWith('__ebb_')) issues.push({ path: at('mapping', field), message: 'names starting with __ebb_ are reserved for ebb' });
      // A mapping is payload: sent to the app and stored in history and state as it is, so it cannot be masked.
      const secret = secrets.secretIn(JSON.stringify(value));
      if (secret !== undefined) {
        issues.push({
          path: at('mapping', field),
          message: `holds the value of ${secret || 'a secret'}, a secret: mapping values are sent to the app and stored in ebb's history as data. Send credentials in the connection's headers; a variable that is no secret needs a name without password, secret, token, auth or key`,
        });
      }
    }
    if (sync.on_remove !== 'none' && sync.strategy !== 'upsert') {
      issues.push({ path: at('on_remove'), message: `applies to the upsert strategy only (${sync.strategy} ${sync.strategy === 'mirror' ? 'always deletes' : 'never removes'})` });
    }
    const conn = sync.destination.connection;
    if (!config.connections[conn]) {
      const hint = connectionNames.length ? `; did you mean "${closest(conn, connectionNames)}"?` : '; define it under `connections:`';
      issues.push({ path: at('destination', 'connection'), message: `unknown connection "${conn}"${hint}` });
      return;
    }
    const plugin = plugins.get(conn);
    if (!plugin) return;
    const parsed = plugin.destinationSchema ? plugin.destinationSchema.safeParse(sync.destination) : { success: true as const, data: sync.destination };
    if (!parsed.success) issues.push(...zodIssues(parsed.error, ['syncs', i, 'destination']));
    const { strategies } = { ...defaultCapabilities, ...plugin.capabilities };
    // A list that depends on the destination is known only for a valid destination block.
    const supported = typeof strategies !== 'function' ? strategies : parsed.success ? strategies(parsed.data as Record<string, unknown>) : undefined;
    if (supported && !supported.includes(sync.strategy)) {
      const where = typeof strategies === 'function' ? ' with this destination (see its documentation)' : '';
      issues.push({ path: at('strategy'), message: `plugin ${plugin.name} does not support ${sync.strategy}${where}; it supports ${supported.join(', ')}` });
    }
    // A loose schema lets any key through: a misspelt option would be ignored without a word.
    const known = plugin.destinationSchema && looseKeys(plugin.destinationSchema);
    for (const key of Object.keys(sync.destination)) {
      if (known && key !== 'connection' && !known.includes(key)) {
        issues.push({ path: at('destination', key), message: `unknown key for plugin ${plugin.name}; it knows ${known.join(', ')}` });
      }
    }
  });
}
