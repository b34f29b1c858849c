/**
 * Destructive changes are never silent, through the real CLI (the runs whose refusal is not the
 * point go in process, as `ebb run --json` makes them) against a local CRM and real files:
 * a new key (its columns, or its text after an upstream type change), strategy or destination of a
 * sync that holds records is refused by `ebb deploy`, `ebb plan` and `ebb run` with the counts,
 * unless --allow-destructive; replace with an emptied source is guarded, then empties the
 * destination; a plugin refuses a strategy it cannot honour.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { duck, ebb, makeProject, runHere } from './support/project.ts';
import { CrmApp, crmRequests } from './support/crm-app.ts';

const apps: CrmApp[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.stop()));
});

interface SyncSpec {
  key?: string;
  strategy?: string;
  connection?: 'crm' | 'files';
  object?: string;
  requests?: Record<string, unknown>;
}

/** A project with one sync `s` of `contacts` (id, email, name), and its warehouse loaded with 3 contacts. */
async function setup(spec: SyncSpec = {}) {
  const app = await CrmApp.start();
  apps.push(app);
  const yml = (s: SyncSpec) =>
    stringify({
      version: 1,
      name: 'destructive',
      warehouse: { type: 'duckdb', path: 'wh.duckdb' },
      connections: {
        crm: { plugin: 'http', config: { base_url: app.url }, retry: { delays_seconds: [] } },
        files: { plugin: 'file', config: { directory: 'out' } },
      },
      syncs: [
        {
          name: 's',
          source: { table: 'contacts', key: s.key ?? 'id' },
          destination: s.connection === 'files' ? { connection: 'files', object: s.object ?? 's.jsonl' } : { connection: 'crm', object: s.object ?? 'contacts', requests: s.requests ?? crmRequests },
          strategy: s.strategy ?? 'upsert',
          mapping: { email: 'email', name: 'name' },
        },
      ],
    });
  const dir = await makeProject(yml(spec));
  const db = join(dir, 'wh.duckdb');
  await duck(db, `CREATE TABLE contacts AS SELECT * FROM (VALUES (1, 'ann@x.io', 'Ann'), (2, 'bob@x.io', 'Bob'), (3, 'cyd@x.io', 'Cyd')) t(id, email, name)`);
  return {
    app,
    dir,
    db,
    /** Rewrites ebb.yml with another definition of `s`. */
    change: (s: SyncSpec) => writeFile(join(dir, 'ebb.yml'), yml({ ...spec, ...s })),
    /** The sync's definition in the catalog, as deployed. */
    deployed: async () => (await duck(db, `SELECT definition::VARCHAR AS d FROM ebb.syncs WHERE sync_name = 's'`)).map((r) => JSON.parse(String(r.d)) as { source: { key: string }; strategy: string; destination: { object: string } })[0],
    history: async (runId: string) =>
      (await duck(db, `SELECT record_key, action, apply_reason, apply_state FROM ebb.sync_record_history WHERE run_id = '${runId}'`)).map((r) => `${r.record_key} ${r.action} ${r.apply_reason} ${r.apply_state}`).sort(),
    state: async () => (await duck(db, `SELECT record_key FROM ebb.sync_record_state ORDER BY record_key`)).map((r) => String(r.record_key)),
  };
}

/**
 * A run of `s` as `ebb run s --json` makes it, in this process, expecting an exit code; returns the
 * run of its --json output. The refusals, whose messages matter, go through the real command.
 */
async function runExpect(dir: string, code: number, options: Parameters<typeof runHere>[2] = {}) {
  const result = await runHere(dir, ['s'], options);
  expect(result.code, result.stderr + result.json).toBe(code);
  // A refusal that stops the command prints no --json output.
  const { runs } = JSON.parse(result.json || '{"runs": []}') as { runs: Array<Record<string, any>> }; // eslint-disable-line @typescript-eslint/no-explicit-any -- read as the --json output was
  return runs[0];
}

/** Runs `ebb <args>` and expects an exit code. */
async function expectExit(dir: string, code: number, args: string[]) {
  const result = await ebb(dir, args);
  expect(result.code, result.stderr + result.stdout).toBe(code);
  return result;
}

