/** Runs: trigger one now, list a sync's, follow one, cancel one. */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { getRun, getRunRequest, listRuns, queueRun, type RunRow } from '../../ops/index.ts';
import { sendJson, sendProblem, apiBase, type ServerContext } from '../http.ts';
import { problem, problemResponses } from '../problems.ts';
import { jsonResponse, Page, paged, pageFromOneMore, Run, RunAccepted, RunId, RunQueued, RunRequest, SyncName } from '../schemas.ts';
import type { LiveRun } from '../live-runs.ts';

const trigger = createRoute({
  method: 'post',
  path: `${apiBase}/syncs/{name}/runs`,
  operationId: 'triggerRun',
  tags: ['runs'],
  summary: 'Run the sync now (trigger `api`); answers once the run holds the sync, with its run_id',
  description: 'A sync already running answers 409 `run-in-progress` naming its run; a paused sync, or one the guards refuse, answers 409 `run-refused` with the reason.',
  request: {
    params: z.object({ name: SyncName }),
    body: {
      required: false,
      content: {
        'application/json': {
          schema: z
            .strictObject({
              full_resync: z.boolean().default(false).openapi({ description: 'Send every record again, changed or not' }),
              trigger: z.enum(['api', 'airflow', 'dbt', 'manual']).default('api').openapi({ description: 'What started the run, as sync_runs records it' }),
            })
            .openapi('TriggerRun'),
        },
      },
    },
  },
  responses: {
    202: jsonResponse(z.union([RunAccepted, RunQueued]), 'The run started (or, on a server with --queue-runs, was queued for the workers)'),
    ...problemResponses(401, 403, 404, 409, 422, 500, 503),
  },
});

const request = createRoute({
  method: 'get',
  path: `${apiBase}/requests/{request_id}`,
  operationId: 'getRunRequest',
  tags: ['runs'],
  summary: 'A queued run request: who claimed it, and the run that served it',
  request: { params: z.object({ request_id: z.string().min(1).openapi({ param: { name: 'request_id', in: 'path' } }) }) },
  responses: { 200: jsonResponse(RunRequest, 'The request'), ...problemResponses(401, 404, 500, 503) },
});

const list = createRoute({
  method: 'get',
  path: `${apiBase}/syncs/{name}/runs`,
  operationId: 'listRuns',
  tags: ['runs'],
  summary: "A sync's runs, newest first: trigger, start, duration, planned, counts, error",
  request: { params: z.object({ name: SyncName }), query: Page },
  responses: { 200: jsonResponse(paged(Run, 'RunPage'), 'A page of runs'), ...problemResponses(401, 404, 422, 500, 503) },
});

const get = createRoute({
  method: 'get',
  path: `${apiBase}/runs/{run_id}`,
  operationId: 'getRun',
  tags: ['runs'],
  summary: 'One run; while this server runs it, with its phase and progress',
  request: { params: z.object({ run_id: RunId }) },
  responses: { 200: jsonResponse(Run, 'The run'), ...problemResponses(401, 404, 500, 503) },
});

const cancel = createRoute({
  method: 'post',
  path: `${apiBase}/runs/{run_id}/cancel`,
  operationId: 'cancelRun',
  tags: ['runs'],
  summary: 'Stop a run: it sends no new batch, lets the batches in flight finish, and records the records not sent as DELAYED',
  request: { params: z.object({ run_id: RunId }) },
  responses: { 202: jsonResponse(Run, 'The run is stopping; follow it with GET /runs/{run_id}'), ...problemResponses(401, 403, 404, 409, 500, 503) },
});

/** A run as the API shows it: its row, with what this server knows of it while it goes on. */
function runView(row: RunRow, live: LiveRun | undefined) {
  const running = live && row.status === 'RUNNING';
  return { ...row, phase: running ? live.phase : null, progress: running ? { planned: live.planned, applied: live.applied } : null };
}

export function register(app: OpenAPIHono, ctx: ServerContext): void {
  app.openapi(trigger, async (c) => {
    const { name } = c.req.valid('param');
    const body = c.req.header('content-type')?.includes('json') ? c.req.valid('json') : undefined;
    if (ctx.queueRuns) {
      if (body?.full_resync) {
        return sendProblem(c, problem('invalid-request', `this server queues runs for the workers, and a queued run cannot ask for a full resync; mark the records with POST ${apiBase}/syncs/${name}/records/resync, then trigger the run`));
      }
      const queued = await ctx.engines.with((engine) => queueRun(engine, name, { trigger: body?.trigger, warn: (message) => ctx.log({ level: 'warn', message }) }));
      const url = `${apiBase}/requests/${queued.request_id}`;
      c.header('location', url);
      return sendJson(c, { ...queued, status: 'QUEUED', url }, 202);
    }
    const run = await ctx.runs.start(name, { fullResync: body?.full_resync, trigger: body?.trigger, log: (message) => ctx.log({ level: 'info', message }) });
    const url = `${apiBase}/runs/${encodeURIComponent(run.runId)}`;
    c.header('location', url);
    return sendJson(c, { run_id: run.runId, sync_name: name, status: 'RUNNING', url }, 202);
  });
  app.openapi(request, async (c) => {
    const { request_id } = c.req.valid('param');
    return sendJson(c, await ctx.engines.with((engine) => getRunRequest(engine, request_id)));
  });
  app.openapi(list, async (c) => {
    const { name } = c.req.valid('param');
    const { limit, offset } = c.req.valid('query');
    const rows = await ctx.engines.with((engine) => listRuns(engine, { sync: name, limit: limit + 1, offset }));
    return sendJson(c, pageFromOneMore(rows.map((r) => runView(r, ctx.runs.get(r.run_id))), limit, offset));
  });
  app.openapi(get, async (c) => {
    const { run_id } = c.req.valid('param');
    const row = await ctx.engines.with((engine) => getRun(engine, run_id));
    return sendJson(c, runView(row, ctx.runs.get(run_id)));
  });
  app.openapi(cancel, async (c) => {
    const { run_id } = c.req.valid('param');
    const row = await ctx.engines.with((engine) => getRun(engine, run_id));
    const live = ctx.runs.get(run_id);
    if (row.status !== 'RUNNING') return sendProblem(c, problem('run-finished', `run ${run_id} has already ended (${String(row.status)}); there is nothing to cancel`));
    if (!live) {
      return sendProblem(c, problem('run-elsewhere', `run ${run_id} of ${row.sync_name} was started by another process (a scheduler, a worker or \`ebb run\`); stop that process with SIGTERM or Ctrl-C: it stops sending and records the rest as DELAYED`));
    }
    live.controller.abort(new Error('cancelled through the API'));
    return sendJson(c, runView(row, live), 202);
  });
}
