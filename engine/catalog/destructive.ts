/**
 * Destructive changes: a sync that holds records in an app changes what its record state points
 * at (its key, its strategy or its destination). Taken silently, its next run would delete,
 * orphan or recreate those records, so `ebb deploy`, `ebb plan` and `ebb run` refuse such a change
 * unless `--allow-destructive` is given. The other half, keys whose text changed upstream, is found
 * by the plan itself (plan.ts).
 */
import { randomUUID } from 'node:crypto';
import type { SyncConfig } from '../config/schema.ts';
import type { Engine } from '../engine.ts';
import { recordCount } from './catalog.ts';
import { effects, plan, sourceContext } from '../plan/plan.ts';

/** A change of a sync's definition that would delete, orphan or recreate the records ebb holds. */
export interface DestructiveChange {
  sync: string;
  /** What changed, in words: `its key changes from id to email`. */
  changes: string[];
  /** The destination changes: accepting it drops the record state, so the next run sends every record to the new one. */
  resetsState: boolean;
  /** What the change does to the records ebb holds, in words, with the counts. */
  effect: string;
}

function destinationName(sync: SyncConfig): string {
  return `${sync.destination.connection}/${sync.destination.object}`;
}

function strategyName(sync: SyncConfig): string {
  return sync.strategy === 'upsert' && sync.on_remove !== 'none' ? `upsert (on_remove: ${sync.on_remove})` : sync.strategy;
}

/** What changed between two definitions of a sync, among the things its record state depends on. */
export function stateChanges(before: SyncConfig, after: SyncConfig): string[] {
  const changes: string[] = [];
  const [was, is] = [sourceContext(before).key, sourceContext(after).key];
  // replace rebuilds the destination on every run: records under the old key do not outlive it.
  if (JSON.stringify(was) !== JSON.stringify(is) && after.strategy !== 'replace') changes.push(`its key changes from ${was.join(', ')} to ${is.join(', ')}`);
  if (strategyName(before) !== strategyName(after)) changes.push(`its strategy changes from ${strategyName(before)} to ${strategyName(after)}`);
  if (destinationName(before) !== destinationName(after)) changes.push(`its destination changes from ${destinationName(before)} to ${destinationName(after)}`);
  return changes;
}

/**
 * Assesses a new definition of a sync whose state is under the name `stateName`: undefined when
 * nothing its state depends on changed, or when the state holds no record.
 */
export async function assessChange(engine: Engine, before: SyncConfig, after: SyncConfig, stateName = after.name): Promise<DestructiveChange | undefined> {
  const changes = stateChanges(before, after);
  if (changes.length === 0) return undefined;
  const held = await recordCount(engine.sql, stateName);
  if (held === 0) return undefined;
  const resetsState = destinationName(before) !== destinationName(after);
  return { sync: after.name, changes, resetsState, effect: await effectOf(engine, before, after, held, resetsState, stateName) };
}

async function effectOf(engine: Engine, before: SyncConfig, after: SyncConfig, held: number, resetsState: boolean, stateName: string): Promise<string> {
  const { sql } = engine;
  const runId = `check-${randomUUID()}`;
  try {
    if (resetsState) {
      const [{ n }] = await sql.runAndRead('source_count', sourceContext(after));
      return `the ${held} records ebb holds in ${destinationName(before)} would stay there, no longer tracked, and its next run would send all ${Number(n)} source records to ${destinationName(after)} from scratch`;
    }
    const summary = await plan(sql, { ...after, name: stateName }, { runId, allowEmptySource: true, allowDestructive: true });
    return `it holds ${held} records in the app, and its next run would ${effects(summary)}`;
  } catch (e) {
    return `it holds ${held} records in the app (its next run cannot be planned: ${(e as Error).message.split('\n')[0]})`;
  } finally {
    await sql.run('clear_run', { table: 'sync_changes', run_id: runId });
  }
}

/** One line about a destructive change: what changed, and what it does to the records. */
export function describeChange(change: DestructiveChange): string {
  return `sync ${change.sync}: ${change.changes.join(', and ')}; ${change.effect}.`;
}
