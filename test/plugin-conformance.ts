/**
 * The plugin conformance suite (DESIGN "Tests"): the same end-to-end scenarios, through the
 * engine's `ebb run` operation (in this process: each run loads the project and opens the engine
 * afresh, as the command does), for every destination plugin; the real command runs where its
 * exit code and `--json` output are checked. A plugin's test file builds a {@link PluginHarness} (its
 * connection and destination, pointed at a local stand-in for the app, and ways to look into that
 * app and break it) and calls {@link describePlugin}.
 *
 * Each scenario gets a fresh harness and a fresh DuckDB project whose source table `people` has
 * the columns id (int, the sync's key), email (text, unique), first_name, last_name and score
 * (double). The records a destination must hold are computed by evaluating the harness's mapping
 * in DuckDB over the expected source rows, so a harness may map fields however its app needs.
 *
 * What a harness cannot do, it leaves out, and the scenarios that need it are skipped with the
 * reason: a strategy missing from `strategies`, a fault missing from `faults` (a file has no rate
 * limit). The scenarios themselves are the same for every plugin.
 */
import { describe, expect, it, type TestContext } from 'vitest';
import { join } from 'node:path';
import { duck, ebb, makeProject, runHere } from './support/project.ts';

/** How the suite drives one destination. */
export interface PluginHarness {
  /** The ebb.yml connection block: { plugin, config } (base_url pointing at the local contract server, etc.). */
  connection: { plugin: string; config: Record<string, unknown>; rate_limit?: { requests: number; per_seconds: number } };
  /** The sync's destination block, minus `connection` (object + plugin options). */
  destination: Record<string, unknown>;
  /** How the standard source columns map to the destination: the source table `people` has columns id (int), email (text, unique), first_name, last_name, score (double). */
  mapping: Record<string, string | { sql: string } | { value: unknown }>;
  /** The strategies this plugin supports (the suite runs a 3-run scenario for each). */
  strategies: Array<'create' | 'update' | 'upsert' | 'mirror' | 'replace' | 'send'>;
  /** The destination's current records, each as the mapped fields (e.g. { email, first_name, ... }), in any order. */
  read(): Promise<Array<Record<string, unknown>>>;
  /** Puts a record straight into the app (as if someone created it there): for the conflict → update business retry. */
  seed(record: Record<string, unknown>): Promise<void>;
  /**
   * Fault injection in the contract server. A method may return a promise (a database changes its
   * constraints), and a destination that has no such fault leaves the method out: the scenario
   * that needs it is then skipped, with the reason.
   */
  faults: {
    /** The next request answers 429 with the app's real rate-limit answer (headers/body) asking to wait ~1 s. */
    rateLimitOnce?(): void | Promise<void>;
    /** Records with this email are refused by the app with its real per-record error (a partial batch failure). */
    rejectEmail?(email: string): void | Promise<void>;
    /** Stop refusing. */
    clear(): void | Promise<void>;
  };
  close(): Promise<void>;
}

type Strategy = PluginHarness['strategies'][number];

/** A version of a person of the source: `2b` is person 2, version b. */
function person(token: string): [number, string, string, string, number] {
  const n = Number(token.slice(0, -1));
  const version = token.slice(-1);
  const email = `person${n}@example.com`;
  const first = ['Ann', 'Bob', 'Cyd', 'Dan', 'Eve'][n - 1];
  if (version === 'a') return [n, email, first, `Last${n}`, n + 0.25];
  if (version === 'b') return [n, email, first, `Changed${n}`, n + 10.5];
  // `o`: what someone else put into the app before ebb came, under the same email.
  if (version === 'o') return [n, email, 'Old', 'Seeded', 0];
  throw new Error(`unknown version in ${token}`);
}

const words = (text: string) => text.split(/\s+/).filter(Boolean);
const PEOPLE_COLUMNS = 'id INTEGER, email VARCHAR, first_name VARCHAR, last_name VARCHAR, score DOUBLE';

function rowsSql(tokens: string): string {
  return words(tokens)
    .map((t) => `(${person(t).map((v) => (typeof v === 'string' ? `'${v}'` : String(v))).join(', ')})`)
    .join(', ');
}

/** The source of a run. */
const sources = ['1a 2a 3a', '1a 2b 4a', '2b 3a 4b 5a'];

