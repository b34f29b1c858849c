/**
 * The operations layer in-process, on a real DuckDB project and a local CRM: what each operation
 * returns is the data that the CLI prints and the server answers with.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { duck, makeProject } from './support/project.ts';
import { CrmApp, crmRequests, rejectEmails } from './support/crm-app.ts';
import { loadProject } from '../engine/config/load.ts';
import { openEngine, type Engine } from '../engine/engine.ts';
import { newRunId } from '../engine/run.ts';
import { ConfigError, NotFoundError, RunRefusedError, UsageError } from '../engine/errors.ts';
import {
  deleteSync,
  deployProject,
  getRun,
  getSync,
  listRecords,
  listRuns,
  listSyncs,
  pauseSync,
  planSync,
  recordHistory,
  resumeSync,
  resyncRecords,
  revertSync,
  runSyncs,
  setOverrides,
  skipRecords,
  triggerRun,
} from '../engine/ops/index.ts';

let app: CrmApp;
let engine: Engine;

/** Two syncs of one table to the CRM: `contacts` (tagged crm) and `leads` (tagged other). */
beforeEach(async () => {
  app = await CrmApp.start();
  const sync = (name: string, tag: string) => ({
    name,
    tags: [tag],
    source: { table: 'contacts', key: 'id' },
    destination: { connection: 'crm', object: 'contacts', requests: crmRequests },
    strategy: 'upsert',
    mapping: { email: 'email' },
  });
  const dir = await makeProject({
    version: 1,
    name: 'ops',
    warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
    connections: { crm: { plugin: 'http', config: { base_url: app.url }, retry: { delays_seconds: [] } } },
    syncs: [sync('contacts', 'crm'), sync('leads', 'other')],
  });
  await duck(join(dir, 'warehouse.duckdb'), `CREATE TABLE contacts AS SELECT * FROM (VALUES (1, 'ann@x.io'), (2, 'bob@x.io'), (13, 'cat@x.io')) t(id, email)`);
  engine = await openEngine(await loadProject(dir));
});

afterEach(async () => {
  await engine.close();
  await app.stop();
});

