/** Builds what the engine gives a plugin, so that tests can drive a plugin directly. */
import { templateRenderer } from '../../engine/templates.ts';
import type { Plugin, PluginContext, SessionContext, Strategy } from '../../plugins/plugin.ts';

/** Options of {@link pluginContext}; `config` is raw, as written in ebb.yml. */
export interface PluginContextOptions {
  config: unknown;
  projectDir: string;
  connection?: string;
  /** Defaults to calling the request at once (no rate limit). */
  schedule?: <T>(request: () => Promise<T>) => Promise<T>;
}

/** A connection's context; the config goes through the plugin's schema, as the engine does. */
export function pluginContext<C, D>(plugin: Plugin<C, D>, options: PluginContextOptions): PluginContext<C> {
  return {
    config: plugin.configSchema.parse(options.config),
    connection: options.connection ?? 'test',
    projectDir: options.projectDir,
    templates: templateRenderer(options.projectDir),
    schedule: options.schedule ?? ((request) => request()),
  };
}

/** Options of {@link sessionContext}; `destination` is raw, as written in ebb.yml. */
export interface SessionContextOptions extends PluginContextOptions {
  destination: Record<string, unknown>;
  strategy: Strategy;
  fields: string[];
  sync?: string;
}

/** A run's context; the destination goes through the plugin's schema, as the engine does. */
export function sessionContext<C, D>(plugin: Plugin<C, D>, options: SessionContextOptions): SessionContext<C, D> {
  const destination = (plugin.destinationSchema ? plugin.destinationSchema.parse(options.destination) : options.destination) as D & {
    object: string;
  };
  return {
    ...pluginContext(plugin, options),
    sync: options.sync ?? 'test_sync',
    strategy: options.strategy,
    destination,
    fields: options.fields,
  };
}
