/** `ebb runs <sync>`: the sync's executions, newest first. */
import type { Command } from 'commander';
import { action, common, print, withEngine, type CommonOptions } from './common.ts';
import { namesOf } from '../catalog/catalog.ts';

export function register(program: Command): void {
  common(
    program
      .command('runs')
      .description('the executions of a sync: start, duration, counts and error')
      .argument('<sync>')
      .option('--limit <n>', 'how many runs', (v) => Number.parseInt(v, 10), 20),
  ).action(
    action(async (name: string, options: CommonOptions & { limit: number }) =>
      withEngine(options, async (engine, project) => {
        const names = await namesOf(engine, project, name);
        const rows = (await engine.sql.runAndRead('runs_list', { names, limit: options.limit })).map((r) => {
          const planned = (typeof r.planned === 'string' ? JSON.parse(r.planned) : r.planned) as Record<string, number> | null;
          return {
            ...r,
            duration_s: r.finished_at instanceof Date && r.started_at instanceof Date ? (r.finished_at.getTime() - r.started_at.getTime()) / 1000 : null,
            planned,
            // Every planned untrack is done at once, without a request: the run row keeps them in `planned`.
            untracked: r.finished_at ? (planned?.untrack ?? 0) : null,
          };
        });
        print(rows, options, ['run_id', 'trigger', 'status', 'started_at', 'duration_s', 'planned', 'succeeded', 'failed', 'delayed', 'skipped', 'source_failures', 'untracked', 'error']);
      }, { readOnly: true }),
    ),
  );
}