interface Scenario {
  strategy: Strategy;
  title: string;
  on_remove?: 'none' | 'delete' | 'clear';
  /** Put into the app before the first run. */
  seed?: string;
  /** After each run: what the destination holds, and the exit code (default 0). */
  runs: Array<{ holds: string; exit?: number }>;
}

const scenarios: Scenario[] = [
  {
    strategy: 'create',
    title: 'create: new records only; changes and removals are not sent',
    runs: [{ holds: '1a 2a 3a' }, { holds: '1a 2a 3a 4a' }, { holds: '1a 2a 3a 4a 5a' }],
  },
  {
    strategy: 'update',
    title: 'update: records the app holds are updated; one it does not hold fails (exit 2)',
    seed: '1o 2o 3o 4o',
    runs: [{ holds: '1a 2a 3a 4o' }, { holds: '1a 2b 3a 4a' }, { holds: '1a 2b 3a 4b', exit: 2 }],
  },
  {
    strategy: 'upsert',
    title: 'upsert (on_remove none): new records created, changed ones updated, removed ones kept; a returning one is matched',
    on_remove: 'none',
    runs: [{ holds: '1a 2a 3a' }, { holds: '1a 2b 3a 4a' }, { holds: '1a 2b 3a 4b 5a' }],
  },
  {
    strategy: 'mirror',
    title: 'mirror: the destination follows the source, removals included',
    runs: [{ holds: '1a 2a 3a' }, { holds: '1a 2b 4a' }, { holds: '2b 3a 4b 5a' }],
  },
  {
    strategy: 'replace',
    title: 'replace: every run leaves exactly the full set',
    runs: [{ holds: '1a 2a 3a' }, { holds: '1a 2b 4a' }, { holds: '2b 3a 4b 5a' }],
  },
  {
    strategy: 'send',
    title: 'send: each record once, when it first appears',
    runs: [{ holds: '1a 2a 3a' }, { holds: '1a 2a 3a 4a' }, { holds: '1a 2a 3a 4a 5a' }],
  },
];

/** The JSON of one sync's run, as `ebb run --json` prints it. */
interface RunJson {
  run_id: string;
  health: string;
  counts: Record<string, number>;
  duration_ms: number;
  error: string | null;
}

/** A DuckDB project with one sync `s` of `people` to the harness's destination. */
class Project {
  private constructor(
    readonly dir: string,
    private readonly harness: PluginHarness,
  ) {}

  get db(): string {
    return join(this.dir, 'warehouse.duckdb');
  }

  static async create(harness: PluginHarness, strategy: Strategy, extra: Record<string, unknown> = {}): Promise<Project> {
    const dir = await makeProject({
      version: 1,
      name: `conformance_${harness.connection.plugin}`.replace(/\W/g, '_'),
      warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
      connections: { app: { ...harness.connection, retry: { delays_seconds: [0.05, 0.1, 1.5] } } },
      syncs: [{ name: 's', source: { table: 'people', key: 'id' }, destination: { connection: 'app', ...harness.destination }, strategy, mapping: harness.mapping, ...extra }],
    });
    return new Project(dir, harness);
  }

  /** Replaces the source with these versions of people. */
  async load(tokens: string): Promise<void> {
    const rows = rowsSql(tokens);
    await duck(this.db, `CREATE OR REPLACE TABLE people (${PEOPLE_COLUMNS});\n${rows ? `INSERT INTO people VALUES ${rows}` : 'SELECT 1'}`);
  }

  /** These versions of people as the destination must hold them: the mapping, evaluated in DuckDB. */
  async mapped(tokens: string): Promise<Array<Record<string, unknown>>> {
    if (!words(tokens).length) return [];
    const select = Object.entries(this.harness.mapping)
      .map(([field, source]) => `${expression(source)} AS ${quoteIdent(field)}`)
      .join(', ');
    return duck(
      this.db,
      `CREATE OR REPLACE TEMP TABLE __expected (${PEOPLE_COLUMNS});\nINSERT INTO __expected VALUES ${rowsSql(tokens)};\nSELECT ${select} FROM __expected AS people`,
    );
  }

