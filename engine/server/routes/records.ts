/** A sync's records: their state now, and the audit trail of one record. */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { listRecords, recordHistory } from '../../ops/index.ts';
import { sendJson, apiBase, type ServerContext } from '../http.ts';
import { problemResponses } from '../problems.ts';
import { HistoryEntry, jsonResponse, Page, paged, pageFromOneMore, RecordKey, RecordState, SyncName } from '../schemas.ts';

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
  responses: { 200: jsonResponse(paged(HistoryEntry, 'HistoryPage'), 'A page of outcomes'), ...problemResponses(401, 404, 422, 500, 503) },
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
}
