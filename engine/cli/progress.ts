/** Progress of `ebb run`: a bar per sync on a TTY, plain lines elsewhere (CI logs, Airflow). */
import cliProgress from 'cli-progress';
import type { RunOptions, RunResult } from '../run.ts';

type Event = Parameters<NonNullable<RunOptions['onProgress']>>[0];

export interface Progress {
  update(event: Event): void;
  done(result: RunResult): void;
  stop(): void;
}

/** Progress on stderr, so that `--json` output on stdout stays clean. */
export function progress(): Progress {
  const out = process.stderr;
  if (out.isTTY) {
    const bars = new cliProgress.MultiBar(
      { stream: out, format: ' {sync} [{bar}] {value}/{total} records | {rate}/s | {duration_formatted}', hideCursor: true, clearOnComplete: false },
      cliProgress.Presets.shades_classic,
    );
    const started = new Map<string, { bar: cliProgress.SingleBar; at: number }>();
    return {
      update(e) {
        let entry = started.get(e.sync);
        if (!entry) {
          entry = { bar: bars.create(e.planned, 0, { sync: e.sync, rate: 0 }), at: Date.now() };
          started.set(e.sync, entry);
        }
        const seconds = (Date.now() - entry.at) / 1000;
        entry.bar.update(e.applied, { rate: seconds > 0 ? Math.round(e.applied / seconds) : 0 });
      },
      done: () => undefined,
      stop: () => bars.stop(),
    };
  }
  let lastLine = 0;
  return {
    update(e) {
      if (e.applied === 0) out.write(`${e.sync}: ${e.planned} records to send\n`);
      else if (Date.now() - lastLine > 5000) {
        lastLine = Date.now();
        out.write(`${e.sync}: ${e.applied}/${e.planned} records\n`);
      }
    },
    done(r) {
      const c = r.counts;
      out.write(
        `${r.sync}: ${r.health} in ${(r.duration_ms / 1000).toFixed(1)}s — ${c.succeeded} succeeded, ${c.failed} failed, ` +
          `${c.delayed} delayed, ${c.source_failures} source failures (run ${r.run_id})${r.error ? `\n  error: ${r.error}` : ''}\n`,
      );
    },
    stop: () => undefined,
  };
}
