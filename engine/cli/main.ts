/** The `ebb` executable's entry (dist/ebb.cjs, which bin/ebb.js runs): the command, and its exit code. */
import { ExitCode } from '../errors.ts';
import { cli } from './program.ts';

// The last line of defence: a promise nobody awaited that fails is still reported as ebb reports
// errors (a message, exit 1), never as a stack trace.
process.on('unhandledRejection', (e) => {
  void import('./common.ts').then(({ reportInternalError }) => {
    reportInternalError(e);
    process.exit(ExitCode.failed);
  });
});

// No top-level await: the build is one CommonJS script (see scripts/build.js).
void cli(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
