/** The syncs: list, one in full, and the dry run. */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { getSync, listSyncs, planSync } from '../../ops/index.ts';
import { sendJson, apiBase, type ServerContext } from '../http.ts';
import { problemResponses } from '../problems.ts';
import { flag, jsonResponse, Page, paged, pageOf, Plan, SyncDetail, SyncName, SyncSummary } from '../schemas.ts';

const list = createRoute({
  method: 'get',
  path: `${apiBase}/syncs`,
  operationId: 'listSyncs',
  tags: ['syncs'],
  summary: 'Every sync with its status, health, schedule, last run, counts, records and failing records',
  request: {
    query: Page.extend({
      tag: z.string().optional().openapi({ description: 'Only syncs with this tag' }),
      status: z.string().optional().openapi({ description: 'Only syncs in this status: ACTIVE, PAUSED, COMPLETED, ERROR, NOT DEPLOYED' }),
      health: z.string().optional().openapi({ description: 'Only syncs of this health: PENDING, HEALTHY, INCOMPLETE, FAILED, DELAYED' }),
    }),
  },
  responses: { 200: jsonResponse(paged(SyncSummary, 'SyncPage'), 'A page of syncs, by name'), ...problemResponses(401, 422, 500, 503) },
});

const get = createRoute({
  method: 'get',
  path: `${apiBase}/syncs/{name}`,
  operationId: 'getSync',
  tags: ['syncs'],
  summary: 'One sync: its definitions in code and as deployed, overrides, status and last run',
  request: { params: z.object({ name: SyncName }) },
  responses: { 200: jsonResponse(SyncDetail, 'The sync'), ...problemResponses(401, 404, 500, 503) },
});

const plan = createRoute({
  method: 'get',
  path: `${apiBase}/syncs/{name}/plan`,
  operationId: 'planSync',
  tags: ['syncs'],
  summary: 'The dry run, as `ebb plan`: counts per action and reason, with sample records; changes nothing, calls no app',
  request: {
    params: z.object({ name: SyncName }),
    query: z.object({
      limit: z.coerce.number().int().min(0).max(1000).default(10).openapi({ description: 'Sample records to return' }),
      full_resync: flag('Plan a full resync'),
      allow_destructive: flag('Plan even a destructive change, and say what it does'),
    }),
  },
  responses: { 200: jsonResponse(Plan, 'The plan'), ...problemResponses(401, 404, 409, 422, 500, 503) },
});

export function register(app: OpenAPIHono, ctx: ServerContext): void {
  app.openapi(list, async (c) => {
    const { tag, status, health, limit, offset } = c.req.valid('query');
    const rows = await ctx.engines.with((engine) => listSyncs(engine, { tag, status, health }));
    return sendJson(c, pageOf(rows, limit, offset));
  });
  app.openapi(get, async (c) => {
    const { name } = c.req.valid('param');
    return sendJson(c, await ctx.engines.with((engine) => getSync(engine, name)));
  });
  app.openapi(plan, async (c) => {
    const { name } = c.req.valid('param');
    const { limit, full_resync, allow_destructive } = c.req.valid('query');
    return sendJson(c, await ctx.engines.with((engine) => planSync(engine, name, { limit, fullResync: full_resync, allowDestructive: allow_destructive })));
  });
}
