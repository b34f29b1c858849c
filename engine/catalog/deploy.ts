/**
 * `ebb deploy`: put the syncs defined in code into the catalog, the way a model-to-database
 * synchronisation engine seeds its content models: validate, analyse, commit, then merge the
 * settings an admin stored in the warehouse (they win over the code, see catalog.ts).
 */
import { userInfo } from 'node:os';
import type { Engine } from '../engine.ts';
import type { SyncConfig } from '../config/schema.ts';
import type { Project } from '../config/load.ts';
import { readCatalog, recordCount, scheduleText, type CatalogEntry } from './catalog.ts';
import { createHash, randomUUID } from 'node:crypto';
import { ConfigError, DestructiveChangeError, RunRefusedError } from '../errors.ts';
import { withDeployLock } from './deploy-lock.ts';
import { assessChange, describeChange, type DestructiveChange } from './destructive.ts';
import { validateProject, type FieldTypes } from '../config/validate.ts';

/** What a deploy does with one sync. */
export interface DeployStep {
  sync: string;
  kind: 'new' | 'updated' | 'identical' | 'renamed' | 'orphaned';
  /** What the commit does: create, update, rename, none, pause (orphan with state), delete (orphan without), keep (admin's). */
  action: 'create' | 'update' | 'rename' | 'none' | 'pause' | 'delete' | 'keep';
  /** For `updated` and `renamed`: the top-level fields of the definition that changed. */
  changed?: string[];
  /** For `renamed`: the former name. */
  from?: string;
  /** For `orphaned`: how many records of state the sync holds. */
  records?: number;
  /** For `updated` and `renamed`: a change that would delete, orphan or recreate the records it holds. */
  destructive?: DestructiveChange;
}

export interface DeployPlan {
  project: string;
  version: number;
  /** The highest project version that ever committed to this catalog. */
  catalogVersion: number | null;
  steps: DeployStep[];
}

/** A sync's definition as the catalog stores it: secrets go back to their `env_var()` calls. */
function storedDefinition(project: Project, sync: SyncConfig): string {
  return JSON.stringify(project.secrets.unresolve(sync));
}

/** A stable hash of a sync's definition, to tell whether the catalog holds the same one. */
export function definitionHash(project: Project, sync: SyncConfig): string {
  return createHash('sha256').update(storedDefinition(project, sync)).digest('hex').slice(0, 16);
}

function changedFields(before: SyncConfig | null, after: SyncConfig): string[] {
  const keys = new Set([...Object.keys(before ?? {}), ...Object.keys(after)]);
  return [...keys].filter((k) => JSON.stringify((before as Record<string, unknown> | null)?.[k]) !== JSON.stringify((after as Record<string, unknown>)[k])).sort();
}

/** Compares the syncs in code with the catalog (given, or read here); changes nothing. */
export async function analyseDeploy(engine: Engine, catalog: Promise<CatalogEntry[]> = readCatalog(engine.sql)): Promise<DeployPlan> {
  const { config } = engine.project;
  // Three reads, side by side (one round trip on Snowflake).
  const [all, projectRows, [{ version }]] = await Promise.all([
    catalog,
    engine.sql.runAndRead('deploy_projects'),
    engine.sql.runAndRead('deploy_last_version', { project_name: config.name }),
  ]);
  // Projects may share a state schema: another project's syncs are neither updated nor orphaned
  // here. A sync written before ebb kept its project is this one's if no other project deployed.
  const sole = projectRows.every((r) => String(r.project_name) === config.name);
  const theirs = (e: CatalogEntry) => (e.project !== null ? e.project !== config.name : e.origin === 'code' && !sole);
  const taken = config.syncs.flatMap((sync, i) => {
    const entry = all.find((e) => e.name === sync.name);
    return entry && theirs(entry) ? [{ path: `syncs[${i}].name`, message: `sync ${sync.name} belongs to project ${entry.project ?? '(another project)'} in this state schema; rename it, or give this project a state_schema of its own` }] : [];
  });
  if (taken.length > 0) throw new ConfigError(taken);
  const ours = all.filter((e) => !theirs(e));
  const byName = new Map(ours.map((e) => [e.name, e]));
  const steps: DeployStep[] = [];
  const claimed = new Set<string>();
  for (const sync of config.syncs) {
    const entry = byName.get(sync.name);
    claimed.add(sync.name);
    if (!entry && sync.renamed_from && byName.has(sync.renamed_from)) {
      claimed.add(sync.renamed_from);
      steps.push({ sync: sync.name, kind: 'renamed', action: 'rename', from: sync.renamed_from, changed: changedFields(byName.get(sync.renamed_from)!.definition, sync) });
    } else if (!entry) steps.push({ sync: sync.name, kind: 'new', action: 'create' });
    else if (entry.origin === 'admin') steps.push({ sync: sync.name, kind: 'updated', action: 'keep', changed: changedFields(entry.definition, sync) });
    else if (entry.definitionHash === definitionHash(engine.project, sync)) steps.push({ sync: sync.name, kind: 'identical', action: 'none' });
    else steps.push({ sync: sync.name, kind: 'updated', action: 'update', changed: changedFields(entry.definition, sync) });
  }
  // The code against the deployed definition, for the syncs whose state the commit would carry over.
  for (const step of steps.filter((s) => s.action === 'update' || s.action === 'rename')) {
    const entry = byName.get(step.from ?? step.sync)!;
    const sync = config.syncs.find((s) => s.name === step.sync)!;
    const destructive = entry.definition && (await assessChange(engine, entry.definition, sync, entry.name));
    if (destructive) step.destructive = destructive;
  }
  for (const entry of ours) {
    if (claimed.has(entry.name)) continue;
    const records = await recordCount(engine.sql, entry.name);
    const action = entry.origin === 'admin' ? 'keep' : records > 0 ? (entry.status === 'PAUSED' ? 'none' : 'pause') : 'delete';
    steps.push({ sync: entry.name, kind: 'orphaned', action, records });
  }
  return { project: config.name, version: config.version, catalogVersion: version === null ? null : Number(version), steps };
}

