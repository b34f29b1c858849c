/** The syncs: list, one in full, the dry run, and an admin's changes (overrides, revert, delete). */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { deleteSync, getSync, listSyncs, planSync, revertSync, setOverrides } from '../../ops/index.ts';
import { sendJson, sendProblem, apiBase, type ServerContext } from '../http.ts';
import { problem, problemResponses } from '../problems.ts';
import { flag, jsonResponse, OverridesPatch, Page, paged, pageOf, Plan, SyncDeleted, SyncDetail, SyncName, SyncSummary } from '../schemas.ts';

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

const patch = createRoute({
  method: 'patch',
  path: `${apiBase}/syncs/{name}`,
  operationId: 'updateSync',
  tags: ['syncs'],
  summary: "Set an admin's overrides (status, schedule, batch_size, max_run_seconds, rate_limit); null removes one",
  description: 'Checked as ebb.yml is; the overrides win over the code until reverted. `{"status": "PAUSED"}` pauses the sync, `{"status": null}` lifts the pause.',
  request: { params: z.object({ name: SyncName }), body: { required: true, content: { 'application/json': { schema: OverridesPatch } } } },
  responses: { 200: jsonResponse(SyncDetail, 'The sync, changed'), ...problemResponses(401, 403, 404, 422, 500, 503) },
});

const revert = createRoute({
  method: 'post',
  path: `${apiBase}/syncs/{name}/revert`,
  operationId: 'revertSync',
  tags: ['syncs'],
  summary: "Drop the admin's overrides: the settings from code apply again (a pause is lifted)",
  request: { params: z.object({ name: SyncName }) },
  responses: { 200: jsonResponse(SyncDetail, 'The sync, reverted'), ...problemResponses(401, 403, 404, 500, 503) },
});

const remove = createRoute({
  method: 'delete',
  path: `${apiBase}/syncs/{name}`,
  operationId: 'deleteSync',
  tags: ['syncs'],
  summary: 'Remove the sync from the catalog with its record state (runs and history stay); needs `?confirm=<the sync name>`',
  request: {
    params: z.object({ name: SyncName }),
    query: z.object({ confirm: z.string().optional().openapi({ description: "The sync's name again, as `ebb delete --yes`" }) }),
  },
  responses: { 200: jsonResponse(SyncDeleted, 'The sync was removed'), ...problemResponses(401, 403, 404, 422, 500, 503) },
});

export function register(app: OpenAPIHono, ctx: ServerContext): void {
  const warn = (message: string) => ctx.log({ level: 'warn', message });
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
  app.openapi(patch, async (c) => {
    const { name } = c.req.valid('param');
    const changes = c.req.valid('json');
    return sendJson(c, await ctx.engines.with(async (engine) => {
      await setOverrides(engine, name, changes, { warn });
      return getSync(engine, name);
    }));
  });
  app.openapi(revert, async (c) => {
    const { name } = c.req.valid('param');
    return sendJson(c, await ctx.engines.with(async (engine) => {
      await revertSync(engine, name, { warn });
      return getSync(engine, name);
    }));
  });
  app.openapi(remove, async (c) => {
    const { name } = c.req.valid('param');
    if (c.req.valid('query').confirm !== name) {
      return sendProblem(c, problem('confirmation-required', `deleting ${name} drops the state of its records (its runs and history stay); confirm with ?confirm=${encodeURIComponent(name)}`));
    }
    return sendJson(c, await ctx.engines.with((engine) => deleteSync(engine, name, { confirmed: true, warn })));
  });
}
