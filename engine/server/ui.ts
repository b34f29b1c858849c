/** The Sync Manager's page: `ui/index.html` at `/`, the other files of `ui/` under `/assets/`. */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { serveStatic } from '@hono/node-server/serve-static';

/** The folder of the page's files in this install of ebb. */
export const uiDir = fileURLToPath(new URL('../../ui/', import.meta.url));

/**
 * The browser modules the page imports (the import map in ui/index.html names them), served from
 * this install's node_modules as their packages ship them: the page needs no build step.
 */
const vendor: Record<string, string> = {
  'preact.mjs': fileURLToPath(import.meta.resolve('preact')),
  'preact-hooks.mjs': fileURLToPath(import.meta.resolve('preact/hooks')),
  'htm.mjs': fileURLToPath(import.meta.resolve('htm')),
  'htm-preact.mjs': fileURLToPath(import.meta.resolve('htm/preact')),
  'uplot.mjs': fileURLToPath(new URL('uPlot.esm.js', import.meta.resolve('uplot'))),
  'uplot.css': fileURLToPath(new URL('uPlot.min.css', import.meta.resolve('uplot'))),
};

/** Serves the page; it holds no data (that comes from the API), so it needs no token. */
export function mountUi(app: OpenAPIHono, dir = uiDir): void {
  if (!existsSync(dir)) return;
  for (const [name, path] of Object.entries(vendor)) app.get(`/assets/vendor/${name}`, serveStatic({ path }));
  app.use('/assets/*', serveStatic({ root: dir, rewriteRequestPath: (path) => path.slice('/assets'.length) }));
  app.get('/', serveStatic({ path: join(dir, 'index.html') }));
}
