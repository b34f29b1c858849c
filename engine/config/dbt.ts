/**
 * dbt integration: `source: { dbt_model: customers }` is resolved through dbt's `manifest.json`
 * when ebb.yml is loaded, and `ebb run --dbt-models customers,orders` selects the syncs that read
 * those models.
 *
 * A model reference is `name`, `package.name`, either with a version (`name.v2`), or a dbt
 * unique_id (`model.package.name`, `model.package.name.v2`). Without a version, a versioned model
 * resolves to its latest version, as dbt's `ref()` does.
 *
 * The relation a model resolves to is `schema.alias` on DuckDB (dbt-duckdb's `database` is the
 * catalog name of the file it wrote, which need not be the name ebb attaches the file under) and
 * `database.schema.alias` on Snowflake. `source.table` is set to it; `source.dbt_model` stays in
 * the definition, so that `--dbt-models` can select the sync.
 */
import { readFile } from 'node:fs/promises';
import { resolve, join } from 'node:path';
import { z } from 'zod';
import { closest } from 'fastest-levenshtein';
import { formatPath, type ConfigIssue } from '../errors.ts';
import type { ProjectConfig } from './schema.ts';

/** Where dbt writes its manifest by default, relative to ebb.yml. */
export const defaultManifest = 'target/manifest.json';

/** One model of a dbt project, as ebb needs it. */
export interface DbtModel {
  uniqueId: string;
  package: string;
  name: string;
  /** The model's version, for versioned models (`versions:` in its YAML); else null. */
  version: string | null;
  latestVersion: string | null;
  database: string | null;
  schema: string;
  alias: string;
  materialized: string | null;
}

/** The parts of a dbt manifest that ebb reads. */
export interface DbtManifest {
  path: string;
  dbtVersion: string | null;
  projectName: string | null;
  models: DbtModel[];
  /** The names of the other refable resources (seeds, snapshots), to say what a name is. */
  others: Map<string, string>;
}

const version = z.union([z.string(), z.number()]).nullish();

const modelNode = z.looseObject({
  resource_type: z.literal('model'),
  unique_id: z.string(),
  package_name: z.string(),
  name: z.string(),
  database: z.string().nullish(),
  schema: z.string(),
  alias: z.string().nullish(),
  version,
  latest_version: version,
  config: z.looseObject({ materialized: z.string().nullish() }).nullish(),
});

const manifestShape = z.looseObject({
  metadata: z.looseObject({ dbt_version: z.string().nullish(), project_name: z.string().nullish() }).nullish(),
  nodes: z.record(z.string(), z.unknown()),
});

/** A manifest that cannot be used; `message` names the file and what to do. */
export class ManifestError extends Error {}

/** Reads and indexes a dbt manifest.json. Throws a ManifestError that names the file. */
export async function readManifest(path: string): Promise<DbtManifest> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new ManifestError(
      `no dbt manifest at ${path}; run \`dbt compile\` or \`dbt build\` to write it, or point ebb at it with --dbt-manifest PATH or \`dbt: { manifest: PATH }\` in ebb.yml`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ManifestError(`${path} is not valid JSON (${(e as Error).message}); run \`dbt compile\` again`);
  }
  const parsed = manifestShape.safeParse(json);
  if (!parsed.success) throw new ManifestError(`${path} does not look like a dbt manifest.json: it has no \`nodes\``);
  const models: DbtModel[] = [];
  const others = new Map<string, string>();
  for (const node of Object.values(parsed.data.nodes)) {
    const model = modelNode.safeParse(node);
    if (!model.success) {
      const other = node as { resource_type?: unknown; name?: unknown };
      if ((other.resource_type === 'seed' || other.resource_type === 'snapshot') && typeof other.name === 'string') others.set(other.name, other.resource_type);
      continue;
    }
    const m = model.data;
    models.push({
      uniqueId: m.unique_id,
      package: m.package_name,
      name: m.name,
      version: m.version == null ? null : String(m.version),
      latestVersion: m.latest_version == null ? null : String(m.latest_version),
      database: m.database ?? null,
      schema: m.schema,
      alias: m.alias ?? m.name,
      materialized: m.config?.materialized ?? null,
    });
  }
  return { path, dbtVersion: parsed.data.metadata?.dbt_version ?? null, projectName: parsed.data.metadata?.project_name ?? null, models, others };
}

/** A parsed model reference: `[model.][package.]name[.vN]`. */
export interface DbtRef {
  package: string | null;
  name: string;
  version: string | null;
}

/** Parses `name`, `package.name`, `name.v2`, `package.name.v2` or a unique_id `model.package.name[.v2]`. */
export function parseDbtRef(ref: string): DbtRef | null {
  let parts = ref.trim().split('.');
  if (parts.length >= 3 && parts[0] === 'model') parts = parts.slice(1);
  let version: string | null = null;
  if (parts.length >= 2 && /^v\d+$/.test(parts[parts.length - 1])) version = parts.pop()!.slice(1);
  if (parts.length > 2 || parts.some((p) => p === '')) return null;
  return parts.length === 2 ? { package: parts[0], name: parts[1], version } : { package: null, name: parts[0], version };
}

