/**
 * Two projects in one state schema: a deploy of one never pauses or deletes the other's syncs
 * (orphans are those of the same project), and a sync name that the other project holds is refused.
 */
import { describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { duck, ebb, makeProject } from './support/project.ts';

const sync = (name: string) => ({ name, source: { table: 'people', key: 'id' }, destination: { connection: 'out', object: `${name}.jsonl` }, strategy: 'upsert', mapping: { name: 'name' } });
const project = (name: string, path: string, syncs: object[]) => ({
  version: 1,
  name,
  warehouse: { type: 'duckdb', path, state_schema: 'ebb' },
  connections: { out: { plugin: 'file', config: { directory: './out' } } },
  syncs,
});

describe('projects that share a state schema', () => {
  it("deploys without pausing or deleting each other's syncs, and refuses a name the other holds", async () => {
    const a = await makeProject(project('alpha', 'warehouse.duckdb', [sync('a_one'), sync('a_two')]));
    const db = join(a, 'warehouse.duckdb');
    await duck(db, `CREATE TABLE people AS SELECT range AS id, 'person ' || range AS name FROM range(3)`);
    expect((await ebb(a, ['run', 'a_one'])).code).toBe(0);
    const b = await makeProject(project('beta', db, [sync('b_one')]));

    const deployB = await ebb(b, ['deploy', '--json']);
    expect(deployB.stderr).toBe('');
    expect(deployB.code).toBe(0);
    const statuses = async () => Object.fromEntries((await duck(db, 'SELECT sync_name, status, project_name FROM ebb.syncs ORDER BY sync_name')).map((r) => [r.sync_name, `${String(r.status)} ${String(r.project_name)}`]));
    expect(await statuses()).toEqual({ a_one: 'ACTIVE alpha', a_two: 'ACTIVE alpha', b_one: 'ACTIVE beta' });

    // alpha drops a_two: its own orphan goes; beta's sync stays.
    await writeFile(join(a, 'ebb.yml'), stringify(project('alpha', 'warehouse.duckdb', [sync('a_one')])));
    expect((await ebb(a, ['deploy'])).code).toBe(0);
    expect(await statuses()).toEqual({ a_one: 'ACTIVE alpha', b_one: 'ACTIVE beta' });

    await writeFile(join(b, 'ebb.yml'), stringify(project('beta', db, [sync('b_one'), sync('a_one')])));
    const taken = await ebb(b, ['deploy']);
    expect(taken.code).toBe(3);
    expect(taken.stderr).toContain('syncs[1].name: sync a_one belongs to project alpha in this state schema');
    expect(await statuses()).toEqual({ a_one: 'ACTIVE alpha', b_one: 'ACTIVE beta' });
  });
});
