/**
 * `ebb serve`: the REST API under /api/v1 (with its OpenAPI document and docs page), /metrics, and
 * the Sync Manager's page at /. A thin shell over engine/ops, like the CLI: each route validates
 * its input with zod, calls one operation and returns its data.
 *
 * The warehouse is opened per request and closed after (see StepEngine): a DuckDB file is held only
 * while the server reads or runs, so the CLI can use it in between. Requests, runs and the
 * in-process scheduler that overlap share one open file.
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { serve, type ServerType } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import type { Project } from '../config/load.ts';
import { StepEngine, textLog } from '../schedule/steps.ts';
import { Scheduler, type LogEntry, type SchedulerOptions } from '../schedule/scheduler.ts';
import { EbbError, formatPath } from '../errors.ts';
import { redact } from '../redact.ts';
import { bearerMatches, checkBind } from './auth.ts';
import { problem, problemOf } from './problems.ts';
import { apiBase, sendProblem, type ServerContext } from './http.ts';
import { mountDocs } from './docs.ts';
import { mountUi } from './ui.ts';
import { mountMetrics } from './metrics.ts';
import { LiveRuns } from './live-runs.ts';
import * as syncRoutes from './routes/syncs.ts';
import * as runRoutes from './routes/runs.ts';
import * as recordRoutes from './routes/records.ts';
import * as projectRoutes from './routes/project.ts';

/** The port `ebb serve` listens on unless told otherwise. */
export const defaultPort = 8740;

export interface ServerOptions {
  project: Project;
  /** Refuse every mutation with 403. */
  readOnly?: boolean;
  /** Triggers queue run requests for `ebb worker` (Snowflake) instead of running in this process. */
  queueRuns?: boolean;
  /** When set, every request to the API and /metrics needs `Authorization: Bearer <token>`. */
  token?: string;
  /** Run the scheduler in this process (the default for DuckDB in `ebb serve`), with these options. */
  scheduler?: boolean | Pick<SchedulerOptions, 'tickMs' | 'refreshMs' | 'livePollMs'>;
  /** Where the scheduler's log and the server's own problems go. Default: text lines on stderr. */
  log?: (entry: Pick<LogEntry, 'level' | 'message'>) => void;
  /** The folder of the page's files (default: ui/ of this install). */
  uiDir?: string;
}

export interface EbbServer {
  app: OpenAPIHono;
  /** Starts listening (port 0: any free port); refuses a host beyond loopback without a token. */
  listen(options?: { host?: string; port?: number }): Promise<{ url: string; port: number }>;
  /** Stops listening and the scheduler, and closes the warehouse. */
  close(): Promise<void>;
}

/** Builds the server of a loaded project. */
export function createServer(options: ServerOptions): EbbServer {
  const log = options.log ?? textLog;
  const engines = new StepEngine(options.project);
  const runs = new LiveRuns(engines);
  const context: ServerContext = { project: options.project, engines, runs, readOnly: options.readOnly ?? false, queueRuns: options.queueRuns ?? false, log };
  const scheduler = options.scheduler ? new Scheduler(options.project, { ...(options.scheduler === true ? {} : options.scheduler), engines, watcher: runs, log }) : undefined;
  const app = new OpenAPIHono({
    defaultHook: (result, c) => {
      if (result.success) return;
      const errors = result.error.issues.map((i) => ({ path: formatPath([result.target, ...i.path]), message: i.message }));
      return sendProblem(c, problem('invalid-request', `the request is invalid: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, { errors }));
    },
  });

  app.onError((e, c) => {
    if (e instanceof HTTPException && e.status < 500) return sendProblem(c, problem('invalid-request', e.message));
    const p = problemOf(e);
    if (p.type.endsWith(':internal-error')) log({ level: 'error', message: `${c.req.method} ${c.req.path}: ${redact((e as Error).stack ?? String(e))}` });
    return sendProblem(c, p, p.status === 503 ? { 'retry-after': '5' } : {});
  });
  app.notFound((c) => sendProblem(c, problem('not-found', `no such endpoint: ${c.req.method} ${c.req.path}; the API is described at ${apiBase}/openapi.json`)));

  // The docs page holds no data; the document and everything else need the token when there is one.
  mountDocs(app, apiBase);
  if (options.token) {
    const token = options.token;
    const guard = async (c: Context, next: () => Promise<void>) => {
      if (!bearerMatches(c.req.header('authorization'), token)) {
        return sendProblem(c, problem('unauthorized', 'this server needs `Authorization: Bearer <token>`, with the token it was started with (EBB_SERVER_TOKEN)'), { 'www-authenticate': 'Bearer realm="ebb"' });
      }
      await next();
    };
    app.use(`${apiBase}/*`, guard);
    app.use('/metrics', guard);
  }
  if (context.readOnly) {
    app.use(`${apiBase}/*`, async (c, next) => {
      if (!['GET', 'HEAD', 'OPTIONS'].includes(c.req.method)) {
        return sendProblem(c, problem('read-only', 'this server was started with --read-only: it shows syncs, runs and records, and changes nothing'));
      }
      await next();
    });
  }

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer', description: 'EBB_SERVER_TOKEN; required when the server listens beyond loopback' });
  app.doc31(`${apiBase}/openapi.json`, {
    openapi: '3.1.0',
    info: { title: 'ebb', version: '1', description: 'The Sync Manager API of `ebb serve`: syncs, runs, records. Errors are application/problem+json.' },
    servers: [{ url: '/' }],
    security: options.token ? [{ bearer: [] }] : [],
  });
  for (const routes of [syncRoutes, runRoutes, recordRoutes, projectRoutes]) routes.register(app, context);
  mountMetrics(app, context);
  mountUi(app, options.uiDir);

  let server: ServerType | undefined;
  return {
    app,
    async listen({ host = '127.0.0.1', port = defaultPort } = {}) {
      checkBind(host, options.token);
      const listening = await new Promise<ServerType>((resolve, reject) => {
        const s = serve({ fetch: app.fetch, hostname: host, port }, () => resolve(s));
        s.once('error', (e: NodeJS.ErrnoException) =>
          reject(e.code === 'EADDRINUSE' ? new EbbError(`port ${port} on ${host} is in use (another ebb serve?); stop that process or choose another with --port`) : e),
        );
      });
      server = listening;
      scheduler?.start().catch((e: unknown) => log({ level: 'error', message: `the scheduler stopped: ${redact(e instanceof Error ? e.message : String(e))}` }));
      const bound = listening.address() as AddressInfo;
      const shown = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
      return { url: `http://${shown}:${bound.port}`, port: bound.port };
    },
    async close() {
      await Promise.all([scheduler?.stop('the server is stopping'), context.runs.stopAll()]);
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      await engines.stop();
    },
  };
}
