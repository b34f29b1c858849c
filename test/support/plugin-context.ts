/** Builds what the engine gives a plugin, so that tests can drive a plugin directly. */
import nunjucks from 'nunjucks';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plugin, PluginContext, SessionContext, Strategy, TemplateRenderer } from '../../plugins/plugin.ts';

const builtinTemplates = fileURLToPath(new URL('../../templates/', import.meta.url));

/**
 * A nunjucks renderer set up like the engine's: the project's `templates/` first, then ebb's,
 * no autoescape, and a `tojson` filter (jinja's name; nunjucks itself only has `dump`).
 */
export function testRenderer(projectDir: string): TemplateRenderer {
  const loader = new nunjucks.FileSystemLoader([join(projectDir, 'templates'), builtinTemplates]);
  const env = new nunjucks.Environment(loader, { autoescape: false, throwOnUndefined: false });
  env.addFilter('tojson', (value: unknown) => JSON.stringify(value ?? null));
  return {
    renderString: (template, context) => env.renderString(template, context),
    render: (name, context) => env.render(name, context),
  };
}

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
    templates: testRenderer(options.projectDir),
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
