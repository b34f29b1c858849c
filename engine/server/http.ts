/** What the routes share with the server: where the API lives, the context, and how to answer. */
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Project } from '../config/load.ts';
import type { StepEngine } from '../schedule/steps.ts';
import type { LogEntry } from '../schedule/scheduler.ts';
import { toJson } from '../redact.ts';
import type { LiveRuns } from './live-runs.ts';
import type { Problem } from './problems.ts';

/** Where the API lives; its OpenAPI document is at `${apiBase}/openapi.json`. */
export const apiBase = '/api/v1';
/** What the routes share: the project, its warehouse, the runs this server started, and the server's switches. */
export interface ServerContext {
  project: Project;
  engines: StepEngine;
  runs: LiveRuns;
  readOnly: boolean;
  /** Triggers queue run requests for the workers instead of running here. */
  queueRuns: boolean;
  log: (entry: Pick<LogEntry, 'level' | 'message'>) => void;
}

/** A JSON answer, written by ebb's serialiser: secrets masked, every digit of big numbers kept. */
export function sendJson(c: Context, data: unknown, status: ContentfulStatusCode = 200): never {
  // `never`: the typed responses of the routes are checked against their schemas by the tests.
  return c.body(toJson(data), status, { 'content-type': 'application/json; charset=utf-8' }) as never;
}

/** A problem+json answer. */
export function sendProblem(c: Context, p: Problem, headers: Record<string, string> = {}): never {
  return c.body(JSON.stringify(p), p.status as ContentfulStatusCode, { 'content-type': 'application/problem+json', ...headers }) as never;
}