/** True when the project is older than what last committed to the catalog. */
export function isOutdated(plan: DeployPlan): boolean {
  return plan.catalogVersion !== null && plan.version < plan.catalogVersion;
}

/** Throws a `destructive_change` refusal listing the plan's destructive changes, if it has any. */
export function refuseDestructive(plan: DeployPlan): void {
  const changes = plan.steps.flatMap((s) => (s.destructive ? [s.destructive] : []));
  if (changes.length === 0) return;
  throw new DestructiveChangeError(
    `refusing a destructive change:\n${changes.map((c) => `  ${describeChange(c)}`).join('\n')}\n` +
      'Pass --allow-destructive to accept it into the catalog' +
      (changes.some((c) => c.resetsState) ? ' (a sync whose destination changes loses its record state; its history stays).' : '.'),
  );
}

/** Applies a deploy plan to the catalog; a destructive change needs `allowDestructive`. True if it wrote to the catalog. */
export async function commitDeploy(engine: Engine, plan: DeployPlan, options: { force?: boolean; allowDestructive?: boolean } = {}): Promise<boolean> {
  if (!options.allowDestructive) refuseDestructive(plan);
  if (isOutdated(plan) && !options.force) {
    throw new RunRefusedError(
      'outdated_project',
      `project ${plan.project} is version ${plan.version}, but version ${plan.catalogVersion} already deployed to this catalog; ` +
        'refusing to overwrite newer definitions with older ones. Deploy from the newer project, raise `version` in ebb.yml, or pass --force.',
    );
  }
  const changes = plan.steps.some((s) => s.action !== 'none' && s.action !== 'keep') || plan.catalogVersion !== plan.version;
  // Nothing to write takes no lock: a runner's auto-deploy of an unchanged project writes nothing.
  if (!changes) return false;
  await withDeployLock(engine.sql, () => writeCatalog(engine, plan));
  return true;
}

