// Module hooks for project plugins (registered by plugins.ts): plain JavaScript, since they run in
// the loader's own thread. A plugin file of a project is TypeScript with `import`/`export`, so it
// is loaded as an ES module even where no package.json says `"type": "module"` (a project from
// `ebb init` has none); and an import that the project cannot resolve (`zod`, which plugins use
// for their schemas) is resolved from ebb's own dependencies, so that a project needs no
// node_modules of its own.

let ebbUrl = '';

/** Receives the URL that ebb's own dependencies resolve from. */
export function initialize(data) {
  ebbUrl = data.ebbUrl;
}

/** Node's resolve hook. */
export async function resolve(specifier, context, next) {
  let resolved;
  try {
    resolved = await next(specifier, context);
  } catch (e) {
    const bare = !/^(\.|\/|[a-zA-Z][a-zA-Z0-9+.-]*:)/.test(specifier);
    if (!bare || e?.code !== 'ERR_MODULE_NOT_FOUND') throw e;
    resolved = await next(specifier, { ...context, parentURL: ebbUrl });
  }
  const plugin = /\.m?ts$/.test(resolved.url) && resolved.url.startsWith('file:') && !resolved.url.includes('/node_modules/');
  return plugin ? { ...resolved, format: 'module' } : resolved;
}
