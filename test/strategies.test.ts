/**
 * Every strategy of SPEC §3, end to end through the real CLI, over the same four runs of a source:
 *
 *   run 1: 1a 2b 3c          three new records
 *   run 2: 1a 2B 4d          1 unchanged, 2 changed, 3 removed, 4 new
 *   run 3: 2B 3c 4D 5e       1 removed, 2 unchanged, 3 back, 4 changed, 5 new
 *   run 4: 2B 3c 4D 5e       nothing changed
 *
 * A token such as `2B` is record 2 with the name "B". After each run the test checks the file
 * the `file` plugin wrote, the run's rows in sync_record_history and the sync's state.
 */
import { describe, expect, it } from 'vitest';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { duck, ebb, makeProject, runHere } from './support/project.ts';

const sources = ['1a 2b 3c', '1a 2B 4d', '2B 3c 4D 5e', '2B 3c 4D 5e'];

/** What one run must leave behind. */
interface Expected {
  /** The destination's records: `3c`, or `3~` for a record whose fields were cleared. */
  file: string;
  /** `key action reason`, plus the apply_state when it is not SUCCESS. */
  history: string;
  /** The keys in sync_record_state, `5:FAILED` when not SUCCESS. */
  state: string;
  exit?: number;
}

interface Scenario {
  title: string;
  strategy: string;
  on_remove?: string;
  format: 'jsonl' | 'csv';
  /** Key [region, id], where ids repeat across regions, instead of id alone. */
  composite?: boolean;
  /** Records another sync wrote to the same file before the first run (for `update`). */
  seed?: string;
  runs: Expected[];
}

