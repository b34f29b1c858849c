/** `ebb deploy`: put the syncs of the code into the catalog (engine/ops/deploy.ts), and print what changed. */
import type { Command } from 'commander';
import { action, common, withEngine, type CommonOptions } from './common.ts';
import { refuseDestructive, type DeployStep } from '../catalog/deploy.ts';
import { scheduledSyncs, type TaskStep } from '../schedule/tasks.ts';
import { deployProject, type DeployResult } from '../ops/index.ts';

const marks: Record<DeployStep['kind'], string> = { new: '+', updated: '~', identical: '=', renamed: '>', orphaned: '-' };

const taskMarks: Record<TaskStep['kind'], string> = { create: '+', update: '~', replace: '~', resume: '~', suspend: '~', unchanged: '=', remove: '-' };

/** The task part of the output: one line per task or stream, and on a dry run the DDL it would run. */
function printTasks(tasks: NonNullable<DeployResult['tasks']>, dryRun: boolean): void {
  if (tasks.steps.length === 0) {
    process.stdout.write(`tasks: none (no sync has an every, cron or live schedule, and schema ${tasks.schema} holds no task of this project)\n`);
    return;
  }
  process.stdout.write(`tasks in schema ${tasks.schema} (they queue runs in run_requests; \`ebb worker\` runs them):\n`);
  const width = Math.max(...tasks.steps.map((s) => s.name.length));
  for (const step of tasks.steps) {
    const what = step.kind === 'unchanged' ? 'unchanged' : step.kind === 'remove' ? 'removed' : step.kind === 'create' ? 'new' : step.kind === 'replace' ? 'replaced' : step.kind === 'resume' || step.kind === 'suspend' ? step.detail : 'updated';
    const detail = step.kind === 'resume' || step.kind === 'suspend' ? '' : `: ${step.detail}`;
    process.stdout.write(`  ${taskMarks[step.kind]} ${step.name.padEnd(width)}  ${step.object === 'stream' ? 'stream, ' : ''}${what}${detail}\n`);
  }
  const ddl = tasks.steps.flatMap((s) => s.ddl);
  if (dryRun && ddl.length > 0) {
    process.stdout.write(`DDL that deploy would run:\n${ddl.map((sql) => `${sql};`).join('\n')}\n`);
  }
}

function describe(step: DeployStep): string {
  const what = describeKind(step);
  return step.destructive ? `${what}\n      destructive: ${step.destructive.effect}` : what;
}

function describeKind(step: DeployStep): string {
  switch (step.kind) {
    case 'new':
      return 'new';
    case 'identical':
      return 'identical';
    case 'renamed':
      return `renamed from ${step.from} (it keeps its state and history)${step.changed?.length ? `; changed: ${step.changed.join(', ')}` : ''}`;
    case 'updated':
      return step.action === 'keep' ? `created by an admin; left alone (code differs in: ${step.changed?.join(', ')})` : `updated: ${step.changed?.join(', ')}`;
    case 'orphaned':
      return step.action === 'keep'
        ? 'gone from the code; created by an admin, left alone'
        : step.action === 'delete'
          ? 'gone from the code; deleted (it held no state)'
          : `gone from the code; ${step.action === 'pause' ? 'paused' : 'stays paused'}, keeping its state of ${step.records} records (\`ebb delete\` drops it)`;
  }
}

export function register(program: Command): void {
  common(
    program
      .command('deploy')
      .description('put the syncs defined in code into the warehouse catalog: validate, analyse, commit; on Snowflake, also create the tasks of scheduled syncs')
      .option('--dry-run', 'print the plan (and on Snowflake the task DDL); change nothing')
      .option('--force', 'deploy even when the catalog holds a newer project version')
      .option('--allow-destructive', 'accept a change of key, strategy or destination of a sync that holds records (they may be deleted, orphaned or recreated)'),
  ).action(
    action(async (options: CommonOptions & { dryRun?: boolean; force?: boolean; allowDestructive?: boolean }) =>
      withEngine(options, async (engine, project) => {
        const result = await deployProject(engine, options);
        if (options.json) {
          process.stdout.write(JSON.stringify(result, null, 2) + '\n');
        } else {
          process.stdout.write(`${options.dryRun ? 'deploy plan (dry run, nothing changed)' : 'deployed'}: project ${result.project} version ${result.version}\n`);
          const width = Math.max(...result.steps.map((s) => s.sync.length), 4);
          for (const step of result.steps) process.stdout.write(`  ${marks[step.kind]} ${step.sync.padEnd(width)}  ${describe(step)}\n`);
          if (result.tasks) printTasks(result.tasks, Boolean(options.dryRun));
          else if (scheduledSyncs(project).length > 0) {
            process.stdout.write(`tasks: skipped, DuckDB has none; \`ebb scheduler\` runs the schedules of ${scheduledSyncs(project).join(', ')}\n`);
          }
        }
        // A dry run shows the plan, then refuses as the deploy itself would.
        if (options.dryRun && !options.allowDestructive) refuseDestructive(result);
      }),
    ),
  );
}
