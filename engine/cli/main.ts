/** The `ebb` command: commander wiring only; each command lives in its own file. */
import { Command } from 'commander';
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

const program = new Command('ebb')
  .description('ebb keeps apps, databases and files in step with warehouse tables')
  .version(version)
  .showHelpAfterError()
  .exitOverride((err) => {
    // Usage errors exit 3 (SPEC §5); --help and --version exit 0.
    process.exit(err.exitCode === 0 ? 0 : ExitCode.invalid);
  });

// The program has no options of its own but --version and --help, so the first word is the command.
async function registerCommands(): Promise<void> {
  const args = process.argv.slice(2);
  const word = args.find((a) => !a.startsWith('-'));
  const name = word === undefined ? undefined : (moduleOf[word] ?? word);
  if (name !== undefined && modules[name]) {
    (await modules[name]()).register(program);
  } else if (word !== undefined || !args.some((a) => a === '--version' || a === '-V')) {
    // Help, `ebb help <command>` or an unknown command: every command, for the list and the suggestions.
    for (const load of Object.values(modules)) (await load()).register(program);
  }
}

// The last line of defence: a promise nobody awaited that fails is still reported as ebb reports
// errors (a message, exit 1), never as a stack trace.
process.on('unhandledRejection', (e) => {
  void import('./common.ts').then(({ reportInternalError }) => {
    reportInternalError(e);
    process.exit(ExitCode.failed);
  });
});

// No top-level await: the build is one CommonJS script (see scripts/build.js).
void registerCommands().then(() => program.parseAsync(process.argv));
