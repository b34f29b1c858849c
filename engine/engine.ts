/** An open project: its config, its warehouse and its plugins, ready to run syncs. */
import { createHash } from 'node:crypto';
import type { Project } from './config/load.ts';
import type { SyncConfig } from './config/schema.ts';
import type { Sql } from './warehouse/sql.ts';
import { openWarehouse } from './warehouse/open.ts';
import { templateRenderer } from './templates.ts';
import { limiterFor } from './apply/limiter.ts';
import type { PluginContext, TemplateRenderer } from '../plugins/plugin.ts';
import { UsageError } from './errors.ts';

export interface Engine {
  project: Project;
  sql: Sql;
  templates: TemplateRenderer;
  close(): Promise<void>;
}

/** Opens the warehouse of a loaded project. */
export async function openEngine(project: Project): Promise<Engine> {
  const sql = await openWarehouse(project);
  return { project, sql, templates: templateRenderer(project.dir), close: () => sql.warehouse.close() };
}

/** The plugin context of a connection, with the connection's rate limiter. */
export function pluginContext(engine: Engine, connection: string): PluginContext<unknown> {
  const conn = engine.project.config.connections[connection];
  const plugin = engine.project.plugins.get(connection);
  if (!conn || !plugin) throw new UsageError(`unknown connection "${connection}"`);
  const limiter = limiterFor(connection, conn);
  return {
    config: plugin.configSchema.parse(conn.config),
    connection,
    projectDir: engine.project.dir,
    templates: engine.templates,
    schedule: (request) => limiter.schedule(request),
  };
}

/** Finds syncs by name; an unknown name is a usage error that lists the known ones. */
export function selectSyncs(project: Project, names: string[]): SyncConfig[] {
  const all = project.config.syncs;
  return names.map((name) => {
    const sync = all.find((s) => s.name === name);
    if (!sync) throw new UsageError(`unknown sync "${name}"; the syncs in ebb.yml are: ${all.map((s) => s.name).join(', ') || '(none)'}`);
    return sync;
  });
}

/** A stable hash of a sync's definition, to tell whether the catalog holds the same one. */
export function definitionHash(sync: SyncConfig): string {
  return createHash('sha256').update(JSON.stringify(sync)).digest('hex').slice(0, 16);
}

/** Puts the syncs of ebb.yml into the `syncs` catalog table. */
export async function registerSyncs(engine: Engine, syncs: SyncConfig[] = engine.project.config.syncs): Promise<void> {
  for (const sync of syncs) {
    await engine.sql.run('sync_register', {
      sync_name: sync.name,
      definition: JSON.stringify(sync),
      definition_hash: definitionHash(sync),
      project_version: engine.project.config.version,
      schedule: typeof sync.schedule === 'string' ? sync.schedule : JSON.stringify(sync.schedule),
    });
  }
}