describe('a new key of a sync that holds records', () => {
  it('is refused by deploy, deploy --dry-run, plan and run with the counts; `ebb deploy --allow-destructive` accepts it and the next run proceeds', async () => {
    const s = await setup();
    await runExpect(s.dir, 0);
    expect(s.app.contacts.size).toBe(3);
    const sent = s.app.requests.length;
    await s.change({ key: 'email' });

    const refusal = /sync s: its key changes from id to email; it holds 3 records in the app, and its next run would stop tracking 3 \(left in the app as they are\) and create 3\..*--allow-destructive/s;
    for (const args of [['deploy'], ['deploy', '--dry-run'], ['plan', 's'], ['run', 's']]) {
      const refused = await expectExit(s.dir, 1, args);
      expect(refused.stderr, args.join(' ')).toMatch(refusal);
    }
    expect(s.app.requests.length).toBe(sent);
    expect((await s.deployed()).source.key).toBe('id');
    expect(await s.state()).toEqual(['1', '2', '3']);

    const plan = await expectExit(s.dir, 0, ['plan', 's', '--allow-destructive', '--json']);
    expect(JSON.parse(plan.stdout).actions).toEqual({ untrack: 3, create: 3 });

    await expectExit(s.dir, 0, ['deploy', '--allow-destructive']);
    expect((await s.deployed()).source.key).toBe('email');
    // Accepted by the deploy: the run re-keys the state without asking again.
    const run = await runExpect(s.dir, 0);
    expect(await s.history(run.run_id)).toEqual([
      '1 untrack REMOVED SUCCESS',
      '2 untrack REMOVED SUCCESS',
      '3 untrack REMOVED SUCCESS',
      'ann@x.io update NEW SUCCESS',
      'bob@x.io update NEW SUCCESS',
      'cyd@x.io update NEW SUCCESS',
    ]);
    // The app matched the creates by email (409 with the id; then an update), so it still holds the same 3 contacts.
    expect(s.app.contacts.size).toBe(3);
    expect(await s.state()).toEqual(['ann@x.io', 'bob@x.io', 'cyd@x.io']);
    const again = await runExpect(s.dir, 0);
    expect(again.planned).toEqual({});
  });

  it('whose text changed upstream (INTEGER 1 became VARCHAR 001) is refused by plan and run with the counts; `ebb run --allow-destructive` proceeds', async () => {
    const s = await setup({ strategy: 'mirror', connection: 'files' });
    await runExpect(s.dir, 0);
    const keys = join(s.dir, 'out', 's.jsonl.keys');
    const before = await readFile(keys, 'utf8');
    await duck(s.db, `ALTER TABLE contacts ALTER id TYPE VARCHAR USING lpad(CAST(id AS VARCHAR), 3, '0')`);

    const refusal = /sync s: the text of its keys changed \(did the type of id change upstream\?\): 3 of the 3 records ebb holds in the app no longer match a source key, and 3 source records have keys ebb has not seen\. This run would delete 3 from the app and create 3\..*--allow-destructive/s;
    expect((await expectExit(s.dir, 1, ['plan', 's'])).stderr).toMatch(refusal);
    const refused = await runExpect(s.dir, 1);
    expect(refused.health).toBe('FAILED');
    expect(refused.error).toMatch(refusal);
    // The definition did not change: deploy has nothing to refuse.
    expect(JSON.parse((await expectExit(s.dir, 0, ['deploy', '--json'])).stdout).steps[0].kind).toBe('identical');
    expect(await readFile(keys, 'utf8')).toBe(before);
    expect(await s.state()).toEqual(['1', '2', '3']);

    const run = await runExpect(s.dir, 0, { allowDestructive: true });
    expect(run.planned).toEqual({ create: 3, delete: 3 });
    expect(await s.history(run.run_id)).toEqual([
      '001 create NEW SUCCESS',
      '002 create NEW SUCCESS',
      '003 create NEW SUCCESS',
      '1 delete REMOVED SUCCESS',
      '2 delete REMOVED SUCCESS',
      '3 delete REMOVED SUCCESS',
    ]);
    expect(await s.state()).toEqual(['001', '002', '003']);
    expect((await readFile(keys, 'utf8')).split('\n').slice(1, -1).sort()).toEqual(['"001"', '"002"', '"003"']);
    await runExpect(s.dir, 0);
  });
});