/** True when the sync's `dbt_model` and a `--dbt-models` selector name the same model. */
export function dbtModelMatches(dbtModel: string, selector: string): boolean {
  const a = parseDbtRef(dbtModel);
  const b = parseDbtRef(selector);
  if (!a || !b || a.name.toLowerCase() !== b.name.toLowerCase()) return false;
  if (a.package && b.package && a.package.toLowerCase() !== b.package.toLowerCase()) return false;
  return !(a.version && b.version && a.version !== b.version);
}

const numeric = (v: string | null) => (v === null ? Number.NEGATIVE_INFINITY : Number.parseFloat(v));

/** Finds the model a reference names; returns it, or the message that explains why not. */
export function findModel(manifest: DbtManifest, ref: string): DbtModel | string {
  const parsed = parseDbtRef(ref);
  if (!parsed) return `"${ref}" is not a dbt model reference; write the model's name, package.name, or name.vN`;
  const named = manifest.models.filter((m) => m.name.toLowerCase() === parsed.name.toLowerCase());
  const candidates = named.filter((m) => !parsed.package || m.package.toLowerCase() === parsed.package.toLowerCase());
  if (candidates.length === 0) {
    const other = manifest.others.get(parsed.name);
    if (other) return `"${parsed.name}" is a dbt ${other}, not a model; read it with \`table: <schema>.${parsed.name}\``;
    if (named.length > 0) return `package ${parsed.package} has no model "${parsed.name}"; did you mean "${named[0].package}.${named[0].name}"?`;
    const names = [...new Set(manifest.models.map((m) => m.name))];
    const hint = names.length > 0 ? `; did you mean "${closest(parsed.name, names)}"?` : '; the manifest has no models';
    return `unknown dbt model "${ref}" in ${manifest.path}${hint}`;
  }
  const packages = [...new Set(candidates.map((m) => m.package))];
  if (packages.length > 1) {
    return `dbt model "${ref}" is ambiguous: packages ${packages.join(' and ')} both define it; write ${packages.map((p) => `"${p}.${parsed.name}"`).join(' or ')}`;
  }
  let model: DbtModel | undefined;
  if (parsed.version !== null) {
    model = candidates.find((m) => m.version === parsed.version);
    if (!model) {
      const versions = candidates.map((m) => m.version).filter((v) => v !== null);
      return `dbt model "${parsed.name}" has no version ${parsed.version}${versions.length ? `; its versions are ${versions.map((v) => `v${v}`).join(', ')}` : '; it is not versioned'}`;
    }
  } else {
    // Like ref('name'): the latest version of a versioned model, or else its highest version.
    const latest = candidates.find((m) => m.latestVersion !== null)?.latestVersion ?? null;
    model = (latest !== null && candidates.find((m) => m.version === latest)) || [...candidates].sort((x, y) => numeric(y.version) - numeric(x.version))[0];
  }
  if (model.materialized === 'ephemeral') {
    return `dbt model "${ref}" is ephemeral: it has no table or view in the warehouse; materialize it as a view or a table`;
  }
  return model;
}

/** Quotes one part of a relation only where it needs it, so that it reads like what a user would write. */
function part(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_$]*$/.test(name) ? name : `"${name.replaceAll('"', '""')}"`;
}

/** The relation `source.table` gets for a model: `schema.alias` on DuckDB, `database.schema.alias` on Snowflake. */
export function relationOf(model: DbtModel, warehouse: ProjectConfig['warehouse']['type']): string {
  const parts = warehouse === 'snowflake' && model.database ? [model.database, model.schema, model.alias] : [model.schema, model.alias];
  return parts.map(part).join('.');
}

/**
 * Resolves every `source.dbt_model` of the config in place (it sets `source.table`). Reads the
 * manifest only when a sync needs it: `--dbt-manifest` (relative to the working directory) wins
 * over `dbt.manifest` (relative to ebb.yml), which defaults to target/manifest.json.
 */
export async function resolveDbtModels(config: ProjectConfig, dir: string, cliManifest: string | undefined, issues: ConfigIssue[]): Promise<DbtManifest | null> {
  const users = config.syncs.map((sync, i) => ({ sync, i })).filter(({ sync }) => sync.source.dbt_model !== undefined);
  if (users.length === 0) return null;
  for (const { sync, i } of users) {
    if (sync.source.table !== undefined) issues.push({ path: formatPath(['syncs', i, 'source']), message: 'give exactly one of `table`, `query` or `dbt_model`' });
  }
  const path = cliManifest ? resolve(cliManifest) : join(dir, config.dbt?.manifest ?? defaultManifest);
  let manifest: DbtManifest;
  try {
    manifest = await readManifest(path);
  } catch (e) {
    if (!(e instanceof ManifestError)) throw e;
    issues.push({ path: cliManifest ? '--dbt-manifest' : config.dbt?.manifest ? 'dbt.manifest' : '', message: e.message });
    return null;
  }
  for (const { sync, i } of users) {
    if (sync.source.table !== undefined) continue;
    const found = findModel(manifest, sync.source.dbt_model!);
    if (typeof found === 'string') issues.push({ path: formatPath(['syncs', i, 'source', 'dbt_model']), message: found });
    else sync.source.table = relationOf(found, config.warehouse.type);
  }
  return manifest;
}
