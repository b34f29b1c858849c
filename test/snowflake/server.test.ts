/**
 * `ebb serve` on Snowflake (the wire emulator): the API reads the same tables, a trigger queues a
 * run request that `ebb worker` serves (and the request leads to its run), or with runs in the
 * server, runs at once. Every answer is checked against the server's OpenAPI document. Emulated.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { SnowflakeEmulator } from './emulator.ts';
import './support.ts';
import { ebb, makeProject } from '../support/project.ts';
import { startServer, type TestServer } from '../support/api.ts';
import { until } from '../support/wait.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- answers are checked against the document first (support/api.ts)

describe('ebb serve on Snowflake (emulated)', () => {
  let emulator: SnowflakeEmulator;
  let dir: string;
  const env = { SF_PASSWORD: 'p4ss' };

  beforeAll(async () => {
    process.env.SF_PASSWORD = env.SF_PASSWORD;
    emulator = await SnowflakeEmulator.start({ users: { ebb_user: { password: 'p4ss' } } });
    await emulator.sql('CREATE SCHEMA analytics');
    await emulator.sql('CREATE TABLE analytics.customers (customer_id INTEGER, email VARCHAR)');
    await emulator.sql(`INSERT INTO analytics.customers VALUES (1, 'ada@x.io'), (2, 'bob@x.io'), (3, 'cy@x.io')`);
    dir = await makeProject(
      stringify({
        version: 1,
        name: 'sf_served',
        warehouse: { type: 'snowflake', account: 'emulated', username: 'ebb_user', password: "{{ env_var('SF_PASSWORD') }}", database: 'DB', access_url: emulator.url },
        connections: { files: { plugin: 'file', config: { directory: './out' } } },
        syncs: ['queued', 'direct'].map((name) => ({
          name,
          tags: ['sf'],
          source: { table: 'analytics.customers', key: 'customer_id' },
          destination: { connection: 'files', object: `${name}.jsonl` },
          strategy: 'upsert',
          mapping: { email: 'email' },
        })),
      }),
    );
  });
  afterAll(async () => {
    await emulator?.stop();
    delete process.env.SF_PASSWORD;
  });

  it('queues a trigger for the workers; the request leads to the run that served it', async () => {
    const api: TestServer = await startServer(dir, { queueRuns: true });
    try {
      const queued = await api.call<Json>('POST', '/api/v1/syncs/queued/runs', { body: { trigger: 'airflow' } });
      expect(queued.status).toBe(202);
      expect(queued.body).toMatchObject({ sync_name: 'queued', status: 'QUEUED', url: `/api/v1/requests/${queued.body.request_id}` });
      const waiting = await api.call<Json>('GET', queued.body.url);
      expect(waiting.body).toMatchObject({ request_id: queued.body.request_id, sync_name: 'queued', trigger: 'airflow', claimed_by: null, run_id: null });
      const fullResync = await api.call<Json>('POST', '/api/v1/syncs/queued/runs', { body: { full_resync: true } });
      expect(fullResync.status).toBe(422);
      expect(fullResync.body.detail).toContain('records/resync');
      const worker = await ebb(dir, ['worker', '--once'], env);
      expect(worker.code, worker.stderr).toBe(0);
      const served = await api.call<Json>('GET', queued.body.url);
      expect(served.body.run_id).toEqual(expect.any(String));
      expect(served.body.finished_at).not.toBeNull();
      const run = await api.call<Json>('GET', `/api/v1/runs/${served.body.run_id}`);
      expect(run.body).toMatchObject({ sync_name: 'queued', trigger: 'airflow', status: 'HEALTHY', succeeded: 3, phase: null });
      const paused = await api.call<Json>('PATCH', '/api/v1/syncs/queued', { body: { status: 'PAUSED' } });
      expect(paused.body.status).toBe('PAUSED');
      const refused = await api.call<Json>('POST', '/api/v1/syncs/queued/runs');
      expect(refused.status).toBe(409);
      expect(refused.body).toMatchObject({ type: 'urn:ebb:problem:run-refused', reason: 'paused' });
      expect((await api.call<Json>('POST', '/api/v1/syncs/nope/runs')).status).toBe(404);
      expect((await api.call<Json>('GET', '/api/v1/requests/nope')).status).toBe(404);
    } finally {
      await api.close();
    }
  });

  it('runs in the server when it does not queue, and reads syncs, runs, records, history, plans and metrics from Snowflake', async () => {
    const api: TestServer = await startServer(dir);
    try {
      const started = await api.call<Json>('POST', '/api/v1/syncs/direct/runs');
      expect(started.status).toBe(202);
      const run = await until('the run to end', async () => {
        const answer = await api.call<Json>('GET', started.body.url);
        return answer.body.status === 'RUNNING' ? undefined : answer.body;
      }, { timeoutMs: 60_000 });
      expect(run).toMatchObject({ sync_name: 'direct', trigger: 'api', status: 'HEALTHY', succeeded: 3, planned: { create: 3 } });
      const syncs = await api.call<Json>('GET', '/api/v1/syncs?tag=sf&limit=1');
      expect(syncs.body).toMatchObject({ next_offset: 1, items: [{ sync_name: 'direct', status: 'ACTIVE', health: 'HEALTHY', records: 3 }] });
      expect((await api.call<Json>('GET', '/api/v1/syncs/direct')).body).toMatchObject({ sync_name: 'direct', origin: 'code', records: 3 });
      expect((await api.call<Json>('GET', '/api/v1/syncs/direct/runs')).body.items.map((r: Json) => r.run_id)).toEqual([run.run_id]);
      const records = await api.call<Json>('GET', '/api/v1/syncs/direct/records?apply_state=SUCCESS&key=2');
      expect(records.body.items).toMatchObject([{ record_key: '2', apply_state: 'SUCCESS', transformed_record: { email: 'bob@x.io' } }]);
      const history = await api.call<Json>('GET', '/api/v1/syncs/direct/records/2/history');
      expect(history.body.items).toMatchObject([{ action: 'create', apply_reason: 'NEW', success: true, run_id: run.run_id }]);
      const plan = await api.call<Json>('GET', '/api/v1/syncs/direct/plan');
      expect(plan.body).toMatchObject({ sync: 'direct', total: 0 });
      const metrics = await (await fetch(`${api.url}/metrics`)).text();
      expect(metrics).toContain('ebb_sync_runs{sync="direct",status="HEALTHY"} 1');
      expect(metrics).toContain('ebb_sync_records{sync="direct",apply_state="SUCCESS"} 3');
    } finally {
      await api.close();
    }
  });
});