const scenarios: Scenario[] = [
  {
    title: 'create: sends new records only; changes and removals are not sent',
    strategy: 'create',
    format: 'jsonl',
    runs: [
      { file: '1a 2b 3c', history: '1 create NEW, 2 create NEW, 3 create NEW', state: '1 2 3' },
      { file: '1a 2b 3c 4d', history: '4 create NEW', state: '1 2 3 4' },
      { file: '1a 2b 3c 4d 5e', history: '5 create NEW', state: '1 2 3 4 5' },
      { file: '1a 2b 3c 4d 5e', history: '', state: '1 2 3 4 5' },
    ],
  },
  {
    title: 'update: updates records the app holds; a record it does not hold fails, and is retried',
    strategy: 'update',
    format: 'jsonl',
    seed: '1o 2o 3o 4o',
    runs: [
      { file: '1a 2b 3c 4o', history: '1 update NEW, 2 update NEW, 3 update NEW', state: '1 2 3' },
      { file: '1a 2B 3c 4d', history: '2 update CHANGED, 4 update NEW', state: '1 2 3 4' },
      { file: '1a 2B 3c 4D', history: '4 update CHANGED, 5 update NEW FAILED', state: '1 2 3 4 5:FAILED', exit: 2 },
      { file: '1a 2B 3c 4D', history: '5 update PREVIOUSLY_FAILED FAILED', state: '1 2 3 4 5:FAILED', exit: 1 },
    ],
  },
  {
    title: 'upsert, on_remove none: a removed record stays in the app and is no longer tracked',
    strategy: 'upsert',
    on_remove: 'none',
    format: 'jsonl',
    runs: [
      { file: '1a 2b 3c', history: '1 create NEW, 2 create NEW, 3 create NEW', state: '1 2 3' },
      { file: '1a 2B 3c 4d', history: '2 update CHANGED, 3 untrack REMOVED, 4 create NEW', state: '1 2 4' },
      // 3 is new to ebb again, but the file still holds it: the create's conflict becomes an update.
      { file: '1a 2B 3c 4D 5e', history: '1 untrack REMOVED, 3 update NEW, 4 update CHANGED, 5 create NEW', state: '2 3 4 5' },
      { file: '1a 2B 3c 4D 5e', history: '', state: '2 3 4 5' },
    ],
  },
  {
    title: 'upsert, on_remove delete, composite key: a removed record is deleted, and created when it returns',
    strategy: 'upsert',
    on_remove: 'delete',
    format: 'jsonl',
    composite: true,
    runs: [
      { file: '1a 2b 3c', history: '1 create NEW, 2 create NEW, 3 create NEW', state: '1 2 3' },
      { file: '1a 2B 4d', history: '2 update CHANGED, 3 delete REMOVED, 4 create NEW', state: '1 2 4' },
      { file: '2B 3c 4D 5e', history: '1 delete REMOVED, 3 create NEW, 4 update CHANGED, 5 create NEW', state: '2 3 4 5' },
      { file: '2B 3c 4D 5e', history: '', state: '2 3 4 5' },
    ],
  },
  {
    title: 'upsert, on_remove clear: a removed record has its fields set to null, and is filled again when it returns',
    strategy: 'upsert',
    on_remove: 'clear',
    format: 'jsonl',
    runs: [
      { file: '1a 2b 3c', history: '1 create NEW, 2 create NEW, 3 create NEW', state: '1 2 3' },
      { file: '1a 2B 3~ 4d', history: '2 update CHANGED, 3 clear REMOVED, 4 create NEW', state: '1 2 3 4' },
      { file: '1~ 2B 3c 4D 5e', history: '1 clear REMOVED, 3 update CHANGED, 4 update CHANGED, 5 create NEW', state: '1 2 3 4 5' },
      { file: '1~ 2B 3c 4D 5e', history: '', state: '1 2 3 4 5' },
    ],
  },
  {
    title: 'mirror into CSV, composite key: the file follows the source exactly',
    strategy: 'mirror',
    format: 'csv',
    composite: true,
    runs: [
      { file: '1a 2b 3c', history: '1 create NEW, 2 create NEW, 3 create NEW', state: '1 2 3' },
      { file: '1a 2B 4d', history: '2 update CHANGED, 3 delete REMOVED, 4 create NEW', state: '1 2 4' },
      { file: '2B 3c 4D 5e', history: '1 delete REMOVED, 3 create NEW, 4 update CHANGED, 5 create NEW', state: '2 3 4 5' },
      { file: '2B 3c 4D 5e', history: '', state: '2 3 4 5' },
    ],
  },
  {
    title: 'replace: every run writes the full set again',
    strategy: 'replace',
    format: 'jsonl',
    runs: [
      { file: '1a 2b 3c', history: '1 recreate NEW, 2 recreate NEW, 3 recreate NEW', state: '1 2 3' },
      { file: '1a 2B 4d', history: '1 recreate FULL_RESYNC, 2 recreate CHANGED, 3 untrack REMOVED, 4 recreate NEW', state: '1 2 4' },
      {
        file: '2B 3c 4D 5e',
        history: '1 untrack REMOVED, 2 recreate FULL_RESYNC, 3 recreate NEW, 4 recreate CHANGED, 5 recreate NEW',
        state: '2 3 4 5',
      },
      { file: '2B 3c 4D 5e', history: '2 recreate FULL_RESYNC, 3 recreate FULL_RESYNC, 4 recreate FULL_RESYNC, 5 recreate FULL_RESYNC', state: '2 3 4 5' },
    ],
  },
  {
    title: 'send: each record is sent once, when it first appears',
    strategy: 'send',
    format: 'jsonl',
    runs: [
      { file: '1a 2b 3c', history: '1 send NEW, 2 send NEW, 3 send NEW', state: '1 2 3' },
      { file: '1a 2b 3c 4d', history: '4 send NEW', state: '1 2 3 4' },
      { file: '1a 2b 3c 4d 5e', history: '5 send NEW', state: '1 2 3 4 5' },
      { file: '1a 2b 3c 4d 5e', history: '', state: '1 2 3 4 5' },
    ],
  },
];

