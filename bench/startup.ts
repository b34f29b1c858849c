/**
 * Goal 7: how long the `ebb` command takes to start. The wall time of `ebb --version` and of
 * `ebb status` on a small project (`ebb init`, then one run of its file syncs), each a process
 * spawned as a user's shell would, after one run to warm the file cache: the median of a few.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Figure } from './figures.ts';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('..', import.meta.url));
const bin = join(repo, 'bin', 'ebb.js');

/** The wall times, in ms, of each command's timed runs. */
export interface StartupBench {
  /** A bare `node -e ''`: what any Node.js command costs on this machine now. */
  node: number[];
  version: number[];
  status: number[];
}

async function timed(args: string[], cwd: string): Promise<number> {
  const start = performance.now();
  await run(process.execPath, args[0] === '-e' ? args : [bin, ...args], { cwd });
  return performance.now() - start;
}

/** Times `ebb --version` and `ebb status`, `repeats` times each, on a fresh `ebb init` project. */
export async function benchStartup(repeats = 5, log: (line: string) => void = () => {}): Promise<StartupBench> {
  log('startup: building dist/ and scaffolding a small project');
  // `ebb` runs the compiled dist/: time the code of this checkout.
  execFileSync(process.execPath, [join(repo, 'scripts', 'build.js')], { stdio: 'inherit' });
  const dir = await mkdtemp(join(tmpdir(), 'ebb-bench-startup-'));
  try {
    const project = join(dir, 'demo');
    await run(process.execPath, [bin, 'init', project]);
    await run(process.execPath, [bin, 'run', '--select', 'tag:files'], { cwd: project });
    const times = async (args: string[]) => {
      await timed(args, project);
      const ms: number[] = [];
      for (let i = 0; i < repeats; i++) ms.push(await timed(args, project));
      return ms;
    };
    const node = await times(['-e', '']);
    const version = await times(['--version']);
    const status = await times(['status']);
    log(`startup: node -e '' ${node.map(Math.round).join(', ')} ms; ebb --version ${version.map(Math.round).join(', ')} ms; ebb status ${status.map(Math.round).join(', ')} ms`);
    return { node, version, status };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** The figures of goal 7. */
export function startupFigures(bench: StartupBench): Figure[] {
  return [
    { goal: '', figure: `bare \`node -e ''\` wall time, for scale (median of ${bench.node.length})`, value: median(bench.node), unit: 'ms' },
    { goal: '7', figure: `\`ebb --version\` wall time (median of ${bench.version.length})`, value: median(bench.version), unit: 'ms', target: { op: '<=', value: 300 } },
    { goal: '7', figure: `\`ebb status\` wall time, small project (median of ${bench.status.length})`, value: median(bench.status), unit: 'ms', target: { op: '<=', value: 600 } },
  ];
}

// `node bin/run-ts.js bench/startup.ts`: this part alone.
if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const { figureTable } = await import('./figures.ts');
  process.stdout.write(`${figureTable(startupFigures(await benchStartup(5, (line) => process.stderr.write(`${line}\n`)))).join('\n')}\n`);
}
