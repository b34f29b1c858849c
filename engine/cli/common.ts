/** What every command shares: the project options, output in text or JSON, and error handling. */
import type { Command } from 'commander';
import { loadProject, type Project } from '../config/load.ts';
import { openEngine, type Engine } from '../engine.ts';
import { EbbError, ExitCode } from '../errors.ts';
import { redact, toJson } from '../redact.ts';

/** The options every command takes. */
export interface CommonOptions {
  projectDir: string;
  json?: boolean;
  dbtManifest?: string;
}

/** Adds `--project-dir` and `--dbt-manifest` (and `--json` where the command prints data). */
export function common(cmd: Command, json = true): Command {
  cmd.option('--project-dir <dir>', 'the directory that holds ebb.yml', '.');
  cmd.option('--dbt-manifest <path>', "dbt's manifest.json, for sources given as dbt_model (default: dbt.manifest in ebb.yml, else target/manifest.json)");
  if (json) cmd.option('--json', 'print JSON instead of text');
  return cmd;
}

/** Runs a command's body: prints an EbbError's message (no stack) and sets the exit code. */
export function action<A extends unknown[]>(body: (...args: A) => Promise<number | void>) {
  return async (...args: A) => {
    try {
      const code = await body(...args);
      process.exitCode = code ?? ExitCode.healthy;
    } catch (e) {
      if (e instanceof EbbError) {
        process.stderr.write(`error: ${redact(e.message)}\n`);
        process.exitCode = e.exitCode;
      } else {
        reportInternalError(e);
        process.exitCode = ExitCode.failed;
      }
    }
  };
}

/** Prints an error that ebb did not expect: its message, and its stack only with EBB_DEBUG=1. */
export function reportInternalError(e: unknown): void {
  const err = e instanceof Error ? e : new Error(String(e));
  process.stderr.write(`internal error: ${redact(err.message)}\n${process.env.EBB_DEBUG ? redact(err.stack ?? '') + '\n' : 'Set EBB_DEBUG=1 to see where.\n'}`);
}

/**
 * Loads the project and opens its warehouse for the body, closing it afterwards. `readOnly` is
 * for the commands that only read ebb's tables: they need neither the apps' secrets nor a
 * warehouse they can write to.
 */
export async function withEngine<T>(options: CommonOptions, body: (engine: Engine, project: Project) => Promise<T>, access: { readOnly?: boolean } = {}): Promise<T> {
  const project = await loadProject(options.projectDir, { dbtManifest: options.dbtManifest, withoutApps: access.readOnly });
  const engine = await openEngine(project, access);
  try {
    return await body(engine, project);
  } finally {
    await engine.close();
  }
}

/** Prints data as JSON (stable keys) or as an aligned text table. */
export function print(rows: Record<string, unknown>[], options: { json?: boolean }, columns?: string[]): void {
  if (options.json) {
    process.stdout.write(toJson(rows, 2) + '\n');
    return;
  }
  if (rows.length === 0) {
    process.stdout.write('(none)\n');
    return;
  }
  const cols = columns ?? Object.keys(rows[0]);
  // Masked before a cell is cut to its width, which could leave half a secret.
  const cells = rows.map((r) => cols.map((c) => redact(text(r[c]))));
  const widths = cols.map((c, i) => Math.min(60, Math.max(c.length, ...cells.map((row) => row[i].length))));
  const line = (values: string[]) => values.map((v, i) => (v.length > widths[i] ? v.slice(0, widths[i] - 1) + '…' : v.padEnd(widths[i]))).join('  ').trimEnd();
  process.stdout.write([line(cols), ...cells.map(line)].join('\n') + '\n');
}

function text(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (v instanceof Date) return v.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  if (typeof v === 'object') return toJson(v);
  return String(v);
}