  /** A run of `s` as `ebb run s --json` makes it, in this process, expecting an exit code. */
  async run(exit: number): Promise<RunJson> {
    const result = await runHere(this.dir, ['s']);
    expect(result.code, `the run's exit code is ${result.code}\n${result.warnings.join('\n')}\n${result.json}`).toBe(exit);
    return (JSON.parse(result.json) as { runs: RunJson[] }).runs[0];
  }

  /** The real `ebb run s --json`, expecting an exit code. */
  async runCommand(exit: number): Promise<RunJson> {
    const result = await ebb(this.dir, ['run', 's', '--json']);
    expect(result.code, `ebb run exited ${result.code}\n${result.stderr}${result.stdout}`).toBe(exit);
    return (JSON.parse(result.stdout) as { runs: RunJson[] }).runs[0];
  }

  /** A run's history rows: `key action reason state`. */
  async history(runId: string): Promise<string[]> {
    const rows = await duck(this.db, `SELECT record_key, action, apply_reason, apply_state FROM ebb.sync_record_history WHERE run_id = '${runId}'`);
    return rows.map((r) => `${r.record_key} ${r.action} ${r.apply_reason} ${r.apply_state}`).sort();
  }

  /** The state of each record: `key:STATE:has-identifier`. */
  async state(): Promise<Array<{ key: string; state: string; appId: unknown }>> {
    const rows = await duck(this.db, `SELECT record_key, apply_state, app_identifier FROM ebb.sync_record_state WHERE sync_name = 's'`);
    return rows.map((r) => ({ key: String(r.record_key), state: String(r.apply_state), appId: r.app_identifier }));
  }

  /** Checks that the destination holds exactly these versions of people. */
  async expectHolds(tokens: string, step: string): Promise<void> {
    const fields = Object.keys(this.harness.mapping);
    const want = comparable(await this.mapped(tokens), fields);
    const got = comparable(await this.harness.read(), fields);
    expect(got, `${step}: the destination should hold ${tokens || 'nothing'}`).toEqual(want);
  }
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function expression(source: PluginHarness['mapping'][string]): string {
  if (typeof source === 'string') return quoteIdent(source);
  if ('sql' in source) return `(${source.sql})`;
  const value = source.value;
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'string') return `'${value.replace(/'/g, "''")}'`;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return `'${JSON.stringify(value).replace(/'/g, "''")}'::JSON`;
}

/**
 * Records as sorted JSON lines of their mapped fields, with values compared as text (a CSV or a
 * numeric column may give back `1.25` as text), objects as JSON, and a missing field as null.
 */
function comparable(records: Array<Record<string, unknown>>, fields: string[]): string[] {
  const text = (v: unknown) => (v === null || v === undefined ? null : typeof v === 'object' ? JSON.stringify(v) : String(v));
  return records.map((r) => JSON.stringify(fields.map((f) => text(r[f])))).sort();
}

/** Makes a harness, runs the body, and always closes the harness (a skip too). */
async function withHarness(makeHarness: () => Promise<PluginHarness>, body: (harness: PluginHarness) => Promise<void>): Promise<void> {
  const harness = await makeHarness();
  try {
    await body(harness);
  } finally {
    await harness.close();
  }
}

/** The first strategy the harness supports among these, or a skip that says why. */
function pick(ctx: TestContext, harness: PluginHarness, wanted: Strategy[], what: string): Strategy {
  const strategy = wanted.find((s) => harness.strategies.includes(s));
  if (!strategy) ctx.skip(`${what} needs one of the strategies ${wanted.join(', ')}, and this harness supports ${harness.strategies.join(', ')}`);
  return strategy!;
}

