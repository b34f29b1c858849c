/**
 * ebb's errors. Each names the situation, carries its context and says what to do next. The CLI
 * prints `message` and exits with `exitCode`; it never prints a stack trace for an EbbError.
 */

/** The exit codes of SPEC §5. */
export const ExitCode = { healthy: 0, failed: 1, incomplete: 2, invalid: 3 } as const;

/** Base class of every error that ebb reports to a user. */
export class EbbError extends Error {
  readonly exitCode: number = ExitCode.failed;
}

/** One problem in ebb.yml, at a path such as `syncs[2].mapping.score`. */
export interface ConfigIssue {
  path: string;
  message: string;
}

/** ebb.yml (or a command's arguments) is invalid: one line per problem, with its path. */
export class ConfigError extends EbbError {
  override readonly exitCode = ExitCode.invalid;
  constructor(
    readonly issues: ConfigIssue[],
    readonly file = 'ebb.yml',
  ) {
    super(
      `${file} is invalid (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n` +
        issues.map((i) => `  ${i.path ? `${i.path}: ` : ''}${i.message}`).join('\n'),
    );
  }
}

/** A command was called wrongly (unknown sync, missing option). */
export class UsageError extends EbbError {
  override readonly exitCode = ExitCode.invalid;
}

/** A sync or a run that does not exist; a usage error on the command line, a 404 over HTTP. */
export class NotFoundError extends UsageError {
  constructor(
    readonly kind: 'sync' | 'run',
    readonly name: string,
    message: string,
  ) {
    super(message);
  }
}

/** Records in doubt (NEEDS_REVIEW) were named for a change that could send them twice: resolve them first. */
export class RecordsInDoubtError extends EbbError {
  constructor(
    readonly keys: string[],
    message: string,
  ) {
    super(message);
  }
}

/** The warehouse refused a statement. Names the SQL template that produced it. */
export class WarehouseError extends EbbError {
  /** The warehouse's error code and SQL state, where it gave them (Snowflake: `000625`, `57014`). */
  readonly code?: string;
  readonly sqlState?: string;

  constructor(
    message: string,
    readonly sqlFile?: string,
    from?: { code?: string; sqlState?: string },
  ) {
    super(sqlFile ? `${message}\n  (while running sql/${sqlFile})` : message);
    if (from?.code) this.code = from.code;
    if (from?.sqlState) this.sqlState = from.sqlState;
  }
}

/**
 * Why a run was refused. `paused`, `error_status` and `completed` come from the sync's status in
 * the catalog; `locked` from its run lock; the others from a guard before anything is sent.
 */
export type RefusalReason = 'paused' | 'error_status' | 'completed' | 'not_deployed' | 'locked' | 'empty_source' | 'destructive_change' | 'outdated_project' | 'no_connection' | 'dependency_unhealthy';

/** A run was refused before anything was sent; `reason` says why, for exit codes and schedulers. */
export class RunRefusedError extends EbbError {
  constructor(
    readonly reason: RefusalReason,
    message: string,
    /** For `locked`: the run that holds the sync. */
    readonly runId?: string,
  ) {
    super(message);
  }

  /** The sync's status keeps it from running: `run --all` skips it rather than fail. */
  get byStatus(): boolean {
    return this.reason === 'paused' || this.reason === 'error_status' || this.reason === 'completed';
  }
}

/**
 * A change would delete, orphan or recreate the records ebb holds in an app (a new key, strategy
 * or destination, or keys whose text changed upstream): refused unless `--allow-destructive`.
 */
export class DestructiveChangeError extends RunRefusedError {
  constructor(message: string) {
    super('destructive_change', message);
  }
}

/** Formats a path of keys and indexes the way users read it: `syncs[2].mapping.score`. */
export function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('');
}
