/** The API's docs page: Swagger UI over the OpenAPI document, its assets served from the installed package (no CDN). */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { serveStatic } from '@hono/node-server/serve-static';
import { getAbsoluteFSPath } from 'swagger-ui-dist';

/** Serves the docs page at `<base>/docs` for the document at `<base>/openapi.json`. */
export function mountDocs(app: OpenAPIHono, base: string): void {
  const assets = getAbsoluteFSPath();
  app.get(`${base}/docs`, (c) =>
    c.html(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>ebb API</title><link rel="icon" href="data:,"><link rel="stylesheet" href="${base}/docs/swagger-ui.css"></head>
<body><div id="api"></div>
<script src="${base}/docs/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({ url: '${base}/openapi.json', dom_id: '#api', deepLinking: true });</script>
</body>
</html>`),
  );
  app.use(`${base}/docs/*`, serveStatic({ root: assets, rewriteRequestPath: (path) => path.slice(`${base}/docs`.length) }));
}