const words = (text: string) => text.split(/[\s,]+/).filter(Boolean);
const tokens = (text: string) => words(text).map((t) => ({ n: Number(t.slice(0, -1)), name: t.slice(-1) }));
const sorted = (items: string[]) => [...items].sort();

/** Record n of a scenario: its source columns, and its record_key as ebb writes it (SPEC §4). */
function recordOf(s: Pick<Scenario, 'composite'>, n: number, name: string | null) {
  if (!s.composite) return { row: { id: n, name }, key: String(n) };
  const region = n % 2 ? 'eu' : 'us';
  const id = Math.ceil(n / 2);
  return { row: { region, id, name }, key: JSON.stringify([region, id]) };
}

/** Replaces a source table with the records of a token list. */
async function load(db: string, table: string, s: Pick<Scenario, 'composite'>, records: string) {
  const values = tokens(records).map(({ n, name }) => {
    const { row } = recordOf(s, n, name);
    return `(${Object.values(row).map((v) => (typeof v === 'string' ? `'${v}'` : String(v))).join(', ')})`;
  });
  const columns = s.composite ? 'region VARCHAR, id INTEGER, name VARCHAR' : 'id INTEGER, name VARCHAR';
  await duck(db, `CREATE OR REPLACE TABLE ${table} (${columns});\n${values.length ? `INSERT INTO ${table} VALUES ${values.join(', ')}` : 'SELECT 1'}`);
}

/** The lines a file must hold: the header of a CSV, then its records in any order. */
function expectedLines(s: Scenario, file: string): { header?: string; records: string[] } {
  const fields = s.composite ? ['region', 'id', 'name'] : ['id', 'name'];
  const records = words(file).map((t) => {
    const n = Number(t.slice(0, -1));
    const row: Record<string, unknown> = t.endsWith('~') ? Object.fromEntries(fields.map((f) => [f, null])) : recordOf(s, n, t.slice(-1)).row;
    return s.format === 'csv' ? fields.map((f) => (row[f] === null ? '' : String(row[f]))).join(',') : JSON.stringify(row);
  });
  return s.format === 'csv' ? { header: fields.join(','), records: sorted(records) } : { records: sorted(records) };
}

async function readLines(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean);
}

function projectConfig(s: Scenario, object: string) {
  const mapping = s.composite ? { region: 'region', id: 'id', name: 'name' } : { id: 'id', name: 'name' };
  const sync = (name: string, table: string, strategy: string, extra: object = {}) => ({
    name,
    source: { table, key: s.composite ? ['region', 'id'] : 'id' },
    destination: { connection: 'files', object },
    strategy,
    mapping,
    ...extra,
  });
  return {
    version: 1,
    name: 'strategies',
    warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
    connections: { files: { plugin: 'file', config: { directory: 'out' } } },
    syncs: [sync('s', 'people', s.strategy, s.on_remove ? { on_remove: s.on_remove } : {}), ...(s.seed ? [sync('seed', 'seed_people', 'upsert')] : [])],
  };
}

/** Runs a sync as `ebb run SYNC --json` does, in this process, and returns its run id. */
async function run(dir: string, sync: string, exit = 0): Promise<string> {
  const result = await runHere(dir, [sync]);
  expect(result.code, `${result.warnings.join('\n')}\n${result.json}`).toBe(exit);
  const { runs } = JSON.parse(result.json) as { runs: Array<{ run_id: string }> };
  return runs[0].run_id;
}

