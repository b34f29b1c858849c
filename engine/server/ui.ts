/** The Sync Manager's page: `ui/index.html` at `/`, the other files of `ui/` under `/assets/`. */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { serveStatic } from '@hono/node-server/serve-static';

/** The folder of the page's files in this install of ebb. */
export const uiDir = fileURLToPath(new URL('../../ui/', import.meta.url));

/** Serves the page; it holds no data (that comes from the API), so it needs no token. */
export function mountUi(app: OpenAPIHono, dir = uiDir): void {
  if (!existsSync(dir)) return;
  app.use('/assets/*', serveStatic({ root: dir, rewriteRequestPath: (path) => path.slice('/assets'.length) }));
  app.get('/', serveStatic({ path: join(dir, 'index.html') }));
}
