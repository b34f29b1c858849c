/**
 * Syncs that run after others (`schedule: { after }`) as Snowflake task graphs: the sync's task
 * runs `AFTER` the tasks of the syncs it depends on, so it queues its run request right after
 * theirs, and `ebb worker` runs it once their runs are done (worker.ts). Snowflake allows it where
 * the syncs it depends on have tasks of one graph: a graph has one root, the only task with a
 * schedule, and a task may follow several tasks of its graph. Snowflake also changes a graph only
 * while its root is suspended: the deploy suspends the root first and resumes the graph last,
 * children before the root.
 */
import type { SyncConfig } from '../config/schema.ts';
import type { ConfigIssue } from '../errors.ts';
import type { Row } from '../warehouse/warehouse.ts';
import type { Statement } from '../warehouse/sql.ts';
import { inDependencyOrder, parentsOf } from './dependencies.ts';

/** What task-graph needs of a task spec (tasks.ts). */
export interface GraphSpec {
  sync: string;
  name: string;
  /** The tasks it runs after; empty for a task with a schedule. */
  after: string[];
  /** Its graph's root task (itself for a root). */
  root: string;
  resume: boolean;
}

/**
 * The specs of the syncs that run after others, in dependency order, given the specs of the
 * scheduled ones; `make` builds a spec from the sync and its predecessors' specs. Where Snowflake
 * cannot run one, an issue says why.
 */
export function afterSpecs<S extends GraphSpec>(
  children: Array<{ sync: SyncConfig; path: string }>,
  scheduled: S[],
  make: (sync: SyncConfig, parents: S[]) => S,
  issues: ConfigIssue[],
): S[] {
  const byName = new Map(scheduled.map((s) => [s.sync, s]));
  const paths = new Map(children.map((c) => [c.sync.name, c.path]));
  const made: S[] = [];
  for (const sync of inDependencyOrder(children.map((c) => c.sync))) {
    const path = paths.get(sync.name)!;
    const parents = parentsOf(sync).map((p) => byName.get(p));
    const missing = parentsOf(sync).filter((_p, i) => !parents[i]);
    if (missing.length > 0) {
      issues.push({ path, message: `after: ${missing.join(', ')} ${missing.length === 1 ? 'has' : 'have'} no Snowflake task (a manual or once schedule, or a problem of its own), and a task runs only after tasks; give ${missing.length === 1 ? 'it' : 'them'} an every, cron, live or after schedule, or run ${sync.name} with \`ebb scheduler\`` });
      continue;
    }
    const roots = [...new Set(parents.map((p) => p!.root))];
    if (roots.length > 1) {
      issues.push({ path, message: `after: the syncs it runs after belong to different task graphs (roots ${roots.join(', ')}), and a Snowflake task follows tasks of its own graph only; run them after one scheduled sync, or run ${sync.name} with \`ebb scheduler\`` });
      continue;
    }
    const spec = make(sync, parents as S[]);
    byName.set(sync.name, spec);
    made.push(spec);
  }
  return made;
}

/** The task names of SHOW TASKS' `predecessors` (JSON of qualified names), without their database and schema. */
export function predecessorsOf(row: Row): string[] {
  let names: unknown = [];
  try {
    names = JSON.parse(String(row.predecessors ?? '[]'));
  } catch {
    // An unreadable list reads as none: the task is replaced.
  }
  return Array.isArray(names) ? names.map((n) => String(n).split('.').pop()!.replace(/^"|"$/g, '')) : [];
}

/** The steps of a task plan as tasks.ts builds them. */
interface Step {
  object: 'task' | 'stream';
  name: string;
  sync: string;
  kind: string;
  detail: string;
  statements: Statement[];
}

/**
 * Orders the steps of graphs that change: the root suspended first (when it runs), the creates and
 * updates without their RESUME, then each graph resumed, children first and the root last. Steps
 * outside such graphs keep their order.
 */
export function orderGraphSteps<T extends Step>(steps: T[], specs: GraphSpec[], tasks: Row[], render: (name: 'task_resume' | 'task_suspend', spec: GraphSpec) => Statement): T[] {
  const changed = new Set(steps.filter((s) => s.object === 'task' && ['create', 'update'].includes(s.kind)).map((s) => s.sync));
  const roots = new Set(specs.filter((s) => s.after.length > 0 && changed.has(s.sync)).map((s) => s.root));
  if (roots.size === 0) return steps;
  const members = specs.filter((s) => roots.has(s.root));
  const memberNames = new Set(members.map((s) => s.sync));
  const resumes = new Set(members.filter((s) => s.resume).map((s) => render('task_resume', s).sql));
  const before: T[] = [];
  for (const root of members.filter((s) => s.after.length === 0)) {
    if (tasks.find((t) => t.name === root.name)?.state === 'started') {
      before.push({ object: 'task', name: root.name, sync: root.sync, kind: 'suspend', detail: 'suspended while its task graph changes', statements: [render('task_suspend', root)] } as T);
    }
  }
  const middle = steps.map((s) => (memberNames.has(s.sync) && s.object === 'task' ? { ...s, statements: s.statements.filter((st) => !resumes.has(st.sql)) } : s));
  // Children first: a root resumed before them could fire the graph without them.
  const after = [...members.filter((s) => s.after.length > 0).reverse(), ...members.filter((s) => s.after.length === 0)]
    .filter((s) => s.resume)
    .map((s) => ({ object: 'task', name: s.name, sync: s.sync, kind: 'resume', detail: s.after.length ? `resumed, after ${s.after.join(', ')}` : 'resumed with its task graph', statements: [render('task_resume', s)] }) as T);
  return [...before, ...middle, ...after];
}
