/** Progress of `ebb run`: a bar per sync on a TTY, plain lines elsewhere (CI logs, Airflow). */
import cliProgress from 'cli-progress';
import type { RunOptions, RunResult } from '../run.ts';
import type { TopError } from '../record/record.ts';

type Event = Parameters<NonNullable<RunOptions['onProgress']>>[0];

export interface Progress {
  update(event: Event): void;
  /** Ends the sync's bar, then prints the run's result line. */
  done(result: RunResult): void;
  /** Ends the bar in progress, if any, then prints a line (a refusal, a note). */
  say(line: string): void;
  /** Ends the bar in progress: call it before anything else is printed, whatever happened. */
  stop(): void;
}

/** `3 × POST /contacts answered 500: …`, and how to see every failed record of the run. */
export function topErrorText(sync: string, runId: string, top: TopError): string {
  const error = top.error.length > 200 ? `${top.error.slice(0, 199)}…` : top.error;
  const share = top.records === top.failures ? '' : ` (${top.records} of ${top.failures} failures)`;
  return `${top.records} × ${error}${share}; see them all: ebb history ${sync} --run ${runId} --failed`;
}

/** The line that ends a run: health, duration, counts, then the run error, the most common record error and why records were delayed. */
export function resultLine(r: RunResult): string {
  const c = r.counts;
  const extra = [
    [c.needs_review, 'need review'],
    [c.skipped, 'skipped'],
    [c.untracked, 'untracked'],
  ]
    .filter(([n]) => Number(n) > 0)
    .map(([n, what]) => `, ${n} ${what}`)
    .join('');
  return (
    `${r.sync}: ${r.health} in ${(r.duration_ms / 1000).toFixed(1)}s — ${c.succeeded} succeeded, ${c.failed} failed, ` +
    `${c.delayed} delayed, ${c.source_failures} source failures${extra} (run ${r.run_id})` +
    (r.error ? `\n  error: ${r.error}` : '') +
    (r.top_error ? `\n  most common error: ${topErrorText(r.sync, r.run_id, r.top_error)}` : '') +
    (r.note ? `\n  note: ${r.note}` : '')
  );
}

/** Progress on stderr, so that `--json` output on stdout stays clean. */
export function progress(): Progress {
  const out = process.stderr;
  const say = (line: string) => out.write(`${line}\n`);
  if (out.isTTY) {
    // One bar at a time (syncs run one after another), stopped before any line is printed, so
    // that the result line and errors are never drawn over.
    let current: { sync: string; bar: cliProgress.SingleBar; at: number } | null = null;
    const stop = () => {
      current?.bar.stop();
      current = null;
    };
    return {
      update(e) {
        if (current?.sync !== e.sync) {
          stop();
          const bar = new cliProgress.SingleBar(
            { stream: out, format: ' {sync} [{bar}] {value}/{total} records | {rate}/s | {duration_formatted}', hideCursor: true, clearOnComplete: false, gracefulExit: true },
            cliProgress.Presets.shades_classic,
          );
          bar.start(e.planned, 0, { sync: e.sync, rate: 0 });
          current = { sync: e.sync, bar, at: Date.now() };
        }
        const seconds = (Date.now() - current.at) / 1000;
        current.bar.update(e.applied, { rate: seconds > 0 ? Math.round(e.applied / seconds) : 0 });
      },
      done(r) {
        stop();
        say(resultLine(r));
      },
      say(line) {
        stop();
        say(line);
      },
      stop,
    };
  }
  let lastLine = 0;
  return {
    update(e) {
      if (e.applied === 0) say(`${e.sync}: ${e.planned} records to send`);
      else if (Date.now() - lastLine > 5000) {
        lastLine = Date.now();
        say(`${e.sync}: ${e.applied}/${e.planned} records`);
      }
    },
    done: (r) => say(resultLine(r)),
    say,
    stop: () => undefined,
  };
}
