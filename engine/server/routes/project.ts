/** The project as a whole: deploying the syncs of ebb.yml into the catalog. */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { deployProject } from '../../ops/index.ts';
import { sendJson, apiBase, type ServerContext } from '../http.ts';
import { problemResponses } from '../problems.ts';
import { DeployResult, jsonResponse } from '../schemas.ts';

const deploy = createRoute({
  method: 'post',
  path: `${apiBase}/deploy`,
  operationId: 'deployProject',
  tags: ['project'],
  summary: 'Deploy the syncs of ebb.yml into the catalog, as `ebb deploy` (validate, analyse, commit, keep the admin overrides)',
  description: 'ebb.yml is read as the server loaded it at its start.',
  request: {
    body: {
      required: false,
      content: {
        'application/json': {
          schema: z
            .strictObject({
              dry_run: z.boolean().default(false).openapi({ description: 'Plan only; change nothing' }),
              force: z.boolean().default(false).openapi({ description: 'Deploy even when the catalog holds a newer project version' }),
              allow_destructive: z.boolean().default(false).openapi({ description: 'Accept a change of key, strategy or destination of a sync that holds records' }),
            })
            .openapi('Deploy'),
        },
      },
    },
  },
  responses: { 200: jsonResponse(DeployResult, 'What the deploy did (or would do)'), ...problemResponses(401, 403, 409, 422, 500, 503) },
});

export function register(app: OpenAPIHono, ctx: ServerContext): void {
  app.openapi(deploy, async (c) => {
    const body = c.req.header('content-type')?.includes('json') ? c.req.valid('json') : undefined;
    const options = { dryRun: body?.dry_run, force: body?.force, allowDestructive: body?.allow_destructive };
    return sendJson(c, await ctx.engines.with((engine) => deployProject(engine, options)));
  });
}
