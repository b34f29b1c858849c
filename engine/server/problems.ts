/**
 * Errors over HTTP: `application/problem+json` (RFC 9457) with a stable `type` per situation, so
 * that a client branches on the type (or on `reason`, for a refused run), never on the text.
 * The status comes from ebb's typed errors, the same ones that drive the CLI's exit codes.
 */
import { z } from '@hono/zod-openapi';
import { ConfigError, EbbError, NotFoundError, RecordsInDoubtError, RunRefusedError, UsageError, type RefusalReason } from '../errors.ts';
import { WarehouseBusyError } from '../warehouse/duckdb.ts';
import { redact } from '../redact.ts';

/** Every problem type the API answers with, and its HTTP status. */
export const problemTypes = {
  'unauthorized': { status: 401, title: 'A valid bearer token is required' },
  'read-only': { status: 403, title: 'The server is read-only' },
  'not-found': { status: 404, title: 'Not found' },
  'run-in-progress': { status: 409, title: 'The sync is already running' },
  'run-refused': { status: 409, title: 'The run was refused' },
  'run-finished': { status: 409, title: 'The run has already finished' },
  'run-elsewhere': { status: 409, title: 'The run belongs to another process' },
  'records-in-doubt': { status: 409, title: 'Records are in doubt' },
  'invalid-request': { status: 422, title: 'The request is invalid' },
  'invalid-config': { status: 422, title: 'The configuration is invalid' },
  'confirmation-required': { status: 422, title: 'The deletion needs a confirmation' },
  'failed': { status: 500, title: 'The operation failed' },
  'internal-error': { status: 500, title: 'Internal error' },
  'warehouse-busy': { status: 503, title: 'The warehouse is busy' },
} as const;

export type ProblemType = keyof typeof problemTypes;

/** The URI of a problem type: a URN, since it names a situation rather than a page. */
export function problemUri(type: ProblemType): string {
  return `urn:ebb:problem:${type}`;
}

const refusalReasons = ['paused', 'error_status', 'completed', 'not_deployed', 'locked', 'empty_source', 'destructive_change', 'outdated_project', 'no_connection', 'dependency_unhealthy'] as const satisfies readonly RefusalReason[];

export const ProblemSchema = z
  .object({
    type: z.string().openapi({ example: problemUri('run-in-progress'), description: 'Stable: `urn:ebb:problem:<name>`; branch on it, not on `detail`.' }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().openapi({ description: 'What happened and what to do next.' }),
    reason: z.enum(refusalReasons).optional().openapi({ description: 'For a refused run: why (the reason code of `ebb run --json`).' }),
    run_id: z.string().optional().openapi({ description: 'For `run-in-progress`: the run that holds the sync.' }),
    keys: z.array(z.string()).optional().openapi({ description: 'For `records-in-doubt`: the records to resolve first.' }),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional().openapi({ description: 'For an invalid request or config: one entry per problem, with its path.' }),
  })
  .openapi('Problem');

export type Problem = z.infer<typeof ProblemSchema>;

/** A problem of a type, with its status and title. */
export function problem(type: ProblemType, detail: string, extra: Partial<Problem> = {}): Problem {
  const { status, title } = problemTypes[type];
  return { type: problemUri(type), title, status, detail: redact(detail), ...extra };
}

/** The problem that an error thrown by an operation stands for. */
export function problemOf(e: unknown): Problem {
  if (e instanceof NotFoundError) return problem('not-found', e.message);
  if (e instanceof RunRefusedError) {
    return e.reason === 'locked' ? problem('run-in-progress', e.message, { reason: e.reason, ...(e.runId ? { run_id: e.runId } : {}) }) : problem('run-refused', e.message, { reason: e.reason });
  }
  if (e instanceof RecordsInDoubtError) return problem('records-in-doubt', e.message, { keys: e.keys });
  if (e instanceof ConfigError) return problem('invalid-config', e.message, { errors: e.issues.map(({ path, message }) => ({ path, message: redact(message) })) });
  if (e instanceof UsageError) return problem('invalid-request', e.message);
  if (e instanceof WarehouseBusyError) return problem('warehouse-busy', e.message);
  if (e instanceof EbbError) return problem('failed', e.message);
  return problem('internal-error', `internal error: ${e instanceof Error ? e.message : String(e)}`);
}

/** The OpenAPI description of the problems a route may answer with, by status. */
export function problemResponses(...statuses: Array<401 | 403 | 404 | 409 | 422 | 500 | 503>) {
  const content = { 'application/problem+json': { schema: ProblemSchema } };
  const describe = (status: number) =>
    Object.entries(problemTypes)
      .filter(([, p]) => p.status === status)
      .map(([type, p]) => `\`${type}\`: ${p.title.toLowerCase()}`)
      .join('; ');
  return Object.fromEntries(statuses.map((s) => [s, { description: describe(s), content }])) as Record<number, { description: string; content: typeof content }>;
}
