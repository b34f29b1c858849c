/**
 * Deploying the code: validate, analyse, commit the syncs into the catalog; on Snowflake, then
 * create, update or remove the tasks (and streams) that queue the scheduled runs (schedule/tasks.ts).
 */
import type { Engine } from '../engine.ts';
import { checkAndAnalyse, commitDeploy, type DeployPlan } from '../catalog/deploy.ts';
import { applyTasks, planTasks, type TaskStep } from '../schedule/tasks.ts';

export interface DeployOptions {
  /** Plan only; change nothing. */
  dryRun?: boolean;
  /** Deploy even when the catalog holds a newer project version. */
  force?: boolean;
  /** Accept a change of key, strategy or destination of a sync that holds records. */
  allowDestructive?: boolean;
}

/** The shape of `ebb deploy --json`: the plan, whether it was committed, and on Snowflake the tasks with their DDL. */
export interface DeployResult extends DeployPlan {
  committed: boolean;
  tasks: { schema: string; steps: Array<Omit<TaskStep, 'statements'> & { ddl: string[] }> } | null;
}

/**
 * Deploys the project's syncs. A dry run returns the plan, destructive steps included, without
 * refusing them (`refuseDestructive` says whether the deploy itself would refuse).
 */
export async function deployProject(engine: Engine, options: DeployOptions = {}): Promise<DeployResult> {
  const { plan } = await checkAndAnalyse(engine);
  // Planned before the commit: a schedule that Snowflake cannot run stops the deploy with nothing changed.
  const tasks = engine.project.config.warehouse.type === 'snowflake' ? await planTasks(engine) : null;
  if (!options.dryRun) {
    await commitDeploy(engine, plan, { force: options.force, allowDestructive: options.allowDestructive });
    if (tasks) await applyTasks(engine, tasks);
  }
  return {
    ...plan,
    committed: !options.dryRun,
    tasks: tasks && { schema: tasks.schema, steps: tasks.steps.map(({ statements, ...step }) => ({ ...step, ddl: statements.map((st) => st.sql.trim()) })) },
  };
}
