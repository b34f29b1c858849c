/** A sync's lifecycle in the catalog: pause, resume, overrides, revert, delete. */
import type { Engine } from '../engine.ts';
import { overridesSchema, readCatalog, recordCount, type CatalogEntry, type Overrides, type Status } from '../catalog/catalog.ts';
import { ConfigError, NotFoundError, UsageError } from '../errors.ts';
import { autoDeploy } from '../catalog/deploy.ts';
import { zodIssues } from '../config/load.ts';

export interface LifecycleOptions {
  /** Called with each warning (a sync that could not be deployed, one still in ebb.yml after its deletion). */
  warn?: (message: string) => void;
}

/** A sync's place in the catalog after a change. */
export interface LifecycleResult {
  sync: string;
  status: Status;
  overrides: Overrides;
}

/**
 * The catalog entry of a sync. As `run` does, the code is deployed first, so a sync can be paused
 * before it ever ran; an invalid ebb.yml deploys nothing, but a broken sync can still be paused.
 */
async function entryOf(engine: Engine, name: string, options: LifecycleOptions): Promise<CatalogEntry> {
  const warn = options.warn ?? (() => undefined);
  await autoDeploy(engine, warn).catch((e: unknown) => {
    if (!(e instanceof ConfigError)) throw e;
    warn(`not deploying, acting on the catalog as it is: ${e.message}`);
  });
  const catalog = await readCatalog(engine.sql);
  const entry = catalog.find((e) => e.name === name);
  if (!entry) throw new NotFoundError('sync', name, `unknown sync "${name}"; the catalog holds: ${catalog.map((e) => e.name).join(', ') || '(none; run `ebb deploy`)'}`);
  return entry;
}

/** Writes the status and the overrides of a sync (the overrides as an admin would, in the warehouse). */
async function setStatus(engine: Engine, entry: CatalogEntry, status: Status, overrides: Overrides): Promise<LifecycleResult> {
  await engine.sql.run('sync_set_status', { sync_name: entry.name, status, overrides: Object.keys(overrides).length ? JSON.stringify(overrides) : null });
  return { sync: entry.name, status, overrides };
}

/** Pauses a sync: runs refuse it and `run --all` skips it (an admin override). */
export async function pauseSync(engine: Engine, name: string, options: LifecycleOptions = {}): Promise<LifecycleResult> {
  const entry = await entryOf(engine, name, options);
  return setStatus(engine, entry, 'PAUSED', { ...entry.overrides, status: 'PAUSED' });
}

/** Resumes a sync that is paused, or in ERROR or COMPLETED. */
export async function resumeSync(engine: Engine, name: string, options: LifecycleOptions = {}): Promise<LifecycleResult> {
  const entry = await entryOf(engine, name, options);
  const { status: _status, ...rest } = entry.overrides;
  return setStatus(engine, entry, 'ACTIVE', rest);
}

/** Drops a sync's admin overrides: the settings from code apply again. `removed` names them. */
export async function revertSync(engine: Engine, name: string, options: LifecycleOptions = {}): Promise<LifecycleResult & { removed: string[] }> {
  const entry = await entryOf(engine, name, options);
  const result = await setStatus(engine, entry, entry.overrides.status === 'PAUSED' ? 'ACTIVE' : entry.status, {});
  return { ...result, removed: Object.keys(entry.overrides) };
}

/**
 * Sets some of a sync's admin overrides (status, schedule, batch_size, max_run_seconds,
 * rate_limit), keeping the others; a field given as null is removed. Every field is checked as
 * ebb.yml is: a bad one is a ConfigError with its path (`overrides.batch_size`), and nothing changes.
 */
export async function setOverrides(engine: Engine, name: string, changes: Record<string, unknown>, options: LifecycleOptions = {}): Promise<LifecycleResult> {
  const set = Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== null));
  const parsed = overridesSchema.strict().safeParse(set);
  if (!parsed.success) throw new ConfigError(zodIssues(parsed.error, ['overrides']), 'the override');
  const entry = await entryOf(engine, name, options);
  const kept = Object.fromEntries(Object.entries(entry.overrides).filter(([k]) => !(k in changes)));
  const overrides: Overrides = { ...kept, ...parsed.data };
  // Without a status override the catalog's own status applies: a pause that is lifted is ACTIVE.
  const status = overrides.status ?? (entry.overrides.status === 'PAUSED' ? 'ACTIVE' : entry.status);
  return setStatus(engine, entry, status, overrides);
}

/**
 * Removes a sync from the catalog with its record state; its runs and history stay. Without
 * `confirmed` it refuses, saying how many records' state it would drop.
 */
export async function deleteSync(engine: Engine, name: string, options: LifecycleOptions & { confirmed?: boolean } = {}): Promise<{ sync: string; records: number }> {
  const entry = await entryOf(engine, name, options);
  const records = await recordCount(engine.sql, entry.name);
  if (!options.confirmed) throw new UsageError(`deleting ${name} drops its state of ${records} records (history stays); confirm with --yes`);
  for (const table of ['sync_record_state', 'syncs']) await engine.sql.run('catalog_delete', { table, sync_name: name });
  if (engine.project.config.syncs.some((s) => s.name === name)) options.warn?.(`${name} is still in ebb.yml; the next deploy creates it again. Remove it there.`);
  return { sync: name, records };
}
