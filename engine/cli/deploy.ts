/** `ebb deploy`: validate, analyse, commit the syncs of the code into the catalog. */
import type { Command } from 'commander';
import { action, common, withEngine, type CommonOptions } from './common.ts';
import { analyseDeploy, commitDeploy, type DeployStep } from '../catalog/deploy.ts';
import { validateProject } from '../config/validate.ts';

const marks: Record<DeployStep['kind'], string> = { new: '+', updated: '~', identical: '=', renamed: '>', orphaned: '-' };

function describe(step: DeployStep): string {
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
      .description('put the syncs defined in code into the warehouse catalog: validate, analyse, commit')
      .option('--dry-run', 'print the plan; change nothing')
      .option('--force', 'deploy even when the catalog holds a newer project version'),
  ).action(
    action(async (options: CommonOptions & { dryRun?: boolean; force?: boolean }) =>
      withEngine(options, async (engine, project) => {
        await validateProject(engine.sql, project.config.syncs);
        const plan = await analyseDeploy(engine);
        if (!options.dryRun) await commitDeploy(engine, plan, { force: options.force });
        if (options.json) {
          process.stdout.write(JSON.stringify({ ...plan, committed: !options.dryRun }, null, 2) + '\n');
          return;
        }
        process.stdout.write(`${options.dryRun ? 'deploy plan (dry run, nothing changed)' : 'deployed'}: project ${plan.project} version ${plan.version}\n`);
        const width = Math.max(...plan.steps.map((s) => s.sync.length), 4);
        for (const step of plan.steps) process.stdout.write(`  ${marks[step.kind]} ${step.sync.padEnd(width)}  ${describe(step)}\n`);
      }),
    ),
  );
}
