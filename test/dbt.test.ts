/**
 * dbt: `source.dbt_model` resolved through a real-shaped manifest.json, `ebb run --dbt-models`,
 * and the commands of docs/airflow/ebb_dag.py and docs/dbt/run_after_dbt.sh, run as written
 * against a demo project made by `ebb init`, so that the docs cannot drift from the CLI.
 */
import { describe, it, expect } from 'vitest';
import { chmod, copyFile, cp, mkdir, mkdtemp, readFile, writeFile, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { parse, stringify } from 'yaml';
import { ebb, repoRoot, type CliResult } from './support/project.ts';
import { dbtModelMatches, findModel, parseDbtRef, readManifest, relationOf, type DbtModel } from '../engine/config/dbt.ts';
import { loadProject } from '../engine/config/load.ts';

const fixtures = join(repoRoot, 'test', 'fixtures', 'dbt');
const manifestFixture = join(fixtures, 'manifest.json');

/** Runs a command line in bash, as a BashOperator or a CI step would. */
function bash(command: string, env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', command], { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

type Sync = { name: string; source: Record<string, unknown>; [k: string]: unknown };

let scaffolded: Promise<string> | undefined;
/** A project made by `ebb init`, once for the file; each demo starts from a copy of it. */
function initialized(): Promise<string> {
  scaffolded ??= (async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'ebb-dbt-init-')), 'ebb');
    const init = await bash(`"${process.execPath}" "${join(repoRoot, 'bin', 'ebb.js')}" init "${dir}"`, {});
    expect(init.code, init.stderr).toBe(0);
    return dir;
  })();
  return scaffolded;
}

/**
 * A demo project: `ebb init` into `<root>/ebb`, a dbt project's target/manifest.json in
 * `<root>/dbt`, and the scaffolded syncs reading dbt models instead of tables.
 */
async function demo(edit: (config: { syncs: Sync[]; dbt?: unknown }) => void = () => undefined) {
  const root = await mkdtemp(join(tmpdir(), 'ebb-dbt-'));
  const dir = join(root, 'ebb');
  const dbtDir = join(root, 'dbt');
  await cp(await initialized(), dir, { recursive: true });
  await mkdir(join(dbtDir, 'target'), { recursive: true });
  await copyFile(manifestFixture, join(dbtDir, 'target', 'manifest.json'));
  const config = parse(await readFile(join(dir, 'ebb.yml'), 'utf8')) as { syncs: Sync[]; dbt?: unknown };
  const byName = (name: string) => config.syncs.find((s) => s.name === name)!;
  byName('customers_to_file').source = { dbt_model: 'customers', key: 'customer_id' };
  byName('orders_to_csv').source = { dbt_model: 'orders', key: ['customer_id', 'order_id'] };
  config.syncs.push({
    name: 'leads_to_file',
    tags: ['files'],
    source: { dbt_model: 'jaffle_shop.customers', key: 'customer_id', filter: "lifecycle_stage = 'lead'" },
    destination: { connection: 'files', object: 'leads.jsonl' },
    strategy: 'mirror',
    mapping: { email: 'email' },
  });
  config.dbt = { manifest: '../dbt/target/manifest.json' };
  edit(config);
  await writeFile(join(dir, 'ebb.yml'), stringify(config));
  return { root, dir, dbtDir };
}

const exists = (path: string) => access(path).then(() => true, () => false);

