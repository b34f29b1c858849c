/** `ebb scheduler`: long-running; runs the syncs on their schedules until SIGTERM or Ctrl-C. */
import type { Command } from 'commander';
import { action, common, type CommonOptions } from './common.ts';
import { loadProject } from '../config/load.ts';
import { defaultLivePollMs, Scheduler, type LogEntry } from '../schedule/scheduler.ts';
import { textLog } from '../schedule/steps.ts';
import { ExitCode, UsageError } from '../errors.ts';

interface SchedulerCliOptions extends CommonOptions {
  tickSeconds: string;
  refreshSeconds: string;
  livePollSeconds?: string;
}

function seconds(option: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${option} ${value}: give a number of seconds above 0`);
  return n * 1000;
}

/** The log as JSON lines on stdout, for log collectors: one object per decision, run or problem. */
function jsonLog(entry: LogEntry): void {
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), ...entry }) + '\n');
}

export function register(program: Command): void {
  common(
    program
      .command('scheduler')
      .description('long-running: run the syncs on their schedules (every, cron, once, live); stops after the current run on SIGTERM or Ctrl-C')
      .option('--tick-seconds <seconds>', 'how often to wake and see whether a run is due', '1')
      .option('--refresh-seconds <seconds>', 'how often to read the catalog when nothing is due (it is always read before a run)', '10')
      .option('--live-poll-seconds <seconds>', 'how often to fingerprint the sources of live syncs (default: EBB_LIVE_POLL_SECONDS, or 2)'),
  ).action(
    action(async (options: SchedulerCliOptions) => {
      const tickMs = seconds('--tick-seconds', options.tickSeconds);
      const refreshMs = seconds('--refresh-seconds', options.refreshSeconds);
      const livePollMs = options.livePollSeconds === undefined ? defaultLivePollMs() : seconds('--live-poll-seconds', options.livePollSeconds);
      const project = await loadProject(options.projectDir, { dbtManifest: options.dbtManifest });
      const log = options.json ? jsonLog : textLog;
      const scheduler = new Scheduler(project, { tickMs, refreshMs, livePollMs, log });
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals) => {
        signals += 1;
        if (signals === 1) {
          void scheduler.stop(`${signal} (send it again to stop at once)`);
          return;
        }
        // The run in progress stays RUNNING until the next run of that sync records it as interrupted.
        process.stderr.write(`${signal} again: stopping at once; the next run of an interrupted sync records it as interrupted\n`);
        process.exit(ExitCode.failed);
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      try {
        await scheduler.start();
      } finally {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
      }
      return ExitCode.healthy;
    }),
  );
}
