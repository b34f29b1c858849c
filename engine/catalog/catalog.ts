/**
 * The catalog: the `syncs` table, where the syncs deployed from code live next to the settings
 * that an admin stored in the warehouse (the `overrides` column, which wins over the code).
 */
import { z } from 'zod';
import { scheduleSchema, syncSchema, type SyncConfig } from '../config/schema.ts';
import { syncAlertsSchema } from '../config/alerts.ts';
import type { Sql } from '../warehouse/sql.ts';
import { NotFoundError, type ConfigIssue } from '../errors.ts';
import { resolveEnvVars, zodIssues } from '../config/load.ts';

/** The settings an admin may override in the warehouse, by `ebb pause` or a plain SQL UPDATE. */
const overrideFields = {
  status: z.enum(['ACTIVE', 'PAUSED'], { error: 'expected "ACTIVE" or "PAUSED"' }),
  schedule: scheduleSchema,
  batch_size: z.number({ error: 'expected a positive integer' }).int({ error: 'expected a positive integer' }).positive({ error: 'expected a positive integer' }),
  max_run_seconds: z.number({ error: 'expected a positive number of seconds' }).positive({ error: 'expected a positive number of seconds' }),
  rate_limit: z.strictObject(
    { requests: z.number().int().positive(), per_seconds: z.number().positive() },
    { error: 'expected { "requests": <positive integer>, "per_seconds": <positive number> }' },
  ),
  /** Alert rules (each one over the code's) and channels. */
  alerts: syncAlertsSchema,
};
export const overridesSchema = z.object(overrideFields).partial();

/** A schedule as the catalog's `schedule` column holds it: `manual`, `live`, or JSON such as `{"every":"15m"}`. */
export function scheduleText(schedule: SyncConfig['schedule']): string {
  return typeof schedule === 'string' ? schedule : JSON.stringify(schedule);
}
export type Overrides = z.infer<typeof overridesSchema>;

/**
 * Reads an admin's overrides field by field: a bad field is reported with its path and ignored,
 * and never takes the others with it. Overrides that cannot be read at all, or a status that is
 * not valid, keep the sync PAUSED: an admin who meant to stop it must not see it run.
 */
export function parseOverrides(raw: unknown): { overrides: Overrides; issues: ConfigIssue[] } {
  const paused = (path: string, message: string) => ({ overrides: { status: 'PAUSED' as const }, issues: [{ path, message: `${message}; the sync stays PAUSED until this is fixed` }] });
  let value: unknown = raw ?? {};
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value) as unknown;
    } catch {
      return paused('overrides', 'not valid JSON');
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return paused('overrides', 'expected a JSON object');
  const overrides: Record<string, unknown> = {};
  const issues: ConfigIssue[] = [];
  for (const [key, field] of Object.entries(value)) {
    const schema = overrideFields[key as keyof typeof overrideFields] as z.ZodType | undefined;
    if (!schema) {
      issues.push({ path: `overrides.${key}`, message: `unknown setting; an admin may override ${Object.keys(overrideFields).join(', ')}` });
      continue;
    }
    const parsed = schema.safeParse(field);
    if (parsed.success) overrides[key] = parsed.data;
    else if (key === 'status') {
      overrides.status = 'PAUSED';
      issues.push(...paused('overrides.status', parsed.error.issues[0].message).issues);
    } else issues.push(...zodIssues(parsed.error, ['overrides', key]).map((i) => ({ ...i, message: `${i.message}; ignored, the value from the code applies` })));
  }
  return { overrides: overrides as Overrides, issues };
}

export type Status = 'ACTIVE' | 'PAUSED' | 'COMPLETED' | 'ERROR';

/** A row of the catalog, parsed. */
export interface CatalogEntry {
  name: string;
  /** The definition as deployed from code (or written by an admin). */
  definition: SyncConfig | null;
  definitionHash: string | null;
  origin: 'code' | 'admin';
  projectVersion: number | null;
  /** The lifecycle status, with an admin's status override applied. */
  status: Status;
  health: string;
  overrides: Overrides;
  /** Fields of the overrides that could not be read, with their paths: reported, never applied. */
  overrideIssues: ConfigIssue[];
  formerNames: string[];
  /** The project whose deploy wrote it; null for an admin's sync, or one written before ebb kept it. */
  project: string | null;
}

function json(v: unknown): unknown {
  return typeof v === 'string' ? JSON.parse(v) : (v ?? null);
}

/**
 * Reads the whole catalog, or (with `name`) the entry of one sync. How many records each holds is
 * {@link recordCount}'s, read only where it is needed: a count scans the state.
 */
export async function readCatalog(sql: Sql, name?: string): Promise<CatalogEntry[]> {
  return (await sql.runAndRead('catalog_list', { name: name ?? null })).map((r) => {
    // The catalog stores `env_var()` calls, not secrets: resolve them as ebb.yml's are.
    const parsed = syncSchema.safeParse(resolveEnvVars(json(r.definition), [], []));
    const { overrides, issues } = parseOverrides(r.overrides);
    return {
      name: String(r.sync_name),
      definition: parsed.success ? parsed.data : null,
      definitionHash: (r.definition_hash as string | null) ?? null,
      origin: r.origin === 'admin' ? 'admin' : 'code',
      projectVersion: r.project_version === null ? null : Number(r.project_version),
      status: (overrides.status ?? r.status ?? 'ACTIVE') as Status,
      health: String(r.health ?? 'PENDING'),
      overrides,
      overrideIssues: issues,
      formerNames: (json(r.former_names) as string[] | null) ?? [],
      project: r.project_name === null || r.project_name === undefined ? null : String(r.project_name),
    };
  });
}

/** How many records of a sync the state holds. */
export async function recordCount(sql: Sql, name: string): Promise<number> {
  const [{ n }] = await sql.runAndRead('state_count', { sync_name: name });
  return Number(n);
}

/** The definition that runs: the deployed one, with the admin's overrides on top. */
export function effectiveSync(entry: CatalogEntry): SyncConfig | null {
  if (!entry.definition) return null;
  const { schedule, batch_size, max_run_seconds, rate_limit, alerts } = entry.overrides;
  const code = entry.definition.alerts;
  return {
    ...entry.definition,
    ...(schedule !== undefined && { schedule }),
    ...(batch_size !== undefined && { batch_size }),
    ...(max_run_seconds !== undefined && { max_run_seconds }),
    ...(rate_limit !== undefined && { rate_limit }),
    ...(alerts !== undefined && { alerts: { rules: { ...code?.rules, ...alerts.rules }, notify: alerts.notify ?? code?.notify } }),
  };
}

/** A sync's name and its former names (a rename keeps its runs and history under the old name). */
export async function namesOf(engine: { sql: Sql }, project: { config: { syncs: SyncConfig[] } }, name: string): Promise<string[]> {
  const [entry] = await readCatalog(engine.sql, name);
  if (!entry && !project.config.syncs.some((s) => s.name === name)) {
    throw new NotFoundError('sync', name, `unknown sync "${name}"; the syncs in ebb.yml are: ${project.config.syncs.map((s) => s.name).join(', ') || '(none)'}`);
  }
  return [name, ...(entry?.formerNames ?? [])];
}
