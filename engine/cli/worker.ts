/** `ebb worker`: long-running (or `--once`); claims run_requests rows and runs their syncs until SIGTERM or Ctrl-C. */
import type { Command } from 'commander';
import { action, common, type CommonOptions } from './common.ts';
import { loadProject } from '../config/load.ts';
import { defaultPollMs, Worker, type WorkerLogEntry } from '../schedule/worker.ts';
import { textLog } from '../schedule/steps.ts';
import { exitCodeOf } from '../ops/index.ts';
import { ExitCode, UsageError } from '../errors.ts';

interface WorkerCliOptions extends CommonOptions {
  once?: boolean;
  pollSeconds?: string;
}

/** The log as JSON lines on stdout, for log collectors. */
function jsonLog(entry: WorkerLogEntry): void {
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), ...entry }) + '\n');
}

export function register(program: Command): void {
  common(
    program
      .command('worker')
      .description('claim run_requests rows (queued by Snowflake tasks) and run their syncs; several workers may share a warehouse; stops after the current batch on SIGTERM or Ctrl-C')
      .option('--once', 'drain the queue, then exit with the exit code of `ebb run` for the runs it made')
      .option('--poll-seconds <seconds>', 'how often an idle worker looks at the queue (default: EBB_WORKER_POLL_SECONDS, or 2)'),
  ).action(
    action(async (options: WorkerCliOptions) => {
      let pollMs = defaultPollMs();
      if (options.pollSeconds !== undefined) {
        const n = Number(options.pollSeconds);
        if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--poll-seconds ${options.pollSeconds}: give a number of seconds above 0`);
        pollMs = n * 1000;
      }
      const project = await loadProject(options.projectDir, { dbtManifest: options.dbtManifest });
      const worker = new Worker(project, { once: options.once, pollMs, log: options.json ? jsonLog : textLog });
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals) => {
        signals += 1;
        if (signals === 1) {
          void worker.stop(`${signal} (send it again to stop at once)`);
          return;
        }
        // Its request stays claimed until the claim expires; then another worker takes it over.
        process.stderr.write(`${signal} again: stopping at once; the request under way is taken over by another worker when its claim expires\n`);
        process.exit(ExitCode.failed);
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      try {
        const summary = await worker.start();
        return options.once ? exitCodeOf(summary.runs, 0) : ExitCode.healthy;
      } finally {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
      }
    }),
  );
}
