/** An open project: its config, its warehouse and its plugins, ready to run syncs. */
import { setFlagsFromString } from 'node:v8';
import type { Project } from './config/load.ts';
import type { SyncConfig } from './config/schema.ts';
import type { Sql } from './warehouse/sql.ts';
import { openWarehouse, type OpenOptions } from './warehouse/open.ts';
import { templateRenderer } from './templates.ts';
import { LimiterUnavailableError, Limiters } from './apply/limiter.ts';
import type { PluginContext, TemplateRenderer } from '../plugins/plugin.ts';
import { NotFoundError, UsageError } from './errors.ts';

export interface Engine {
  project: Project;
  sql: Sql;
  templates: TemplateRenderer;
  /** The rate limits and concurrency of the connections, this engine's own unless it was given some. */
  limiters: Limiters;
  close(): Promise<void>;
}

export interface EngineOptions extends OpenOptions {
  /**
   * Limiters that outlive the engine (a scheduler opens an engine per step, and a connection's
   * spacing must hold from one run to the next); the engine then leaves them open when it closes.
   */
  limiters?: Limiters;
}

/**
 * A run promotes garbage steadily (the records in flight outlive the young generation's
 * collections), and V8 lets the old generation grow to four times what a full collection left
 * alive before it collects again: a run's JS heap then peaked with its length, not with what it
 * holds. A first run of a million records peaked at 132 to 151 MB of heap and external memory,
 * against 70 to 79 for 100,000. Growing at most twice keeps it at 90 to 106 MB, and the runs took
 * as long. V8 reads the factor at each collection, so it holds from here on. The `ebb` command
 * sets it before it compiles (bin/ebb.js), so that its code cache is made and read under the same flags.
 */
function boundHeapGrowth(): void {
  setFlagsFromString('--heap-growing-percent=100');
}

/** Opens the warehouse of a loaded project. */
export async function openEngine(project: Project, options: EngineOptions = {}): Promise<Engine> {
  boundHeapGrowth();
  const { limiters: given, ...open } = options;
  const sql = await openWarehouse(project, open);
  const limiters = given ?? new Limiters();
  const close = async () => {
    // The limiters hold the connection to Redis (EBB_REDIS_URL), which would keep the process alive.
    try {
      if (!given) await limiters.close();
    } finally {
      await sql.warehouse.close();
    }
  };
  return { project, sql, templates: templateRenderer(project.dir), limiters, close };
}

/**
 * The plugin context of a connection, with the connection's rate limiter; a sync with a
 * `rate_limit` of its own (in ebb.yml, or an admin's override) waits for both. `onUnavailable`
 * hears when the limiter is gone (Redis lost) and refused a request.
 */
export function pluginContext(engine: Engine, connection: string, sync?: SyncConfig, onUnavailable?: (e: LimiterUnavailableError) => void): PluginContext<unknown> {
  const conn = engine.project.config.connections[connection];
  const plugin = engine.project.plugins.get(connection);
  if (!conn || !plugin) throw new UsageError(`unknown connection "${connection}"`);
  const shared = engine.limiters.for(connection, conn, engine.project.config.name);
  const own = sync?.rate_limit && engine.limiters.for(`${connection}/${sync.name}`, { ...conn, rate_limit: sync.rate_limit }, engine.project.config.name);
  const limiter = own ? { schedule: <T>(request: () => Promise<T>) => own.schedule(() => shared.schedule(request)) } : shared;
  return {
    config: plugin.configSchema.parse(conn.config),
    connection,
    projectDir: engine.project.dir,
    templates: engine.templates,
    schedule: (request) =>
      limiter.schedule(request).catch((e: unknown) => {
        if (e instanceof LimiterUnavailableError) onUnavailable?.(e);
        throw e;
      }),
  };
}

/** Finds syncs by name; an unknown name is a usage error that lists the known ones. */
export function selectSyncs(project: Project, names: string[]): SyncConfig[] {
  const all = project.config.syncs;
  return names.map((name) => {
    const sync = all.find((s) => s.name === name);
    if (!sync) throw new NotFoundError('sync', name, `unknown sync "${name}"; the syncs in ebb.yml are: ${all.map((s) => s.name).join(', ') || '(none)'}`);
    return sync;
  });
}

/** A sync's destination block as its plugin reads it: parsed by the plugin's schema, without `connection`. */
export function destinationOf(engine: Engine, sync: SyncConfig): Record<string, unknown> & { object: string } {
  const plugin = engine.project.plugins.get(sync.destination.connection);
  const { connection: _c, ...plain } = sync.destination;
  return (plugin?.destinationSchema ? plugin.destinationSchema.parse(sync.destination) : plain) as Record<string, unknown> & { object: string };
}