describe('reads', () => {
  it('listSyncs filters by tag, status and health; a sync not deployed yet is listed as such', async () => {
    expect((await listSyncs(engine)).map((r) => [r.sync_name, r.status, r.health])).toEqual([
      ['contacts', 'NOT DEPLOYED', 'PENDING'],
      ['leads', 'NOT DEPLOYED', 'PENDING'],
    ]);
    app.rules = [rejectEmails(['bob@x.io'])];
    await triggerRun(engine, 'contacts');
    const contacts = (await listSyncs(engine, { tag: 'crm' }))[0];
    expect(contacts).toMatchObject({ sync_name: 'contacts', status: 'ACTIVE', health: 'INCOMPLETE', records: 3, failing_records: 1, tags: ['crm'], failed: 1, succeeded: 2 });
    expect(contacts.top_error).toMatchObject({ records: 1, error: expect.stringContaining('invalid email bob@x.io') });
    expect((await listSyncs(engine, { health: 'INCOMPLETE' })).map((r) => r.sync_name)).toEqual(['contacts']);
    // The first run deployed both syncs: leads is in the catalog, ACTIVE, never run.
    expect((await listSyncs(engine, { status: 'ACTIVE', health: 'PENDING' })).map((r) => r.sync_name)).toEqual(['leads']);
    expect(await listSyncs(engine, { tag: 'none' })).toEqual([]);
  });

  it('getSync gives the definitions, overrides and summary; an unknown name is a NotFoundError', async () => {
    await triggerRun(engine, 'contacts');
    const detail = await getSync(engine, 'contacts');
    expect(detail).toMatchObject({ sync_name: 'contacts', status: 'ACTIVE', health: 'HEALTHY', origin: 'code', overrides: {}, override_issues: [], records: 3 });
    expect(detail.code?.mapping).toEqual({ email: 'email' });
    expect(detail.deployed?.tags).toEqual(['crm']);
    expect(detail.summary).toMatchObject({ sync_name: 'contacts', succeeded: 3, failed: 0 });
    const missing = await getSync(engine, 'nope').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect(missing).toMatchObject({ kind: 'sync', name: 'nope' });
  });

  it('triggerRun runs under the id the caller gives; listRuns and getRun find it', async () => {
    const runId = newRunId();
    const result = await triggerRun(engine, 'contacts', { trigger: 'api', runId });
    expect(result).toMatchObject({ run_id: runId, sync: 'contacts', health: 'HEALTHY', counts: { succeeded: 3 } });
    const second = await triggerRun(engine, 'contacts');
    const runs = await listRuns(engine, { sync: 'contacts' });
    expect(runs.map((r) => r.run_id)).toEqual([second.run_id, runId]);
    expect(await listRuns(engine, { sync: 'contacts', limit: 1, offset: 1 })).toMatchObject([{ run_id: runId }]);
    expect(await listRuns(engine, { sync: 'leads' })).toEqual([]);
    expect((await listRuns(engine)).length).toBe(2);
    const run = await getRun(engine, runId);
    expect(run).toMatchObject({ run_id: runId, sync_name: 'contacts', trigger: 'api', status: 'HEALTHY', planned: { create: 3 }, succeeded: 3, untracked: 0, error: null });
    expect(run.duration_s).toBeGreaterThanOrEqual(0);
    await expect(getRun(engine, 'no-such-run')).rejects.toMatchObject({ kind: 'run', name: 'no-such-run' });
  });

  it('runSyncs by tag runs the syncs that carry it, with the exit code of `ebb run`', async () => {
    app.rules = [rejectEmails(['bob@x.io'])];
    const summary = await runSyncs(engine, { select: ['tag:other'] });
    expect(summary.exit_code).toBe(2);
    expect(summary.runs.map((r) => [r.sync, r.health])).toEqual([['leads', 'INCOMPLETE']]);
    expect(summary.skipped).toEqual([]);
  });

  it('listRecords filters by state and key; recordHistory gives the trail of a key', async () => {
    app.rules = [rejectEmails(['bob@x.io'])];
    const first = await triggerRun(engine, 'contacts');
    app.rules = [];
    const second = await triggerRun(engine, 'contacts');
    app.rules = [rejectEmails(['bob@x.io'])];
    await triggerRun(engine, 'contacts', { fullResync: true });
    const failed = await listRecords(engine, { sync: 'contacts', applyState: 'FAILED' });
    expect(failed.map((r) => [r.record_key, r.apply_state])).toEqual([['2', 'FAILED']]);
    expect(failed[0].transformed_record).toEqual({ email: 'bob@x.io' });
    expect((await listRecords(engine, { sync: 'contacts', keySearch: '1' })).map((r) => r.record_key)).toEqual(['1', '13']);
    expect((await listRecords(engine, { sync: 'contacts', limit: 1, offset: 1 })).map((r) => r.record_key)).toEqual(['13']);
    const trail = await recordHistory(engine, { sync: 'contacts', keys: ['2'] });
    expect(trail.map((r) => r.apply_state)).toEqual(['FAILED', 'SUCCESS', 'FAILED']);
    expect(trail[1]).toMatchObject({ run_id: second.run_id, record_key: '2', action: 'create', app_identifier: expect.stringMatching(/./) });
    expect((await recordHistory(engine, { sync: 'contacts', runId: first.run_id, failed: true })).map((r) => r.record_key)).toEqual(['2']);
    await expect(recordHistory(engine, { sync: 'nope' })).rejects.toBeInstanceOf(NotFoundError);
  });

  it('planSync counts what a run would do and changes nothing', async () => {
    const plan = await planSync(engine, 'contacts', { limit: 2 });
    expect(plan).toMatchObject({ sync: 'contacts', strategy: 'upsert', total: 3, actions: { create: 3 } });
    expect(plan.samples).toHaveLength(2);
    expect(plan.destructive).toBeUndefined();
    expect(await listRuns(engine)).toEqual([]);
  });
});

