/** The syncs of a project as `ebb status` shows them, and one sync in full. */
import type { Engine } from '../engine.ts';
import { readCatalog, recordCount, scheduleText, type CatalogEntry, type Overrides } from '../catalog/catalog.ts';
import type { SyncConfig } from '../config/schema.ts';
import { topErrors, type TopError } from '../record/record.ts';
import { redactValue } from '../redact.ts';
import { NotFoundError, type ConfigIssue } from '../errors.ts';
import { firingAlerts, type FiringAlert } from '../alerts/alerts.ts';

/**
 * One sync as `ebb status --json` shows it: the columns of the sync_health view (schedule, last
 * run, its counts, records and failing records), then what the catalog adds. `status` is the
 * catalog's (ACTIVE, PAUSED, COMPLETED, ERROR), or NOT DEPLOYED for a sync only in ebb.yml.
 */
export interface SyncRow extends Record<string, unknown> {
  sync_name: string;
  status: string;
  health: string;
  origin?: 'code' | 'admin';
  overrides?: Overrides | null;
  /** Overrides that were not applied, as `path: message`. */
  override_issues?: string[] | null;
  top_error?: TopError | null;
  tags: string[];
  /** The alert rules firing on it now. */
  alerts_firing: Array<Omit<FiringAlert, 'sync_name'>>;
}

export interface ListSyncsOptions {
  tag?: string;
  status?: string;
  health?: string;
}

/** Every sync of the catalog, then those in ebb.yml that no deploy has put there yet. */
export async function listSyncs(engine: Engine, options: ListSyncsOptions = {}): Promise<SyncRow[]> {
  const rows = await syncRows(engine, await readCatalog(engine.sql));
  return rows.filter(
    (r) => (!options.tag || r.tags.includes(options.tag)) && (!options.status || r.status === options.status) && (!options.health || r.health === options.health),
  );
}

/** The rows of these catalog entries, then of the syncs in ebb.yml (the one named, with `name`) that no deploy has put there yet. */
async function syncRows(engine: Engine, catalog: CatalogEntry[], name?: string): Promise<SyncRow[]> {
  // The syncs' health beside their firing alerts: one round trip on Snowflake.
  const [healthRows, firing] = await Promise.all([engine.sql.runAndRead('status_list'), firingAlerts(engine, catalog)]);
  const health = new Map(healthRows.map((r) => [String(r.sync_name), r]));
  const listed = new Set(catalog.map((e) => e.name));
  const failing = [...health.values()]
    .filter((r) => listed.has(String(r.sync_name)) && r.last_run_id && Number(r.failed ?? 0) + Number(r.source_failures ?? 0) > 0)
    .map((r) => String(r.last_run_id));
  const tops = await topErrors(engine.sql, failing);
  const firingOn = (name: string) => firing.filter((a) => a.sync_name === name).map(({ sync_name: _s, ...alert }) => alert);
  const rows: SyncRow[] = catalog.map((e) => {
    const row = health.get(e.name);
    return {
      ...row,
      // The schedule in force: an admin's override wins over the deployed one.
      schedule: e.overrides.schedule === undefined ? row?.schedule : scheduleText(e.overrides.schedule),
      sync_name: e.name,
      status: e.status,
      health: e.health,
      origin: e.origin,
      overrides: Object.keys(e.overrides).length ? e.overrides : null,
      override_issues: e.overrideIssues.length ? e.overrideIssues.map(issueText) : null,
      top_error: (row?.last_run_id ? tops.get(String(row.last_run_id)) : undefined) ?? null,
      tags: e.definition?.tags ?? [],
      alerts_firing: firingOn(e.name),
    };
  });
  for (const sync of engine.project.config.syncs) {
    if ((name === undefined || sync.name === name) && !catalog.some((e) => e.name === sync.name)) {
      rows.push({ sync_name: sync.name, status: 'NOT DEPLOYED', health: 'PENDING', tags: sync.tags, alerts_firing: [] });
    }
  }
  return rows;
}

/** One sync: its definitions (secrets masked), the admin's overrides and its place in the catalog. */
export interface SyncDetail {
  sync_name: string;
  /** As ebb.yml defines it now; null when only the catalog holds it. */
  code: SyncConfig | null;
  /** As last deployed; null when not deployed. */
  deployed: SyncConfig | null;
  status: string;
  health: string;
  origin: 'code' | 'admin' | null;
  overrides: Overrides;
  override_issues: ConfigIssue[];
  former_names: string[];
  records: number;
  /** The row `listSyncs` gives for it: last run, counts, failing records, most common error. */
  summary: SyncRow;
}

/** One sync by name; an unknown name is a NotFoundError. */
export async function getSync(engine: Engine, name: string): Promise<SyncDetail> {
  const code = engine.project.config.syncs.find((s) => s.name === name) ?? null;
  const [entry]: Array<CatalogEntry | undefined> = await readCatalog(engine.sql, name);
  const [summary] = await syncRows(engine, entry ? [entry] : [], name);
  if (!summary) throw new NotFoundError('sync', name, `unknown sync "${name}"; neither ebb.yml nor the catalog holds it`);
  return redactValue({
    sync_name: name,
    code,
    deployed: entry?.definition ?? null,
    status: summary.status,
    health: summary.health,
    origin: entry?.origin ?? null,
    overrides: entry?.overrides ?? {},
    override_issues: entry?.overrideIssues ?? [],
    former_names: entry?.formerNames ?? [],
    records: entry ? await recordCount(engine.sql, name) : 0,
    summary,
  });
}

function issueText(issue: ConfigIssue): string {
  return `${issue.path}: ${issue.message}`;
}