/** The catalog writes of a deploy plan, under the deploy lock. */
async function writeCatalog(engine: Engine, plan: DeployPlan): Promise<void> {
  const { sql, project } = engine;
  const catalog = new Map((await readCatalog(sql)).map((e): [string, CatalogEntry] => [e.name, e]));
  const code = new Map(project.config.syncs.map((s) => [s.name, s]));
  // Another project's deploy may have committed while this plan was made: it keeps its syncs.
  const taken = plan.steps.flatMap((step) => {
    const owner = step.action === 'none' || step.action === 'keep' ? null : (catalog.get(step.sync)?.project ?? null);
    return owner !== null && owner !== project.config.name ? [{ path: 'syncs', message: `sync ${step.sync} was deployed by project ${owner} meanwhile; nothing was written` }] : [];
  });
  if (taken.length > 0) throw new ConfigError(taken);
  for (const step of plan.steps) {
    const sync = code.get(step.sync);
    if ((step.action === 'create' || step.action === 'update' || step.action === 'rename') && sync) {
      const former = step.from ? [...(catalog.get(step.from)?.formerNames ?? []), step.from] : (catalog.get(step.sync)?.formerNames ?? []);
      await sql.run('catalog_upsert', {
        match_name: step.from ?? step.sync,
        sync_name: step.sync,
        definition: storedDefinition(engine.project, sync),
        definition_hash: definitionHash(engine.project, sync),
        project_version: project.config.version,
        schedule: scheduleText(sync.schedule),
        former_names: JSON.stringify(former),
        project_name: project.config.name,
      });
      if (step.from) await sql.run('state_rename', { sync_name: step.sync, former_name: step.from });
      // Its records are in the old destination: the next run sends every record to the new one.
      if (step.destructive?.resetsState) await sql.run('catalog_delete', { table: 'sync_record_state', sync_name: step.sync });
    } else if (step.action === 'pause') {
      await sql.run('sync_set_status', { sync_name: step.sync, status: 'PAUSED' });
    } else if (step.action === 'delete') {
      await sql.run('catalog_delete', { table: 'syncs', sync_name: step.sync });
    }
  }
  await sql.run('deploy_insert', {
    deploy_id: randomUUID(),
    project_name: plan.project,
    project_version: plan.version,
    deployed_by: userInfo().username,
    summary: JSON.stringify(plan.steps),
  });
}

/** Deploys the code into the catalog (`ebb deploy` without its output; for scripts and benchmarks). */
export async function deploySyncs(engine: Engine, options: { force?: boolean; allowDestructive?: boolean } = {}): Promise<DeployPlan> {
  const plan = await analyseDeploy(engine);
  await commitDeploy(engine, plan, options);
  return plan;
}

/** What an automatic deploy says about a destructive change it holds back. */
export function heldBack(change: DestructiveChange): string {
  return `not deploying ${describeChange(change)} The catalog keeps its deployed definition until \`ebb deploy --allow-destructive\`.`;
}

/**
 * The checks of `ebb deploy` and its analysis, side by side (their reads go together on
 * Snowflake); a check's error comes first, and an invalid sync commits nothing (ConfigError, exit 3).
 */
export async function checkAndAnalyse(engine: Engine, catalog?: Promise<CatalogEntry[]>): Promise<{ plan: DeployPlan; fieldTypes: FieldTypes }> {
  const analysed = analyseDeploy(engine, catalog);
  analysed.catch(() => undefined);
  const fieldTypes = await validateProject(engine.sql, engine.project.config.syncs);
  return { plan: await analysed, fieldTypes };
}

/** What an automatic deploy learned that its caller would otherwise ask the warehouse again. */
export interface AutoDeployed {
  /** The catalog as the deploy left it, when it wrote nothing. */
  catalog?: CatalogEntry[];
  /** The field types of the syncs in code, which passed the checks (see validateProject's `checked`). */
  fieldTypes?: FieldTypes;
}

/**
 * What `run`, `scheduler` and `worker` do first: deploy the code, unless `catalog.auto_deploy` is
 * off. An older project never overwrites a newer catalog: the commit is skipped with a warning,
 * and the catalog runs as it is. A destructive change is held back (the catalog keeps that sync's
 * deployed definition) unless `allowDestructive`; `onHeld` hears of it (default: a warning).
 */
export async function autoDeploy(
  engine: Engine,
  warn: (message: string) => void,
  options: { allowDestructive?: boolean; onHeld?: (change: DestructiveChange) => void } = {},
): Promise<AutoDeployed> {
  if (!engine.project.config.catalog.auto_deploy) return {};
  const catalog = readCatalog(engine.sql);
  catalog.catch(() => undefined);
  const { plan, fieldTypes } = await checkAndAnalyse(engine, catalog);
  if (isOutdated(plan)) {
    warn(`project version ${plan.version} is older than the catalog's (${plan.catalogVersion}); not deploying, running the syncs as the catalog holds them`);
    return { catalog: await catalog, fieldTypes };
  }
  const held = options.allowDestructive ? [] : plan.steps.filter((s) => s.destructive);
  for (const step of held) (options.onHeld ?? ((c) => warn(heldBack(c))))(step.destructive!);
  const wrote = await commitDeploy(engine, { ...plan, steps: plan.steps.filter((s) => !held.includes(s)) }, { allowDestructive: true });
  return { catalog: wrote ? undefined : await catalog, fieldTypes };
}
