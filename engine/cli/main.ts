/** The `ebb` command: commander wiring only; each command lives in its own file. */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { ExitCode } from '../errors.ts';
import { reportInternalError } from './common.ts';
import * as init from './init.ts';
import * as validate from './validate.ts';
import * as check from './check.ts';
import * as plan from './plan.ts';
import * as run from './run.ts';
import * as status from './status.ts';
import * as runs from './runs.ts';
import * as history from './history.ts';
import * as lifecycle from './lifecycle.ts';
import * as records from './records.ts';
import * as deploy from './deploy.ts';
import * as scheduler from './scheduler.ts';
import * as alerts from './alerts.ts';
import * as worker from './worker.ts';
import * as serve from './serve.ts';

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('ebb')
  .description('ebb keeps apps, databases and files in step with warehouse tables')
  .version(version)
  .showHelpAfterError()
  .exitOverride((err) => {
    // Usage errors exit 3 (SPEC §5); --help and --version exit 0.
    process.exit(err.exitCode === 0 ? 0 : ExitCode.invalid);
  });

for (const command of [init, validate, check, plan, run, status, runs, history, lifecycle, records, deploy, scheduler, worker, serve, alerts]) command.register(program);

// The last line of defence: a promise nobody awaited that fails is still reported as ebb reports
// errors (a message, exit 1), never as a stack trace.
process.on('unhandledRejection', (e) => {
  reportInternalError(e);
  process.exit(ExitCode.failed);
});

await program.parseAsync(process.argv);
