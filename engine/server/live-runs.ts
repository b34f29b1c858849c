/**
 * The runs this server started: what each is doing while it goes on (phase, progress) and how to
 * cancel it. Once a run has ended, ebb's tables hold all there is to say about it.
 */
import type { Engine } from '../engine.ts';
import { newRunId, type Trigger } from '../run.ts';
import type { RunWatcher } from '../schedule/scheduler.ts';
import { triggerRun } from '../ops/index.ts';
import type { StepEngine } from '../schedule/steps.ts';

export type Phase = 'plan' | 'apply' | 'record';

/** A run in progress in this process: started through the API, or by the in-process scheduler. */
export interface LiveRun {
  runId: string;
  sync: string;
  phase: Phase;
  planned: number | null;
  applied: number;
  /** Aborting it stops the sending: batches in flight finish, records not sent are recorded DELAYED. */
  controller: AbortController;
}

/** The runs in progress in this process, by run id; the scheduler reports its runs here too (RunWatcher). */
export class LiveRuns implements RunWatcher {
  private readonly runs = new Map<string, LiveRun>();
  /** The runs started through the API, which the server waits for when it stops. */
  private readonly started = new Set<Promise<unknown>>();

  constructor(private readonly engines: StepEngine) {}

  track({ runId, sync }: { runId: string; sync: string }) {
    const live: LiveRun = { runId, sync, phase: 'plan', planned: null, applied: 0, controller: new AbortController() };
    this.runs.set(runId, live);
    return {
      live,
      hooks: {
        signal: live.controller.signal,
        onPhase: (phase: Phase) => void (live.phase = phase),
        onProgress: ({ planned, applied }: { planned: number; applied: number }) => {
          live.planned = planned;
          live.applied = applied;
        },
      },
      end: () => void this.runs.delete(runId),
    };
  }

  /**
   * Starts a run of a sync and resolves once it holds the sync's run lock (so that a second
   * trigger is refused with `locked` from then on). A refusal before that (paused, locked,
   * invalid) rejects, and nothing was run.
   */
  async start(sync: string, options: { fullResync?: boolean; trigger?: Trigger; log: (message: string) => void }): Promise<LiveRun> {
    const runId = newRunId();
    const { live, hooks, end } = this.track({ runId, sync });
    let holding!: () => void;
    const locked = new Promise<void>((resolve) => (holding = resolve));
    const done = this.engines
      .with((engine: Engine) =>
        triggerRun(engine, sync, {
          trigger: options.trigger ?? 'api',
          runId,
          fullResync: options.fullResync,
          warn: options.log,
          ...hooks,
          onPhase: (phase) => {
            hooks.onPhase(phase);
            if (phase === 'plan') holding();
          },
        }),
      )
      .finally(end);
    this.started.add(done);
    const forget = () => void this.started.delete(done);
    void done.then(forget, forget);
    await Promise.race([locked, done]);
    void done.then(
      (result) => options.log(`${sync}: run ${runId} ended ${result.health}`),
      (e: unknown) => options.log(`${sync}: run ${runId} broke: ${e instanceof Error ? e.message : String(e)}`),
    );
    return live;
  }

  get(runId: string): LiveRun | undefined {
    return this.runs.get(runId);
  }

  /** Stops every run in progress (the server is stopping) and waits for those it started to be recorded. */
  async stopAll(): Promise<void> {
    for (const run of this.runs.values()) run.controller.abort(new Error('the server is stopping'));
    await Promise.allSettled([...this.started]);
  }
}
