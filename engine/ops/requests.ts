/** Run requests: a run queued for the workers (`ebb worker`) instead of run by the caller. */
import { randomUUID } from 'node:crypto';
import type { Engine } from '../engine.ts';
import type { Trigger } from '../run.ts';
import { autoDeploy } from '../catalog/deploy.ts';
import { catalogEntry, checkRunnable } from '../catalog/lifecycle.ts';
import { NotFoundError } from '../errors.ts';
import type { Row } from '../warehouse/warehouse.ts';

/**
 * Queues a run of a sync in `run_requests`, after deploying the code as a run does. A sync that
 * its status keeps from running (paused) is refused now, with the reason a run would give.
 */
export async function queueRun(engine: Engine, name: string, options: { trigger?: Trigger; warn?: (message: string) => void } = {}): Promise<{ request_id: string; sync_name: string }> {
  await autoDeploy(engine, options.warn ?? (() => undefined));
  const entry = await catalogEntry(engine.sql, name);
  if (!entry && !engine.project.config.syncs.some((s) => s.name === name)) throw new NotFoundError('sync', name, `unknown sync "${name}"`);
  const trigger = options.trigger ?? 'api';
  checkRunnable(entry, name, trigger);
  const requestId = randomUUID();
  await engine.sql.run('request_insert', { request_id: requestId, sync_name: name, trigger });
  return { request_id: requestId, sync_name: name };
}

/** One run request; an unknown id is a NotFoundError. */
export async function getRunRequest(engine: Engine, requestId: string): Promise<Row> {
  const [row] = await engine.sql.runAndRead('request_get', { request_id: requestId });
  if (!row) throw new NotFoundError('run', requestId, `unknown run request "${requestId}"`);
  return row;
}