describe('a new strategy or destination of a sync that holds records', () => {
  it('upsert → mirror is refused by deploy, plan and run; so is a new object, and accepting it sends every record to the new one', async () => {
    const s = await setup({ connection: 'files' });
    await runExpect(s.dir, 0);
    await s.change({ strategy: 'mirror' });
    for (const args of [['deploy'], ['plan', 's'], ['run', 's']]) {
      expect((await expectExit(s.dir, 1, args)).stderr, args.join(' ')).toMatch(/sync s: its strategy changes from upsert to mirror; it holds 3 records in the app, and its next run would change nothing in the app\..*--allow-destructive/s);
    }
    expect((await s.deployed()).strategy).toBe('upsert');

    await s.change({ strategy: 'upsert', object: 't.jsonl' });
    const change = /sync s: its destination changes from files\/s\.jsonl to files\/t\.jsonl; the 3 records ebb holds in files\/s\.jsonl would stay there, no longer tracked, and its next run would send all 3 source records to files\/t\.jsonl from scratch\..*--allow-destructive/s;
    for (const args of [['deploy', '--dry-run'], ['plan', 's'], ['run', 's']]) expect((await expectExit(s.dir, 1, args)).stderr, args.join(' ')).toMatch(change);
    expect((await s.deployed()).destination.object).toBe('s.jsonl');

    const run = await runExpect(s.dir, 0, { allowDestructive: true });
    expect(run.planned).toEqual({ create: 3 });
    const lines = async (file: string) => (await readFile(join(s.dir, 'out', file), 'utf8')).trim().split('\n').sort();
    expect(await lines('t.jsonl')).toEqual(['{"email":"ann@x.io","name":"Ann"}', '{"email":"bob@x.io","name":"Bob"}', '{"email":"cyd@x.io","name":"Cyd"}']);
    expect(await lines('s.jsonl')).toEqual(await lines('t.jsonl'));
  });
});

describe('replace with an emptied source', () => {
  it('is refused like mirror; with --allow-empty-source the file becomes empty and history says each record left it', async () => {
    const s = await setup({ connection: 'files', strategy: 'replace' });
    await runExpect(s.dir, 0);
    const file = join(s.dir, 'out', 's.jsonl');
    const before = await readFile(file, 'utf8');
    expect(before.trim().split('\n')).toHaveLength(3);
    await duck(s.db, 'DELETE FROM contacts');

    const refused = await expectExit(s.dir, 1, ['run', 's']);
    expect(refused.stderr).toMatch(/the source returned no rows, so this run would remove all 3 records it holds in the app \(replace would empty the destination\).*--allow-empty-source/);
    expect(await readFile(file, 'utf8')).toBe(before);
    expect(await s.state()).toEqual(['1', '2', '3']);

    const run = await runExpect(s.dir, 0, { allowEmptySource: true });
    expect(await readFile(file, 'utf8')).toBe('');
    expect(await s.history(run.run_id)).toEqual(['1 untrack REMOVED SUCCESS', '2 untrack REMOVED SUCCESS', '3 untrack REMOVED SUCCESS']);
    expect(await s.state()).toEqual([]);
  });
});

describe('strategies a plugin cannot honour', () => {
  it('http replace needs requests.recreate and requests.delete_all: validate, deploy and run exit 3 at syncs[0].strategy; with them, a run empties the set first', async () => {
    const s = await setup({ strategy: 'replace' });
    for (const args of [['validate'], ['deploy'], ['run', 's']]) {
      const refused = await expectExit(s.dir, 3, args);
      expect(refused.stderr, args.join(' ')).toContain('syncs[0].strategy: plugin http does not support replace with this destination (see its documentation); it supports create, update, upsert, mirror, send');
    }
    expect(s.app.requests).toEqual([]);

    s.app.rules = [(r) => (r.method === 'DELETE' && r.path === '/contacts' ? (s.app.contacts.clear(), { status: 204 }) : undefined)];
    const someoneElses = s.app.seed({ email: 'old@x.io' });
    await s.change({ requests: { ...crmRequests, recreate: crmRequests.create, delete_all: { method: 'DELETE', path: '/contacts' } } });
    await runExpect(s.dir, 0);
    expect(s.app.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['DELETE /contacts', 'POST /contacts', 'POST /contacts', 'POST /contacts']);
    expect(s.app.contacts.has(someoneElses)).toBe(false);
    expect(Object.keys(s.app.byEmail()).sort()).toEqual(['ann@x.io', 'bob@x.io', 'cyd@x.io']);

    await duck(s.db, 'DELETE FROM contacts');
    await runExpect(s.dir, 1);
    await runExpect(s.dir, 0, { allowEmptySource: true });
    expect(s.app.contacts.size).toBe(0);
  });
});
