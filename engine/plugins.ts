/** Finds a plugin by its name in ebb.yml: a built-in, or a module path relative to the project. */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { register } from 'node:module';
import type { Plugin } from '../plugins/plugin.ts';
import { packageRoot } from './paths.ts';
import { importModule } from './import-module.ts';

// Each plugin has its own config types; the engine only sees the erased contract.
const builtins: Record<string, () => Promise<{ default: unknown }>> = {
  brevo: () => import('../plugins/brevo/index.ts'),
  file: () => import('../plugins/file/index.ts'),
  http: () => import('../plugins/http/index.ts'),
  hubspot: () => import('../plugins/hubspot/index.ts'),
  postgres: () => import('../plugins/postgres/index.ts'),
  salesforce: () => import('../plugins/salesforce/index.ts'),
  webhook: () => import('../plugins/webhook/index.ts'),
};

let hooked = false;
let typescript = false;

/**
 * Lets a project's plugin load as an ES module and import ebb's dependencies (see plugin-hooks.js);
 * a plugin written in TypeScript is compiled as it loads, by tsx, which ebb itself does not need.
 */
async function registerHooks(path: string): Promise<void> {
  if (!typescript && /\.[mc]?ts$/.test(path)) {
    typescript = true;
    (await importModule<{ register(): unknown }>('tsx/esm/api')).register();
  }
  if (hooked) return;
  hooked = true;
  register(new URL('engine/plugin-hooks.js', packageRoot), { data: { ebbUrl: import.meta.url } });
}

/** Loads a plugin; throws with a message that lists the built-ins when the name is unknown. */
export async function loadPlugin(name: string, projectDir: string): Promise<Plugin> {
  const builtin = builtins[name];
  if (builtin) return (await builtin()).default as Plugin;
  if (!name.startsWith('.') && !name.startsWith('/')) {
    throw new Error(`unknown plugin "${name}"; built-in plugins are ${Object.keys(builtins).join(', ')}, or give a path such as ./plugins/my-app.ts`);
  }
  let mod: { default?: Plugin };
  const path = resolve(projectDir, name);
  await registerHooks(path);
  try {
    mod = await importModule<{ default?: Plugin }>(pathToFileURL(path).href);
  } catch (e) {
    throw new Error(`cannot load plugin module ${name}: ${(e as Error).message}`);
  }
  if (!mod.default?.name || !mod.default.configSchema || !mod.default.open) {
    throw new Error(`plugin module ${name} must export default a plugin object (see plugins/plugin.ts)`);
  }
  return mod.default;
}
