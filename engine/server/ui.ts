/** The Sync Manager's page: `ui/index.html` at `/`, the other files of `ui/` under `/assets/`. */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { serveStatic } from '@hono/node-server/serve-static';
import { secureHeaders } from 'hono/secure-headers';
import { packageRoot } from '../paths.ts';

/** The folder of the page's files in this install of ebb. */
export const uiDir = fileURLToPath(new URL('ui/', packageRoot));

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

/**
 * The page runs only its own scripts: values from the warehouse and the apps are untrusted, and
 * should one ever reach the markup, the browser would not run it. The import map is the one inline
 * script, allowed by its hash.
 */
function pageHeaders(dir: string) {
  const importMap = /<script type="importmap">([\s\S]*?)<\/script>/.exec(readFileSync(join(dir, 'index.html'), 'utf8'))?.[1] ?? '';
  const hash = createHash('sha256').update(importMap).digest('base64');
  return secureHeaders({
    contentSecurityPolicy: {
      defaultSrc: ["'self'"],
      scriptSrc: ["'self'", `'sha256-${hash}'`],
      styleSrc: ["'self'"],
      imgSrc: ["'self'", 'data:'],
      connectSrc: ["'self'"],
      objectSrc: ["'none'"],
      baseUri: ["'none'"],
      frameAncestors: ["'none'"],
    },
  });
}

/** Serves the page; it holds no data (that comes from the API), so it needs no token. */
export function mountUi(app: OpenAPIHono, dir = uiDir): void {
  if (!existsSync(dir)) return;
  for (const [name, path] of Object.entries(vendor)) app.get(`/assets/vendor/${name}`, serveStatic({ path }));
  app.use('/assets/*', serveStatic({ root: dir, rewriteRequestPath: (path) => path.slice('/assets'.length) }));
  app.get('/', pageHeaders(dir), serveStatic({ path: join(dir, 'index.html') }));
}