/** The shared scenarios for one plugin. */
export function describePlugin(title: string, makeHarness: () => Promise<PluginHarness>): void {
  describe(`plugin conformance: ${title}`, { timeout: 180_000 }, () => {
    it.for(scenarios)('$title', async (scenario, ctx) => {
      await withHarness(makeHarness, async (harness) => {
        if (!harness.strategies.includes(scenario.strategy)) ctx.skip(`the harness does not support ${scenario.strategy} (it supports ${harness.strategies.join(', ')})`);
        const project = await Project.create(harness, scenario.strategy, scenario.on_remove ? { on_remove: scenario.on_remove } : {});
        if (scenario.seed) for (const record of await project.mapped(scenario.seed)) await harness.seed(record);
        for (const [i, expected] of scenario.runs.entries()) {
          const step = `run ${i + 1}`;
          await project.load(sources[i]);
          const run = await project.run(expected.exit ?? 0);
          expect(run.health, step).toBe((expected.exit ?? 0) === 0 ? 'HEALTHY' : 'INCOMPLETE');
          await project.expectHolds(expected.holds, step);
          for (const record of await project.state()) {
            // A record that landed has its identifier in the app (a send may have none to give).
            if (record.state === 'SUCCESS' && scenario.strategy !== 'send') expect(record.appId, `${step}: identifier of record ${record.key}`).not.toBeNull();
          }
        }
      });
    });

    it('business retry: a create of a record the app already holds (same email) becomes an update, without a duplicate', async (ctx) => {
      await withHarness(makeHarness, async (harness) => {
        const strategy = pick(ctx, harness, ['upsert', 'mirror'], 'the conflict → update retry');
        const project = await Project.create(harness, strategy);
        const [seeded] = await project.mapped('1o');
        await harness.seed(seeded);
        await project.load('1a 2a 3a');
        const run = await project.run(0);
        expect(run.health).toBe('HEALTHY');
        await project.expectHolds('1a 2a 3a', 'after the run');
        expect(await harness.read()).toHaveLength(3);
        expect((await project.history(run.run_id)).filter((h) => h.startsWith('1 '))).toEqual(['1 update NEW SUCCESS']);
      });
    });

    it('partial failure: one refused record fails alone (exit 2, INCOMPLETE), and succeeds in the next run (PREVIOUSLY_FAILED)', async (ctx) => {
      await withHarness(makeHarness, async (harness) => {
        const { rejectEmail } = harness.faults;
        if (!rejectEmail) ctx.skip('the harness has no per-record refusal (faults.rejectEmail)');
        const strategy = pick(ctx, harness, ['upsert', 'mirror', 'create', 'send'], 'a partial failure');
        const project = await Project.create(harness, strategy);
        await project.load('1a 2a 3a');
        await rejectEmail!.call(harness.faults, String(person('2a')[1]));
        // The real command: a partial failure exits 2, with the run in its --json output.
        const failed = await project.runCommand(2);
        expect(failed.health).toBe('INCOMPLETE');
        expect(failed.counts.failed).toBe(1);
        expect(await project.history(failed.run_id)).toContainEqual(expect.stringMatching(/^2 \w+ NEW FAILED$/));
        await project.expectHolds('1a 3a', 'after the refusal');

        await harness.faults.clear();
        const healed = await project.run(0);
        expect(healed.health).toBe('HEALTHY');
        expect(await project.history(healed.run_id)).toEqual([expect.stringMatching(/^2 \w+ PREVIOUSLY_FAILED SUCCESS$/)]);
        await project.expectHolds('1a 2a 3a', 'after the retry');
      });
    });

    it('rate limit: a 429 asking to wait ~1 s is honoured, and the run still ends HEALTHY', async (ctx) => {
      await withHarness(makeHarness, async (harness) => {
        const { rateLimitOnce } = harness.faults;
        if (!rateLimitOnce) ctx.skip('the destination has no rate limit to answer with (faults.rateLimitOnce)');
        const strategy = pick(ctx, harness, ['upsert', 'mirror', 'create', 'send', 'replace'], 'a rate-limited run');
        const project = await Project.create(harness, strategy);
        await project.load('1a 2a 3a');
        await rateLimitOnce!.call(harness.faults);
        const run = await project.run(0);
        expect(run.health).toBe('HEALTHY');
        expect(run.counts.failed ?? 0).toBe(0);
        // The retry delays are 0.05 s, 0.1 s and 1.5 s: only the app's own wait makes the run last ~1 s.
        expect(run.duration_ms).toBeGreaterThanOrEqual(900);
        await project.expectHolds('1a 2a 3a', 'after the run');
      });
    });

    it('`ebb check` reaches the destination', async () => {
      await withHarness(makeHarness, async (harness) => {
        const project = await Project.create(harness, harness.strategies[0]);
        const result = await ebb(project.dir, ['check', 'app']);
        expect(result.code, result.stdout + result.stderr).toBe(0);
        expect(result.stdout).toMatch(/ok\s+app/);
      });
    });
  });
}
