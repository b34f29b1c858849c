/**
 * `ebb deploy` and the sync lifecycle, through the real CLI: each deploy case of the catalog
 * (new, updated, identical, orphaned with and without state, admin origin, rename, overrides,
 * revert, version guard), delete, and the COMPLETED and ERROR statuses. The runs whose exit code
 * alone matters go in this process, as `ebb run` makes them.
 */
import { describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { join } from 'node:path';
import { duck, ebb, makeProject, runHere } from './support/project.ts';

interface SyncSpec {
  name: string;
  object?: string;
  renamed_from?: string;
  batch_size?: number;
  schedule?: unknown;
  connection?: string;
}

function config(syncs: SyncSpec[], version = 1) {
  return {
    version,
    name: 'catalog_test',
    warehouse: { type: 'duckdb', path: 'wh.duckdb' },
    connections: {
      files: { plugin: 'file', config: { directory: 'out' } },
      down: { plugin: 'http', config: { base_url: 'http://127.0.0.1:9' }, retry: { delays_seconds: [] } },
    },
    syncs: syncs.map((s) => ({
      name: s.name,
      ...(s.renamed_from && { renamed_from: s.renamed_from }),
      source: { table: 'people', key: 'id' },
      destination:
        s.connection === 'down'
          ? { connection: 'down', object: 'people', requests: { create: { method: 'POST', path: '/people', body: '{{ record | tojson }}' } } }
          : { connection: 'files', object: s.object ?? `${s.name}.jsonl` },
      strategy: 'upsert',
      mapping: { id: 'id', name: 'name' },
      ...(s.batch_size && { batch_size: s.batch_size }),
      ...(s.schedule !== undefined && { schedule: s.schedule }),
    })),
  };
}

async function project(syncs: SyncSpec[]) {
  const dir = await makeProject(config(syncs));
  await duck(join(dir, 'wh.duckdb'), `create table people as select i as id, 'p' || i as name from range(1, 4) t(i)`);
  return dir;
}

async function redeploy(dir: string, syncs: SyncSpec[], version = 1, ...args: string[]) {
  await writeFile(join(dir, 'ebb.yml'), stringify(config(syncs, version)));
  return ebb(dir, ['deploy', '--json', ...args]);
}

function steps(stdout: string): Record<string, string> {
  const plan = JSON.parse(stdout) as { steps: Array<{ sync: string; kind: string; action: string; changed?: string[] }> };
  return Object.fromEntries(plan.steps.map((s) => [s.sync, `${s.kind}:${s.action}${s.changed ? `:${s.changed.join(',')}` : ''}`]));
}

const catalog = (dir: string) => duck(join(dir, 'wh.duckdb'), 'select sync_name, status, origin, overrides from ebb.syncs order by sync_name');

describe('ebb deploy', () => {
  it('creates new syncs, updates changed ones with their changed fields, and leaves identical ones', async () => {
    const dir = await project([{ name: 'a' }, { name: 'b' }]);
    const first = await ebb(dir, ['deploy', '--json']);
    expect(first.code).toBe(0);
    expect(steps(first.stdout)).toEqual({ a: 'new:create', b: 'new:create' });

    const second = await redeploy(dir, [{ name: 'a' }, { name: 'b', batch_size: 7, object: 'other.jsonl' }]);
    expect(steps(second.stdout)).toEqual({ a: 'identical:none', b: 'updated:update:batch_size,destination' });
    const [row] = await duck(join(dir, 'wh.duckdb'), "select definition->>'$.batch_size' as bs from ebb.syncs where sync_name = 'b'");
    expect(row.bs).toBe('7');
  });

  it('--dry-run prints the plan and changes nothing', async () => {
    const dir = await project([{ name: 'a' }]);
    const dry = await ebb(dir, ['deploy', '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/\+ a\s+new/);
    expect(await catalog(dir)).toEqual([]);
  });

  it('deletes an orphan without state, pauses an orphan with state and keeps its state', async () => {
    const dir = await project([{ name: 'stateless' }, { name: 'stateful' }]);
    await ebb(dir, ['deploy']);
    expect((await runHere(dir, ['stateful'])).code).toBe(0);
    const result = await redeploy(dir, []);
    expect(steps(result.stdout)).toEqual({ stateless: 'orphaned:delete', stateful: 'orphaned:pause' });
    expect((await catalog(dir)).map((r) => `${String(r.sync_name)}:${String(r.status)}`)).toEqual(['stateful:PAUSED']);
    const [{ n }] = await duck(join(dir, 'wh.duckdb'), "select count(*) as n from ebb.sync_record_state where sync_name = 'stateful'");
    expect(n).toBe(3);
  });

  it('never deletes a sync that an admin created', async () => {
    const dir = await project([{ name: 'a' }]);
    await ebb(dir, ['deploy']);
    await duck(join(dir, 'wh.duckdb'), "insert into ebb.syncs (sync_name, origin, status, health) values ('made_by_admin', 'admin', 'ACTIVE', 'PENDING')");
    const result = await redeploy(dir, [{ name: 'a' }]);
    expect(steps(result.stdout).made_by_admin).toBe('orphaned:keep');
    expect((await catalog(dir)).map((r) => r.sync_name)).toEqual(['a', 'made_by_admin']);
  });

  it('a rename with renamed_from takes over the state and history; without it, a rename is a new sync', async () => {
    const dir = await project([{ name: 'old', object: 'people.jsonl' }]);
    expect((await runHere(dir, ['old'])).code).toBe(0);
    const renamed = await redeploy(dir, [{ name: 'new', renamed_from: 'old', object: 'people.jsonl' }]);
    expect(steps(renamed.stdout)).toEqual({ new: 'renamed:rename:name,renamed_from' });
    const state = await duck(join(dir, 'wh.duckdb'), 'select sync_name, count(*) as n from ebb.sync_record_state group by 1');
    expect(state).toEqual([{ sync_name: 'new', n: 3 }]);
    // Nothing changed in the source: the renamed sync has nothing to send.
    const run = await ebb(dir, ['run', 'new', '--json']);
    expect(JSON.parse(run.stdout).runs[0].planned).toEqual({});
    const history = await ebb(dir, ['history', 'new', '--json']);
    expect((JSON.parse(history.stdout) as unknown[]).length).toBe(3);

    const plain = await redeploy(dir, [{ name: 'newer', object: 'people.jsonl' }]);
    expect(steps(plain.stdout)).toEqual({ newer: 'new:create', new: 'orphaned:pause' });
  });

  it('admin overrides in the warehouse win over the code; revert restores the code', async () => {
    const dir = await project([{ name: 'a', batch_size: 100 }]);
    await ebb(dir, ['deploy']);
    // An admin pauses the sync with plain SQL.
    await duck(join(dir, 'wh.duckdb'), `update ebb.syncs set overrides = '{"status":"PAUSED","batch_size":2}' where sync_name = 'a'`);
    const refused = await ebb(dir, ['run', 'a']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/a is paused/);
    // A redeploy of the code does not undo the override.
    await redeploy(dir, [{ name: 'a', batch_size: 50 }]);
    expect((await runHere(dir, ['a'])).code).toBe(1);
    expect((await ebb(dir, ['status', '--json'])).stdout).toMatch(/"status": "PAUSED"/);

    expect((await ebb(dir, ['revert', 'a'])).code).toBe(0);
    expect((await catalog(dir))[0]).toMatchObject({ status: 'ACTIVE', overrides: null });
    expect((await runHere(dir, ['a'])).code).toBe(0);
  });

  it('refuses to deploy an older project version; --force overrides; run warns and runs the catalog', async () => {
    const dir = await project([{ name: 'a', batch_size: 5 }]);
    expect((await redeploy(dir, [{ name: 'a', batch_size: 5 }], 3)).code).toBe(0);
    const older = await redeploy(dir, [{ name: 'a', batch_size: 9 }], 2);
    expect(older.code).toBe(1);
    expect(older.stderr).toMatch(/version 2, but version 3 already deployed/);
    const run = await ebb(dir, ['run', 'a']);
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/warning: project version 2 is older than the catalog's \(3\)/);
    const [row] = await duck(join(dir, 'wh.duckdb'), "select definition->>'$.batch_size' as bs from ebb.syncs");
    expect(row.bs).toBe('5');
    expect((await redeploy(dir, [{ name: 'a', batch_size: 9 }], 2, '--force')).code).toBe(0);
  });

  it('delete asks for --yes, drops the state and keeps the history', async () => {
    const dir = await project([{ name: 'a' }]);
    await runHere(dir, ['a']);
    const unconfirmed = await ebb(dir, ['delete', 'a']);
    expect(unconfirmed.code).toBe(3);
    expect(unconfirmed.stderr).toMatch(/--yes/);
    expect((await ebb(dir, ['delete', 'a', '--yes'])).code).toBe(0);
    const counts = await duck(
      join(dir, 'wh.duckdb'),
      "select (select count(*) from ebb.syncs) as syncs, (select count(*) from ebb.sync_record_state) as state, (select count(*) from ebb.sync_record_history) as history",
    );
    expect(counts).toEqual([{ syncs: 0, state: 0, history: 3 }]);
  });
});

describe('lifecycle', () => {
  it('a once schedule becomes COMPLETED after its first healthy run', async () => {
    const dir = await project([{ name: 'a', schedule: 'once' }]);
    expect((await runHere(dir, ['a'])).code).toBe(0);
    expect((await catalog(dir))[0].status).toBe('COMPLETED');
    // A person may still run it; a schedule may not.
    expect((await runHere(dir, ['a'], { trigger: 'schedule' })).code).toBe(1);
    expect((await runHere(dir, ['a'])).code).toBe(0);
  });

  it('a sync whose last 3 runs failed goes to ERROR until it is resumed', async () => {
    const dir = await project([{ name: 'a', connection: 'down' }]);
    for (let i = 0; i < 3; i++) expect((await runHere(dir, ['a'])).code).toBe(1);
    expect((await catalog(dir))[0].status).toBe('ERROR');
    const scheduled = await ebb(dir, ['run', 'a', '--trigger', 'schedule']);
    expect(scheduled.code).toBe(1);
    expect(scheduled.stderr).toMatch(/is ERROR/);
    expect((await ebb(dir, ['resume', 'a'])).code).toBe(0);
    expect((await catalog(dir))[0].status).toBe('ACTIVE');
  });
});

describe('overrides', () => {
  it("an admin's rate_limit override is what the sync's requests obey", async () => {
    const { CrmApp, crmRequests } = await import('./support/crm-app.ts');
    const app = await CrmApp.start();
    const times: number[] = [];
    app.rules.push(() => void times.push(performance.now()));
    try {
      const dir = await makeProject({
        version: 1,
        name: 'override_test',
        warehouse: { type: 'duckdb', path: 'wh.duckdb' },
        connections: { crm: { plugin: 'http', config: { base_url: app.url } } },
        syncs: [
          {
            name: 'a',
            source: { table: 'people', key: 'id' },
            destination: { connection: 'crm', object: 'contacts', requests: crmRequests },
            strategy: 'upsert',
            mapping: { email: { sql: "'p' || id || '@example.com'" }, name: 'name' },
          },
        ],
      });
      await duck(join(dir, 'wh.duckdb'), `create table people as select i as id, 'p' || i as name from range(1, 7) t(i)`);
      await ebb(dir, ['deploy']);
      await duck(join(dir, 'wh.duckdb'), `update ebb.syncs set overrides = '{"rate_limit":{"requests":2,"per_seconds":1}}' where sync_name = 'a'`);
      expect((await ebb(dir, ['run', 'a'])).code).toBe(0);
      expect(times).toHaveLength(6);
      // No window of one second holds more than 2 requests: the 3rd after any request is >= 1 s later.
      for (let i = 2; i < times.length; i++) expect(times[i] - times[i - 2]).toBeGreaterThanOrEqual(990);
    } finally {
      await app.stop();
    }
  });
});
