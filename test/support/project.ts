/** Test projects in temporary directories, driven through ebb's CLI (in this process or as the real executable) or the engine. */
import { mkdtemp, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { stringify } from 'yaml';
import { loadProject } from '../../engine/config/load.ts';
import { openEngine } from '../../engine/engine.ts';
import { runSyncs, type RunSyncsOptions } from '../../engine/ops/index.ts';
import type { Trigger } from '../../engine/run.ts';
import { EbbError } from '../../engine/errors.ts';
import { redact, toJson } from '../../engine/redact.ts';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const bin = join(repoRoot, 'bin', 'ebb.js');

/** A project directory with an ebb.yml (an object or YAML text) and optional extra files. */
export async function makeProject(config: object | string, files: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ebb-test-'));
  await writeFile(join(dir, 'ebb.yml'), typeof config === 'string' ? config : stringify(config));
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  return dir;
}

/** Runs SQL on a project's DuckDB file (the file must not be held by another process). */
export async function duck(path: string, sql: string): Promise<Record<string, unknown>[]> {
  const instance = await DuckDBInstance.create(path);
  const conn = await instance.connect();
  try {
    let rows: Record<string, unknown>[] = [];
    for (const statement of sql.split(/;\s*\n/).map((s) => s.trim()).filter(Boolean)) {
      rows = (await conn.runAndReadAll(statement)).getRowObjectsJS() as Record<string, unknown>[];
    }
    return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v])));
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the `ebb` command in a project directory: its arguments parsed and its command run by
 * ebb's CLI (engine/cli/program.ts) in this process, with what it prints to stdout and stderr and
 * the exit code it would exit with. `env` is set for the time of the command, as the variables of
 * its environment. Commands run one at a time: several at once, a scheduler, worker or server that
 * keeps running, and the tests of the executable itself need processes ({@link ebbProcess}).
 */
export function ebb(dir: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const done = commands.then(() => ebbHere([...args, '--project-dir', dir], env));
  commands = done.catch(() => undefined);
  return done;
}

let commands: Promise<unknown> = Promise.resolve();

async function ebbHere(args: string[], env: Record<string, string>): Promise<CliResult> {
  const { cli } = await import('../../engine/cli/program.ts');
  const output = { stdout: '', stderr: '' };
  const writes = { stdout: process.stdout.write, stderr: process.stderr.write };
  const capture = (stream: 'stdout' | 'stderr') =>
    function (chunk: string | Uint8Array, ...rest: unknown[]): boolean {
      output[stream] += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      const callback = rest.find((r): r is () => void => typeof r === 'function');
      if (callback) queueMicrotask(callback);
      return true;
    };
  process.stdout.write = capture('stdout') as typeof process.stdout.write;
  process.stderr.write = capture('stderr') as typeof process.stderr.write;
  try {
    const code = await withEnv(env, () => cli(args));
    return { code, ...output };
  } finally {
    process.stdout.write = writes.stdout;
    process.stderr.write = writes.stderr;
  }
}

/** Runs `body` with these variables set in process.env, and puts back what was there. */
async function withEnv<T>(env: Record<string, string>, body: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await body();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** Runs the real `ebb` executable (bin/ebb.js, the built dist/) in a project directory, in a process of its own. */
export function ebbProcess(dir: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args, '--project-dir', dir], { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A run as `ebb run NAMES --json` makes it: the exit code the command would exit with, its --json output and its warnings. */
export interface InProcessRun {
  code: number;
  json: string;
  warnings: string[];
  /** The `error: ...` line the command prints when it stops with an error ebb reports (then `json` is empty). */
  error?: string;
  /** What the command prints on stderr: its warnings, then its error. */
  stderr: string;
}

/**
 * `ebb run NAMES --json` through the engine's run operation in this process, loading the project
 * and opening the engine afresh as the command does: for tests of what a run does, where starting
 * a process adds nothing (the command itself is tested with {@link ebb}). `env` holds the
 * variables the command would get from its environment (`env_var()` in ebb.yml, EBB_*), set for
 * the time of the run; an error that ebb reports ends the run with its exit code and message, as
 * in the command.
 */
export async function runHere(dir: string, names: string[], { env = {}, ...options }: { env?: Record<string, string> } & Omit<RunSyncsOptions, 'trigger' | 'warn'> & { trigger?: Trigger } = {}): Promise<InProcessRun> {
  const warnings: string[] = [];
  return withEnv(env, async () => {
    try {
      const engine = await openEngine(await loadProject(dir));
      try {
        const summary = await runSyncs(engine, { names }, { trigger: 'manual', ...options, warn: (message) => warnings.push(message) });
        return { code: summary.exit_code, json: toJson(summary, 2), warnings, stderr: stderrOf(warnings) };
      } finally {
        await engine.close();
      }
    } catch (e) {
      if (!(e instanceof EbbError)) throw e;
      const error = `error: ${redact(e.message)}`;
      return { code: e.exitCode, json: '', warnings, error, stderr: stderrOf(warnings, error) };
    }
  });
}

const stderrOf = (warnings: string[], error?: string) => [...warnings.map((w) => `warning: ${w}\n`), error === undefined ? '' : `${error}\n`].join('');
