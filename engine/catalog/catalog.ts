/**
 * The catalog: the `syncs` table, where the syncs deployed from code live next to the settings
 * that an admin stored in the warehouse (the `overrides` column, which wins over the code).
 */
import { z } from 'zod';
import { scheduleSchema, syncSchema, type SyncConfig } from '../config/schema.ts';
import type { Sql } from '../warehouse/sql.ts';
import { UsageError } from '../errors.ts';
import { resolveEnvVars } from '../config/load.ts';

/** The settings an admin may override in the warehouse, by `ebb pause` or a plain SQL UPDATE. */
export const overridesSchema = z
  .object({
    status: z.enum(['ACTIVE', 'PAUSED']).optional(),
    schedule: scheduleSchema.optional(),
    batch_size: z.number().int().positive().optional(),
    max_run_seconds: z.number().positive().optional(),
    rate_limit: z.object({ requests: z.number().int().positive(), per_seconds: z.number().positive() }).optional(),
  })
  .catch({});
export type Overrides = z.infer<typeof overridesSchema>;

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
  formerNames: string[];
  records: number;
}

function json(v: unknown): unknown {
  return typeof v === 'string' ? JSON.parse(v) : (v ?? null);
}

/** Reads the whole catalog. */
export async function readCatalog(sql: Sql): Promise<CatalogEntry[]> {
  return (await sql.runAndRead('catalog_list')).map((r) => {
    // The catalog stores `env_var()` calls, not secrets: resolve them as ebb.yml's are.
    const parsed = syncSchema.safeParse(resolveEnvVars(json(r.definition), [], []));
    const overrides = overridesSchema.parse(json(r.overrides) ?? {});
    return {
      name: String(r.sync_name),
      definition: parsed.success ? parsed.data : null,
      definitionHash: (r.definition_hash as string | null) ?? null,
      origin: r.origin === 'admin' ? 'admin' : 'code',
      projectVersion: r.project_version === null ? null : Number(r.project_version),
      status: (overrides.status ?? r.status ?? 'ACTIVE') as Status,
      health: String(r.health ?? 'PENDING'),
      overrides,
      formerNames: (json(r.former_names) as string[] | null) ?? [],
      records: Number(r.records ?? 0),
    };
  });
}

/** The definition that runs: the deployed one, with the admin's overrides on top. */
export function effectiveSync(entry: CatalogEntry): SyncConfig | null {
  if (!entry.definition) return null;
  const { schedule, batch_size, max_run_seconds, rate_limit } = entry.overrides;
  return {
    ...entry.definition,
    ...(schedule !== undefined && { schedule }),
    ...(batch_size !== undefined && { batch_size }),
    ...(max_run_seconds !== undefined && { max_run_seconds }),
    ...(rate_limit !== undefined && { rate_limit }),
  };
}

/** A sync's name and its former names (a rename keeps its runs and history under the old name). */
export async function namesOf(engine: { sql: Sql }, project: { config: { syncs: SyncConfig[] } }, name: string): Promise<string[]> {
  const entry = (await readCatalog(engine.sql)).find((e) => e.name === name);
  if (!entry && !project.config.syncs.some((s) => s.name === name)) {
    throw new UsageError(`unknown sync "${name}"; the syncs in ebb.yml are: ${project.config.syncs.map((s) => s.name).join(', ') || '(none)'}`);
  }
  return [name, ...(entry?.formerNames ?? [])];
}
