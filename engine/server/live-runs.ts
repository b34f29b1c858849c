/**
 * The runs this server started: what each is doing while it goes on (phase, progress) and how to
 * cancel it. Once a run has ended, ebb's tables hold all there is to say about it.
 */
import type { Engine } from '../engine.ts';
import { newRunId, type RunResult, type Trigger } from '../run.ts';
import { triggerRun } from '../ops/index.ts';
import type { StepEngine } from '../schedule/steps.ts';

export type Phase = 'plan' | 'apply' | 'record';

/** A run in progress in this process. */
export interface LiveRun {
  runId: string;
  sync: string;
  phase: Phase;
  planned: number | null;
  applied: number;
  /** Aborting it stops the sending: batches in flight finish, records not sent are recorded DELAYED. */
  controller: AbortController;
  /** Settles when the run has ended and its outcomes are recorded. */
  done: Promise<RunResult>;
}

export class LiveRuns {
  private readonly runs = new Map<string, LiveRun>();

  constructor(private readonly engines: StepEngine) {}

  /**
   * Starts a run of a sync and resolves once it holds the sync's run lock (so that a second
   * trigger is refused with `locked` from then on). A refusal before that (paused, locked,
   * invalid) rejects, and nothing was run.
   */
  async start(sync: string, options: { fullResync?: boolean; trigger?: Trigger; log: (message: string) => void }): Promise<LiveRun> {
    const controller = new AbortController();
    const runId = newRunId();
    let holding!: () => void;
    const locked = new Promise<void>((resolve) => (holding = resolve));
    const live: LiveRun = { runId, sync, phase: 'plan', planned: null, applied: 0, controller, done: undefined as unknown as Promise<RunResult> };
    live.done = this.engines.with((engine: Engine) =>
      triggerRun(engine, sync, {
        trigger: options.trigger ?? 'api',
        runId,
        fullResync: options.fullResync,
        signal: controller.signal,
        warn: options.log,
        onPhase: (phase) => {
          live.phase = phase;
          if (phase === 'plan') holding();
        },
        onProgress: ({ planned, applied }) => {
          live.planned = planned;
          live.applied = applied;
        },
      }),
    );
    await Promise.race([locked, live.done]);
    this.runs.set(runId, live);
    void live.done.then(
      (result) => options.log(`${sync}: run ${runId} ended ${result.health}`),
      (e: unknown) => options.log(`${sync}: run ${runId} broke: ${e instanceof Error ? e.message : String(e)}`),
    ).finally(() => this.runs.delete(runId));
    return live;
  }

  get(runId: string): LiveRun | undefined {
    return this.runs.get(runId);
  }

  /** Stops every run in progress (the server is stopping) and waits for their outcomes to be recorded. */
  async stopAll(): Promise<void> {
    const all = [...this.runs.values()];
    for (const run of all) run.controller.abort(new Error('the server is stopping'));
    await Promise.allSettled(all.map((r) => r.done));
  }
}