describe('the manifest', () => {
  it('reads a dbt manifest.json and resolves models as ref() does', async () => {
    const manifest = await readManifest(manifestFixture);
    expect(manifest.dbtVersion).toBe('1.9.4');
    expect(manifest.projectName).toBe('jaffle_shop');
    expect(manifest.models.map((m) => m.uniqueId).sort()).toEqual([
      'model.ad_reporting.campaigns',
      'model.jaffle_shop.campaigns',
      'model.jaffle_shop.customers',
      'model.jaffle_shop.orders.v1',
      'model.jaffle_shop.orders.v2',
      'model.jaffle_shop.stg_customers',
    ]);
    const model = (ref: string) => {
      const found = findModel(manifest, ref);
      if (typeof found === 'string') throw new Error(found);
      return found;
    };
    expect(relationOf(model('customers'), 'duckdb')).toBe('analytics.customers');
    expect(relationOf(model('customers'), 'snowflake')).toBe('dev.analytics.customers');
    expect(relationOf(model('jaffle_shop.customers'), 'duckdb')).toBe('analytics.customers');
    // Versioned: the latest version unless one is named; unique_ids work too.
    expect(model('orders').uniqueId).toBe('model.jaffle_shop.orders.v2');
    expect(relationOf(model('orders'), 'duckdb')).toBe('analytics.orders');
    expect(relationOf(model('orders.v1'), 'duckdb')).toBe('analytics.orders_v1');
    expect(model('model.jaffle_shop.orders.v1').uniqueId).toBe('model.jaffle_shop.orders.v1');
    expect(relationOf(model('ad_reporting.campaigns'), 'duckdb')).toBe('ad_reporting.campaigns');
    expect(findModel(manifest, 'campaigns')).toMatch(/ambiguous: packages (jaffle_shop and ad_reporting|ad_reporting and jaffle_shop) both define it; write "/);
    expect(findModel(manifest, 'custmers')).toMatch(/unknown dbt model "custmers" in .*manifest\.json; did you mean "customers"\?/);
    expect(findModel(manifest, 'stg_customers')).toMatch(/ephemeral/);
    expect(findModel(manifest, 'raw_orders')).toMatch(/is a dbt seed, not a model/);
    expect(findModel(manifest, 'orders.v3')).toMatch(/has no version 3; its versions are v1, v2/);
    expect(findModel(manifest, 'other.customers')).toMatch(/package other has no model "customers"; did you mean "jaffle_shop.customers"\?/);
  });

  it('quotes only the relation parts that need it', () => {
    const m: DbtModel = { uniqueId: 'model.p.x', package: 'p', name: 'x', version: null, latestVersion: null, database: 'dev', schema: 'Sales Mart', alias: 'x', materialized: 'table' };
    expect(relationOf(m, 'duckdb')).toBe('"Sales Mart".x');
  });

  it('matches --dbt-models selectors by name, package, version or unique_id', () => {
    expect(parseDbtRef('model.jaffle_shop.orders.v2')).toEqual({ package: 'jaffle_shop', name: 'orders', version: '2' });
    expect(parseDbtRef('a.b.c')).toBeNull();
    expect(dbtModelMatches('customers', 'customers')).toBe(true);
    expect(dbtModelMatches('customers', 'model.jaffle_shop.customers')).toBe(true);
    expect(dbtModelMatches('jaffle_shop.customers', 'customers')).toBe(true);
    expect(dbtModelMatches('jaffle_shop.customers', 'other.customers')).toBe(false);
    expect(dbtModelMatches('orders', 'model.jaffle_shop.orders.v1')).toBe(true);
    expect(dbtModelMatches('orders.v2', 'orders.v1')).toBe(false);
    expect(dbtModelMatches('customers', 'orders')).toBe(false);
  });
});

describe('source.dbt_model', () => {
  it('resolves to the model relation at load time and keeps dbt_model; ebb validate accepts it', async () => {
    const { dir } = await demo();
    const project = await loadProject(dir);
    const sources = Object.fromEntries(project.config.syncs.map((s) => [s.name, s.source]));
    expect(sources.customers_to_file).toMatchObject({ dbt_model: 'customers', table: 'analytics.customers' });
    expect(sources.leads_to_file).toMatchObject({ dbt_model: 'jaffle_shop.customers', table: 'analytics.customers' });
    expect(sources.orders_to_csv).toMatchObject({ dbt_model: 'orders', table: 'analytics.orders' });
    const validate = await ebb(dir, ['validate']);
    expect(validate.code, validate.stderr).toBe(0);
    expect(validate.stdout).toContain('ebb.yml is valid: 4 syncs');
    const plan = await ebb(dir, ['plan', 'leads_to_file', '--json']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(JSON.parse(plan.stdout)).toMatchObject({ sync: 'leads_to_file', actions: { create: 50 } });
  });

  it('ebb run --dbt-models runs exactly the syncs that read those models, with the --json contract', async () => {
    const { dir } = await demo();
    const first = await ebb(dir, ['run', '--dbt-models', 'customers', '--trigger', 'dbt', '--json']);
    expect(first.code, first.stderr).toBe(0);
    const out = JSON.parse(first.stdout) as { exit_code: number; runs: Array<Record<string, unknown>>; skipped: unknown[] };
    expect(out.exit_code).toBe(0);
    expect(out.skipped).toEqual([]);
    expect(out.runs.map((r) => r.sync).sort()).toEqual(['customers_to_file', 'leads_to_file']);
    for (const run of out.runs) {
      expect(Object.keys(run)).toEqual(expect.arrayContaining(['run_id', 'sync', 'status', 'health', 'planned', 'counts', 'duration_ms', 'error']));
      expect(run).toMatchObject({ status: 'HEALTHY', health: 'HEALTHY', error: null });
      expect(run.run_id).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{6}$/);
      expect(typeof run.duration_ms).toBe('number');
    }
    expect(out.runs.find((r) => r.sync === 'leads_to_file')!.counts).toMatchObject({ succeeded: 50, failed: 0 });
    expect(await exists(join(dir, 'out', 'customers.jsonl'))).toBe(true);
    expect(await exists(join(dir, 'out', 'orders.csv'))).toBe(false);

    // Comma separated and repeated, by name or unique_id; names without syncs are fine.
    const second = await ebb(dir, ['run', '--dbt-models', 'stg_customers,orders', '--dbt-models', 'model.jaffle_shop.customers', '--json']);
    expect(second.code, second.stderr).toBe(0);
    expect((JSON.parse(second.stdout) as typeof out).runs.map((r) => r.sync).sort()).toEqual(['customers_to_file', 'leads_to_file', 'orders_to_csv']);
  });

  it('exits 0 with a note when no sync reads the models, and refuses --dbt-models with sync names', async () => {
    const { dir } = await demo();
    const none = await ebb(dir, ['run', '--dbt-models', 'campaigns', '--json']);
    expect(none.code, none.stderr).toBe(0);
    expect(JSON.parse(none.stdout)).toEqual({ exit_code: 0, runs: [], skipped: [] });
    expect(none.stderr).toContain('note: no deployed sync reads the dbt models campaigns; nothing to run');
    const empty = await ebb(dir, ['run', '--dbt-models', '', '--json']);
    expect(empty.code, empty.stderr).toBe(0);
    // A paused sync is skipped and listed, not a failure: a model's other syncs still run.
    expect((await ebb(dir, ['pause', 'leads_to_file'])).code).toBe(0);
    const paused = await ebb(dir, ['run', '--dbt-models', 'customers', '--json']);
    expect(paused.code, paused.stderr).toBe(0);
    const result = JSON.parse(paused.stdout) as { runs: Array<{ sync: string }>; skipped: Array<{ sync: string; reason: string }> };
    expect(result.runs.map((r) => r.sync)).toEqual(['customers_to_file']);
    expect(result.skipped).toEqual([{ sync: 'leads_to_file', reason: expect.stringContaining('is paused'), reason_code: 'paused' }]);
    const both = await ebb(dir, ['run', 'customers_to_file', '--dbt-models', 'customers']);
    expect(both.code).toBe(3);
    expect(both.stderr).toContain('--dbt-models chooses the syncs itself');
  });

  it('an unknown or ambiguous model is invalid config: exit 3, with its path and a suggestion', async () => {
    const { dir } = await demo((c) => {
      c.syncs[0].source = { dbt_model: 'custmers', key: 'customer_id' };
      c.syncs[2].source = { dbt_model: 'campaigns', key: 'customer_id' };
    });
    for (const command of [['validate'], ['run', '--dbt-models', 'customers', '--json']]) {
      const result = await ebb(dir, command);
      expect(result.code).toBe(3);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain('syncs[0].source.dbt_model: unknown dbt model "custmers" in ');
      expect(result.stderr).toContain('did you mean "customers"?');
      expect(result.stderr).toMatch(/syncs\[2\]\.source\.dbt_model: dbt model "campaigns" is ambiguous: .* write "(jaffle_shop|ad_reporting)\.campaigns" or "(jaffle_shop|ad_reporting)\.campaigns"/);
    }
  });

  it('a source with dbt_model and also table or query is invalid', async () => {
    const { dir } = await demo();
    const config = parse(await readFile(join(dir, 'ebb.yml'), 'utf8')) as { syncs: Sync[] };
    for (const other of [{ table: 'analytics.customers' }, { query: 'select * from analytics.customers' }]) {
      config.syncs[0].source = { dbt_model: 'customers', ...other, key: 'customer_id' };
      await writeFile(join(dir, 'ebb.yml'), stringify(config));
      const result = await ebb(dir, ['validate']);
      expect(result.code).toBe(3);
      expect(result.stderr).toContain('syncs[0].source: give exactly one of `table`, `query` or `dbt_model`');
    }
  });

  it('a missing manifest is exit 3 naming the path tried; --dbt-manifest points elsewhere', async () => {
    const { dir, root } = await demo((c) => {
      c.dbt = { manifest: 'nowhere/manifest.json' };
    });
    const missing = await ebb(dir, ['validate']);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain(`dbt.manifest: no dbt manifest at ${join(dir, 'nowhere', 'manifest.json')}; run \`dbt compile\` or \`dbt build\``);
    expect(missing.stderr).toContain('--dbt-manifest');
    const run = await ebb(dir, ['run', '--dbt-models', 'customers', '--json']);
    expect(run.code).toBe(3);
    expect(run.stdout).toBe('');
    // Without dbt.manifest, ebb looks for target/manifest.json next to ebb.yml.
    const { dir: plain } = await demo((c) => delete c.dbt);
    const byDefault = await ebb(plain, ['validate']);
    expect(byDefault.code).toBe(3);
    expect(byDefault.stderr).toContain(`no dbt manifest at ${join(plain, 'target', 'manifest.json')}`);
    for (const command of [['validate'], ['deploy'], ['plan', 'customers_to_file']]) {
      const result = await ebb(dir, [...command, '--dbt-manifest', join(root, 'dbt', 'target', 'manifest.json')]);
      expect(result.code, `${command.join(' ')}: ${result.stderr}`).toBe(0);
    }
  });
});

describe('the docs run as written', () => {
  /** `ebb` and a stand-in for `dbt` on PATH: `dbt build --project-dir D` writes D/target/{manifest,run_results}.json. */
  async function tools(root: string): Promise<string> {
    const bin = join(root, 'bin');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'ebb'), `#!/bin/sh\nexec "${process.execPath}" "${join(repoRoot, 'bin', 'ebb.js')}" "$@"\n`);
    await writeFile(
      join(bin, 'dbt'),
      [
        '#!/usr/bin/env bash',
        'set -eu',
        '[ "$1" = build ] || { echo "stand-in dbt: only build" >&2; exit 2; }',
        'dir=.',
        'while [ $# -gt 0 ]; do case "$1" in --project-dir) dir="$2"; shift 2;; *) shift;; esac; done',
        'mkdir -p "$dir/target"',
        `cp "${manifestFixture}" "$dir/target/manifest.json"`,
        `cp "${join(fixtures, 'run_results.json')}" "$dir/target/run_results.json"`,
        'echo "Completed successfully"',
      ].join('\n') + '\n',
    );
    await chmod(join(bin, 'ebb'), 0o755);
    await chmod(join(bin, 'dbt'), 0o755);
    return `${bin}:${process.env.PATH}`;
  }

  it('docs/airflow/ebb_dag.py: the BashOperator commands', async () => {
    const dag = await readFile(join(repoRoot, 'docs', 'airflow', 'ebb_dag.py'), 'utf8');
    const commands = Object.fromEntries([...dag.matchAll(/^([A-Z_]+) = '([^']+)' {2}# tested$/gm)].map((m) => [m[1], m[2]]));
    expect(Object.keys(commands)).toEqual(['DBT_BUILD', 'EBB_RUN']);
    expect(commands.EBB_RUN).toMatch(/^ebb run --dbt-models customers,orders --trigger airflow --json /);
    const syntax = await bash(`python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' "${join(repoRoot, 'docs', 'airflow', 'ebb_dag.py')}"`, {});
    expect(syntax.code, syntax.stderr).toBe(0);

    const { root, dir, dbtDir } = await demo();
    const env = { PATH: await tools(root), DBT_PROJECT_DIR: dbtDir, EBB_PROJECT_DIR: dir };
    const build = await bash(commands.DBT_BUILD, env);
    expect(build.code, build.stderr).toBe(0);
    const run = await bash(commands.EBB_RUN, env);
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as { exit_code: number; runs: Array<{ sync: string; health: string }> };
    expect(out.exit_code).toBe(0);
    expect(out.runs.map((r) => r.sync).sort()).toEqual(['customers_to_file', 'leads_to_file', 'orders_to_csv']);
    expect(out.runs.every((r) => r.health === 'HEALTHY')).toBe(true);
  });

  it('docs/dbt/run_after_dbt.sh: dbt build, then ebb run for the models it built', async () => {
    const { root, dir, dbtDir } = await demo();
    const env = { PATH: await tools(root), DBT_PROJECT_DIR: dbtDir, EBB_PROJECT_DIR: dir };
    const script = join(repoRoot, 'docs', 'dbt', 'run_after_dbt.sh');
    const run = await bash(`"${script}" --select customers orders`, env);
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout.slice(run.stdout.indexOf('{'))) as { exit_code: number; runs: Array<{ sync: string }> };
    expect(out.exit_code).toBe(0);
    expect(out.runs.map((r) => r.sync).sort()).toEqual(['customers_to_file', 'leads_to_file', 'orders_to_csv']);
    expect(run.stdout).toContain('Completed successfully');
  });
});