describe('strategies, end to end through `ebb run` and the file plugin', () => {
  it.each(scenarios)('$title', async (s) => {
    const object = `people.${s.format}`;
    const dir = await makeProject(projectConfig(s, object));
    const db = join(dir, 'warehouse.duckdb');
    const keyOf = new Map([1, 2, 3, 4, 5].map((n) => [recordOf(s, n, null).key, n]));
    if (s.seed) {
      // `ebb run` deploys every sync of ebb.yml first, after checking each source: s's must exist.
      await load(db, 'people', s, '');
      await load(db, 'seed_people', s, s.seed);
      await run(dir, 'seed');
    }
    for (const [i, expected] of s.runs.entries()) {
      const step = `run ${i + 1}`;
      await load(db, 'people', s, sources[i]);
      const runId = await run(dir, 's', expected.exit ?? 0);

      const lines = await readLines(join(dir, 'out', object));
      const want = expectedLines(s, expected.file);
      if (want.header) expect(lines.shift(), step).toBe(want.header);
      expect(sorted(lines), step).toEqual(want.records);

      const history = await duck(db, `SELECT record_key, action, apply_reason, apply_state FROM ebb.sync_record_history WHERE run_id = '${runId}'`);
      const outcomes = history.map((h) => `${keyOf.get(String(h.record_key))} ${h.action} ${h.apply_reason}${h.apply_state === 'SUCCESS' ? '' : ` ${h.apply_state}`}`);
      expect(sorted(outcomes), step).toEqual(sorted(expected.history.split(',').map((o) => o.trim()).filter(Boolean)));

      const state = await duck(db, `SELECT record_key, apply_state, app_identifier, record_hash FROM ebb.sync_record_state WHERE sync_name = 's'`);
      expect(sorted(state.map((r) => `${keyOf.get(String(r.record_key))}${r.apply_state === 'SUCCESS' ? '' : `:${r.apply_state}`}`)), step).toEqual(
        sorted(words(expected.state)),
      );
      for (const r of state) {
        expect(r.record_hash, step).toMatch(/^[0-9a-f]{32}$/);
        // The file plugin identifies a record by its key; a record never applied has no identifier.
        expect(r.app_identifier, step).toBe(r.apply_state === 'SUCCESS' ? r.record_key : null);
      }
    }
  });

  it('`ebb plan --json` counts the changes of the next run and changes nothing', async () => {
    const s: Scenario = { title: 'plan', strategy: 'upsert', on_remove: 'delete', format: 'jsonl', runs: [] };
    const dir = await makeProject(projectConfig(s, 'people.jsonl'));
    const db = join(dir, 'warehouse.duckdb');
    const file = join(dir, 'out', 'people.jsonl');
    await load(db, 'people', s, sources[0]);
    await run(dir, 's');
    await load(db, 'people', s, sources[1]);

    const snapshot = async () => ({
      file: await readFile(file, 'utf8'),
      mtime: (await stat(file)).mtimeMs,
      tables: await duck(
        db,
        `SELECT (SELECT list(t ORDER BY record_key)::VARCHAR FROM ebb.sync_record_state t) AS state,
                (SELECT count(*) FROM ebb.sync_record_history) AS history,
                (SELECT list(r ORDER BY run_id)::VARCHAR FROM ebb.sync_runs r) AS runs,
                (SELECT count(*) FROM ebb.sync_changes) AS changes`,
      ),
    });
    const before = await snapshot();
    const plan = await ebb(dir, ['plan', 's', '--json']);
    expect(plan.code, plan.stderr).toBe(0);
    const summary = JSON.parse(plan.stdout) as { actions: Record<string, number>; reasons: Record<string, number>; total: number; samples: Array<{ record_key: string; action: string }> };
    expect(summary.actions).toEqual({ create: 1, update: 1, delete: 1 });
    expect(summary.reasons).toEqual({ NEW: 1, CHANGED: 1, REMOVED: 1 });
    expect(summary.total).toBe(3);
    expect(sorted(summary.samples.map((x) => `${x.record_key} ${x.action}`))).toEqual(['2 update', '3 delete', '4 create']);
    expect(await snapshot()).toEqual(before);

    // The run then does what the plan said.
    const runId = await run(dir, 's');
    const history = await duck(db, `SELECT record_key || ' ' || action AS change FROM ebb.sync_record_history WHERE run_id = '${runId}' ORDER BY 1`);
    expect(history.map((h) => h.change)).toEqual(['2 update', '3 delete', '4 create']);
  });
});