describe('changes', () => {
  it('pauseSync holds runs back with a typed refusal; resumeSync lets them go again', async () => {
    const warnings: string[] = [];
    expect(await pauseSync(engine, 'contacts', { warn: (m) => warnings.push(m) })).toEqual({ sync: 'contacts', status: 'PAUSED', overrides: { status: 'PAUSED' } });
    expect(warnings).toEqual([]);
    await expect(triggerRun(engine, 'contacts')).rejects.toMatchObject({ reason: 'paused' });
    await expect(triggerRun(engine, 'contacts')).rejects.toBeInstanceOf(RunRefusedError);
    const summary = await runSyncs(engine, { all: true });
    expect(summary).toMatchObject({ exit_code: 0, skipped: [{ sync: 'contacts', reason_code: 'paused' }] });
    expect(summary.runs.map((r) => r.sync)).toEqual(['leads']);
    expect(await resumeSync(engine, 'contacts')).toEqual({ sync: 'contacts', status: 'ACTIVE', overrides: {} });
    expect((await triggerRun(engine, 'contacts')).health).toBe('HEALTHY');
    await expect(pauseSync(engine, 'nope')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('setOverrides checks each field as ebb.yml does and keeps the others; revertSync drops them all', async () => {
    await deployProject(engine);
    const bad = await setOverrides(engine, 'contacts', { batch_size: 0, colour: 'red' }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(ConfigError);
    expect((bad as ConfigError).issues.map((i) => i.path)).toEqual(['overrides.batch_size', 'overrides.colour']);
    expect((await getSync(engine, 'contacts')).overrides).toEqual({});
    await setOverrides(engine, 'contacts', { batch_size: 2, status: 'PAUSED' });
    expect(await setOverrides(engine, 'contacts', { rate_limit: { requests: 5, per_seconds: 1 }, status: null })).toEqual({
      sync: 'contacts',
      status: 'ACTIVE',
      overrides: { batch_size: 2, rate_limit: { requests: 5, per_seconds: 1 } },
    });
    const detail = await getSync(engine, 'contacts');
    expect(detail).toMatchObject({ status: 'ACTIVE', overrides: { batch_size: 2, rate_limit: { requests: 5, per_seconds: 1 } }, summary: { overrides: { batch_size: 2 } } });
    expect((await triggerRun(engine, 'contacts')).counts.succeeded).toBe(3);
    expect(await revertSync(engine, 'contacts')).toEqual({ sync: 'contacts', status: 'ACTIVE', overrides: {}, removed: ['batch_size', 'rate_limit'] });
    expect((await getSync(engine, 'contacts')).overrides).toEqual({});
  });

  it('resyncRecords sends records again in the next run; skipRecords holds them back', async () => {
    await triggerRun(engine, 'contacts');
    expect(await resyncRecords(engine, 'contacts', { keys: ['1'], by: 'ops-test' })).toEqual({ sync: 'contacts', marked: 1, in_doubt: [] });
    expect((await recordHistory(engine, { sync: 'contacts', keys: ['1'] }))[0]).toMatchObject({ action: 'resync', apply_state: 'RESYNC_REQUESTED' });
    expect(await skipRecords(engine, 'contacts', { keys: ['2'] })).toEqual({ sync: 'contacts', skipped: 1 });
    await expect(skipRecords(engine, 'contacts', { keys: ['99'] })).rejects.toBeInstanceOf(UsageError);
    expect((await listRecords(engine, { sync: 'contacts', applyState: ['RESYNC_REQUESTED', 'SKIPPED_ONCE'] })).map((r) => [r.record_key, r.apply_state])).toEqual([
      ['1', 'RESYNC_REQUESTED'],
      ['2', 'SKIPPED_ONCE'],
    ]);
    const run = await triggerRun(engine, 'contacts');
    expect(run.planned).toEqual({ update: 1 });
    expect(await resyncRecords(engine, 'contacts')).toEqual({ sync: 'contacts', marked: 3, in_doubt: [] });
  });

  it('deleteSync refuses without confirmation, then drops the sync and its state but keeps its runs', async () => {
    const run = await triggerRun(engine, 'leads');
    await expect(deleteSync(engine, 'leads')).rejects.toThrow('drops its state of 3 records');
    const warnings: string[] = [];
    expect(await deleteSync(engine, 'leads', { confirmed: true, warn: (m) => warnings.push(m) })).toEqual({ sync: 'leads', records: 3 });
    expect(warnings).toEqual(['leads is still in ebb.yml; the next deploy creates it again. Remove it there.']);
    expect((await listSyncs(engine)).find((r) => r.sync_name === 'leads')).toMatchObject({ status: 'NOT DEPLOYED' });
    expect(await getSync(engine, 'leads')).toMatchObject({ status: 'NOT DEPLOYED', deployed: null, records: 0, summary: { sync_name: 'leads', status: 'NOT DEPLOYED' } });
    expect(await getRun(engine, run.run_id)).toMatchObject({ sync_name: 'leads' });
  });

  it('deployProject puts the code in the catalog; a dry run changes nothing', async () => {
    const dry = await deployProject(engine, { dryRun: true });
    expect(dry).toMatchObject({ committed: false, tasks: null, steps: [{ sync: 'contacts', kind: 'new' }, { sync: 'leads', kind: 'new' }] });
    expect((await listSyncs(engine)).map((r) => r.status)).toEqual(['NOT DEPLOYED', 'NOT DEPLOYED']);
    expect(await deployProject(engine)).toMatchObject({ committed: true });
    expect((await listSyncs(engine)).map((r) => r.status)).toEqual(['ACTIVE', 'ACTIVE']);
  });
});
