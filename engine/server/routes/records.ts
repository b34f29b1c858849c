/** A sync's records: their state now, the audit trail of one record, and resending or skipping records. */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { listRecords, recordHistory, resolveRecords, resyncRecords, skipRecords } from '../../ops/index.ts';
import { sendJson, apiBase, type ServerContext } from '../http.ts';
import { problemResponses } from '../problems.ts';
import { flag, HistoryPage, jsonResponse, Page, paged, pageFromOneMore, RecordKey, RecordState, SyncName } from '../schemas.ts';

const keys = z.array(z.string()).openapi({ description: 'Record keys as text (a composite key is its values as a JSON array)', example: ['42'] });

const list = createRoute({
  method: 'get',
  path: `${apiBase}/syncs/{name}/records`,
  operationId: 'listRecords',
  tags: ['records'],
  summary: 'The state ebb holds of each record of the sync, by key',
  request: {
    params: z.object({ name: SyncName }),
    query: Page.extend({
      apply_state: z.string().optional().openapi({ description: 'Only records in these states, comma separated: SUCCESS, FAILED, DELAYED, NEEDS_REVIEW, SOURCE_FAILURE, …' }),
      key: z.string().optional().openapi({ description: 'Only records whose key contains this text' }),
    }),
  },
  responses: { 200: jsonResponse(paged(RecordState, 'RecordPage'), 'A page of records, by key'), ...problemResponses(401, 404, 422, 500, 503) },
});

const history = createRoute({
  method: 'get',
  path: `${apiBase}/syncs/{name}/records/{key}/history`,
  operationId: 'recordHistory',
  tags: ['records'],
  summary: 'Every outcome of one record, newest first: action, reason, what was sent, what the app answered',
  request: { params: z.object({ name: SyncName, key: RecordKey }), query: Page },
  responses: { 200: jsonResponse(HistoryPage, 'A page of outcomes'), ...problemResponses(401, 404, 422, 500, 503) },
});

const syncHistory = createRoute({
  method: 'get',
  path: `${apiBase}/syncs/{name}/history`,
  operationId: 'syncHistory',
  tags: ['records'],
  summary: "The sync's audit trail, newest first, as `ebb history`: every outcome of every record, under its former names too",
  request: {
    params: z.object({ name: SyncName }),
    query: Page.extend({
      run_id: z.string().optional().openapi({ description: 'Only the outcomes of this run' }),
      failed: flag('Only the outcomes that did not succeed'),
    }),
  },
  responses: { 200: jsonResponse(HistoryPage, 'A page of outcomes'), ...problemResponses(401, 404, 422, 500, 503) },
});

const resolve = createRoute({
  method: 'post',
  path: `${apiBase}/syncs/{name}/records/resolve`,
  operationId: 'resolveRecords',
  tags: ['records'],
  summary: 'Settle records in doubt (NEEDS_REVIEW), as `ebb resolve`: the app holds them under `app_ids` (one per key), or with `not_in_app` it does not and the next run creates them',
  request: {
    params: z.object({ name: SyncName }),
    body: {
      required: true,
      content: { 'application/json': { schema: z.strictObject({ keys: keys.min(1), app_ids: z.array(z.string()).optional(), not_in_app: z.boolean().default(false) }).openapi('ResolveRecords') } },
    },
  },
  responses: { 200: jsonResponse(z.object({ sync: z.string(), resolved: z.number().int() }).openapi('RecordsResolved'), 'The records were settled'), ...problemResponses(401, 403, 404, 422, 500, 503) },
});

const resync = createRoute({
  method: 'post',
  path: `${apiBase}/syncs/{name}/records/resync`,
  operationId: 'resyncRecords',
  tags: ['records'],
  summary: 'Send records again in the next run, changed or not: these keys, or every record when `keys` is left out (as `ebb resync`)',
  request: {
    params: z.object({ name: SyncName }),
    body: { required: false, content: { 'application/json': { schema: z.strictObject({ keys: keys.min(1).optional() }).openapi('ResyncRecords') } } },
  },
  responses: {
    200: jsonResponse(
      z.object({ sync: z.string(), marked: z.number().int(), in_doubt: z.array(z.string()).openapi({ description: 'Records in doubt left alone (settle them first)' }) }).openapi('RecordsResynced'),
      'The records were marked RESYNC_REQUESTED',
    ),
    ...problemResponses(401, 403, 404, 409, 422, 500, 503),
  },
});

const skip = createRoute({
  method: 'post',
  path: `${apiBase}/syncs/{name}/records/skip`,
  operationId: 'skipRecords',
  tags: ['records'],
  summary: 'Stop sending records: until they change, or with `always` until they are resynced (as `ebb skip`)',
  request: {
    params: z.object({ name: SyncName }),
    body: { required: true, content: { 'application/json': { schema: z.strictObject({ keys: keys.min(1), always: z.boolean().default(false) }).openapi('SkipRecords') } } },
  },
  responses: { 200: jsonResponse(z.object({ sync: z.string(), skipped: z.number().int() }).openapi('RecordsSkipped'), 'The records were skipped'), ...problemResponses(401, 403, 404, 409, 422, 500, 503) },
});

export function register(app: OpenAPIHono, ctx: ServerContext): void {
  app.openapi(list, async (c) => {
    const { name } = c.req.valid('param');
    const { limit, offset, apply_state, key } = c.req.valid('query');
    const applyState = apply_state?.split(',').map((s) => s.trim()).filter(Boolean);
    const rows = await ctx.engines.with((engine) => listRecords(engine, { sync: name, applyState, keySearch: key, limit: limit + 1, offset }));
    return sendJson(c, pageFromOneMore(rows, limit, offset));
  });
  app.openapi(history, async (c) => {
    const { name, key } = c.req.valid('param');
    const { limit, offset } = c.req.valid('query');
    const rows = await ctx.engines.with((engine) => recordHistory(engine, { sync: name, keys: [key], limit: limit + 1, offset }));
    return sendJson(c, pageFromOneMore(rows, limit, offset));
  });
  app.openapi(syncHistory, async (c) => {
    const { name } = c.req.valid('param');
    const { limit, offset, run_id, failed } = c.req.valid('query');
    const rows = await ctx.engines.with((engine) => recordHistory(engine, { sync: name, runId: run_id, failed, limit: limit + 1, offset }));
    return sendJson(c, pageFromOneMore(rows, limit, offset));
  });
  app.openapi(resolve, async (c) => {
    const { name } = c.req.valid('param');
    const { keys: chosen, app_ids, not_in_app } = c.req.valid('json');
    return sendJson(c, await ctx.engines.with((engine) => resolveRecords(engine, name, { keys: chosen, appIds: app_ids, notInApp: not_in_app, by: 'api' })));
  });
  app.openapi(resync, async (c) => {
    const { name } = c.req.valid('param');
    const body = c.req.header('content-type')?.includes('json') ? c.req.valid('json') : {};
    return sendJson(c, await ctx.engines.with((engine) => resyncRecords(engine, name, { keys: body.keys, by: 'api' })));
  });
  app.openapi(skip, async (c) => {
    const { name } = c.req.valid('param');
    const { keys: chosen, always } = c.req.valid('json');
    return sendJson(c, await ctx.engines.with((engine) => skipRecords(engine, name, { keys: chosen, always, by: 'api' })));
  });
}
