/** The `ebb` command: commander wiring only; each command lives in its own file. */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { ExitCode } from '../errors.ts';
import { packageRoot } from '../paths.ts';

/** A command's module: it adds its command(s) to the program. */
type CommandModule = { register(program: Command): void };

// Each command's module is imported only when that command runs: a module pulls in what its
// command needs (DuckDB, the server, the apps' plugins), and `ebb --version` needs none of it.
const modules: Record<string, () => Promise<CommandModule>> = {
  init: () => import('./init.ts'),
  validate: () => import('./validate.ts'),
  check: () => import('./check.ts'),
  plan: () => import('./plan.ts'),
  run: () => import('./run.ts'),
  status: () => import('./status.ts'),
  runs: () => import('./runs.ts'),
  history: () => import('./history.ts'),
  lifecycle: () => import('./lifecycle.ts'),
  records: () => import('./records.ts'),
  deploy: () => import('./deploy.ts'),
  scheduler: () => import('./scheduler.ts'),
  worker: () => import('./worker.ts'),
  serve: () => import('./serve.ts'),
  alerts: () => import('./alerts.ts'),
};

/** The commands a module registers under another name than its own. */
const moduleOf: Record<string, string> = { pause: 'lifecycle', resume: 'lifecycle', revert: 'lifecycle', delete: 'lifecycle', resync: 'records', skip: 'records', resolve: 'records' };

const { version } = JSON.parse(readFileSync(new URL('package.json', packageRoot), 'utf8')) as { version: string };

/**
 * Runs the `ebb` command with these arguments (those after `ebb`) and resolves with its exit code.
 * The command prints to this process's stdout and stderr; engine/cli/main.ts is the executable's
 * entry, and the tests run commands through here in their own process.
 */
export async function cli(args: string[]): Promise<number> {
  const program = new Command('ebb')
    .description('ebb keeps apps, databases and files in step with warehouse tables')
    .version(version)
    .showHelpAfterError()
    // Commander throws instead of exiting: usage errors exit 3 (SPEC §5); --help and --version exit 0.
    .exitOverride();
  await registerCommands(program, args);
  // A command's action sets process.exitCode (common.ts action()): read here, and left as it was.
  const before = process.exitCode;
  process.exitCode = undefined;
  try {
    await program.parseAsync(args, { from: 'user' });
    return Number(process.exitCode ?? ExitCode.healthy);
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? ExitCode.healthy : ExitCode.invalid;
    throw e;
  } finally {
    process.exitCode = before;
  }
}

// The program has no options of its own but --version and --help, so the first word is the command.
async function registerCommands(program: Command, args: string[]): Promise<void> {
  const word = args.find((a) => !a.startsWith('-'));
  const name = word === undefined ? undefined : (moduleOf[word] ?? word);
  if (name !== undefined && modules[name]) {
    (await modules[name]()).register(program);
  } else if (word !== undefined || !args.some((a) => a === '--version' || a === '-V')) {
    // Help, `ebb help <command>` or an unknown command: every command, for the list and the suggestions.
    for (const load of Object.values(modules)) (await load()).register(program);
  }
}
