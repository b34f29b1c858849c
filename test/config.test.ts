/**
 * Config errors, through the CLI (SPEC §1): every kind of problem gets a message with its path and
 * exit code 3, and nothing is written to the warehouse or sent. Then the checks that only
 * `ebb validate` makes against the warehouse, and secrets kept out of every output and table.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { readFile, readdir, access } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { duck, ebb, makeProject, runHere } from './support/project.ts';
import { CrmApp, crmRequests } from './support/crm-app.ts';

type Config = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- edited freely by the cases

/** A valid project: a sync of `people` into a file, and an http connection. */
function base(): Config {
  return {
    version: 1,
    name: 'config_errors',
    warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
    connections: {
      files: { plugin: 'file', config: { directory: 'out' } },
      crm: { plugin: 'http', config: { base_url: 'http://127.0.0.1:9', headers: { authorization: "Bearer {{ env_var('EBB_TEST_TOKEN', 'none') }}" } } },
    },
    syncs: [
      {
        name: 'scores',
        source: { table: 'people', key: 'id' },
        destination: { connection: 'files', object: 'people.jsonl' },
        strategy: 'upsert',
        mapping: { id: 'id', score: 'score' },
      },
    ],
  };
}

/** A project with the `people` table and no ebb tables yet. */
async function project(config: Config | string): Promise<{ dir: string; db: string }> {
  const dir = await makeProject(config);
  const db = join(dir, 'warehouse.duckdb');
  await duck(db, `CREATE TABLE people AS SELECT * FROM (VALUES (1, 'Ann', 9.5), (2, 'Bob', 7.25)) t(id, name, score)`);
  return { dir, db };
}

const edit = (change: (c: Config) => void) => {
  const c = base();
  change(c);
  return c;
};

const yamlError = stringify(base()).replace('strategy: upsert', 'strategy: upsert\n   mapping: [oops');

/** One kind of problem each: the config, and the `path: message` lines it must produce. */
const staticCases: Array<{ title: string; config: Config | string; lines: Array<string | RegExp> }> = [
  { title: 'YAML syntax error', config: yamlError, lines: [/^ {2}line \d+: /m] },
  { title: 'unknown top-level key', config: edit((c) => (c.colour = 'blue')), lines: ['colour: unknown key; check its spelling'] },
  { title: 'unknown key in a sync', config: edit((c) => (c.syncs[0].sorce = {})), lines: ['syncs[0].sorce: unknown key; check its spelling'] },
  { title: 'wrong type', config: edit((c) => (c.syncs[0].batch_size = 'ten')), lines: ['syncs[0].batch_size: Invalid input: expected number, received string'] },
  { title: 'missing required field', config: edit((c) => delete c.syncs[0].destination.object), lines: ['syncs[0].destination.object: Invalid input: expected string, received undefined'] },
  { title: 'both table and query', config: edit((c) => (c.syncs[0].source.query = 'select 1 as id')), lines: ['syncs[0].source: give exactly one of `table` or `query`'] },
  { title: 'bad strategy', config: edit((c) => (c.syncs[0].strategy = 'upsrt')), lines: ['syncs[0].strategy: Invalid option: expected one of "create"|"update"|"upsert"|"mirror"|"replace"|"send"'] },
  { title: 'bad on_remove', config: edit((c) => (c.syncs[0].on_remove = 'drop')), lines: [/^ {2}syncs\[0\]\.on_remove: Invalid option/m] },
  { title: 'unsupported mapping value', config: edit((c) => (c.syncs[0].mapping.score = { expr: 'score * 2' })), lines: [/^ {2}syncs\[0\]\.mapping\.score: /m] },
  { title: 'unknown connection', config: edit((c) => (c.syncs[0].destination.connection = 'file')), lines: ['syncs[0].destination.connection: unknown connection "file"; did you mean "files"?'] },
  { title: 'unknown plugin', config: edit((c) => (c.connections.files.plugin = 'fiel')), lines: [/^ {2}connections\.files\.plugin: unknown plugin "fiel"/m] },
  { title: 'duplicate sync name', config: edit((c) => c.syncs.push({ ...c.syncs[0] })), lines: ['syncs[1].name: duplicate sync name "scores"'] },
  {
    title: 'missing env var without default',
    config: edit((c) => (c.connections.crm.config.headers.authorization = "Bearer {{ env_var('EBB_TEST_UNSET_VARIABLE') }}")),
    lines: ['connections.crm.config.headers.authorization: environment variable EBB_TEST_UNSET_VARIABLE is not set'],
  },
  { title: 'file plugin config of the wrong type', config: edit((c) => (c.connections.files.config.directory = 5)), lines: [/^ {2}connections\.files\.config\.directory: .*expected string/m] },
  { title: 'http base_url not a URL', config: edit((c) => (c.connections.crm.config.base_url = 'crm.example.com')), lines: ['connections.crm.config.base_url: must be an http:// or https:// URL'] },
  { title: 'file plugin destination', config: edit((c) => (c.syncs[0].destination.object = 'people.txt')), lines: ['syncs[0].destination.object: must end in .jsonl or .csv'] },
  { title: 'on_remove with a strategy other than upsert', config: edit((c) => Object.assign(c.syncs[0], { strategy: 'mirror', on_remove: 'delete' })), lines: ['syncs[0].on_remove: applies to the upsert strategy only'] },
  { title: 'reserved __ebb_ field', config: edit((c) => (c.syncs[0].mapping.__ebb_score = 'score')), lines: ['syncs[0].mapping.__ebb_score: names starting with __ebb_ are reserved'] },
  { title: 'invalid cron expression', config: edit((c) => (c.syncs[0].schedule = { cron: 'every tuesday' })), lines: [/^ {2}syncs\[0\]\.schedule\.cron: not a valid cron expression \(.*\); write five fields/m] },
  { title: 'an interval of zero', config: edit((c) => (c.syncs[0].schedule = { every: '0s' })), lines: ['syncs[0].schedule.every: must be longer than 0'] },
  { title: 'unknown key under destination', config: edit((c) => (c.syncs[0].destination.objct = 'x')), lines: ['syncs[0].destination.objct: unknown key for plugin file; it knows object'] },
  {
    title: 'env_var() without quotes, and with a missing parenthesis',
    config: edit((c) => {
      c.connections.crm.config.headers.authorization = 'Bearer {{ env_var(EBB_TEST_TOKEN) }}';
      c.connections.crm.config.headers['x-api-key'] = "{{ env_var('EBB_TEST_TOKEN' }}";
    }),
    lines: [
      "connections.crm.config.headers.authorization: malformed env_var() call; write {{ env_var('NAME') }} or {{ env_var('NAME', 'default') }}, with the name in quotes",
      'connections.crm.config.headers.x-api-key: malformed env_var() call',
    ],
  },
];

const expectLines = (stderr: string, lines: Array<string | RegExp>) => {
  for (const line of lines) {
    if (typeof line === 'string') expect(stderr).toContain(`  ${line}`);
    else expect(stderr).toMatch(line);
  }
};

describe('config errors: a message with its path, exit code 3, nothing written', () => {
  // `ebb validate` through the CLI; `ebb run scores` in this process, as the command runs it (the
  // command itself reports a config error through the CLI below).
  it.each(staticCases)('$title', async ({ config, lines }) => {
    const { dir, db } = await project(config);
    const run = await runHere(dir, ['scores']);
    for (const [command, result] of [
      ['validate', await ebb(dir, ['validate'])],
      ['run scores', run],
    ] as const) {
      expect(result.code, `ebb ${command}: ${result.stderr}`).toBe(3);
      expect(result.stderr).toMatch(/^error: ebb\.yml is invalid \(\d+ problems?\):\n/);
      expectLines(result.stderr, lines);
    }
    expect(await duck(db, `SELECT schema_name FROM duckdb_schemas() WHERE schema_name = 'ebb'`)).toEqual([]);
    expect(await access(join(dir, 'out')).then(() => true, () => false)).toBe(false);
  });

  it('reports every problem of the same kind at once', async () => {
    const { dir } = await project(
      edit((c) => {
        c.syncs[0].strategy = 'upsrt';
        c.syncs[0].batch_size = 0;
        c.name = 7;
      }),
    );
    const result = await ebb(dir, ['validate']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('(3 problems)');
    expectLines(result.stderr, [/^ {2}name: /m, /^ {2}syncs\[0\]\.strategy: /m, /^ {2}syncs\[0\]\.batch_size: /m]);
  });
});

describe('`ebb validate` against the warehouse', () => {
  it('names unknown tables and columns, with a suggestion, and bad SQL, each at its path', async () => {
    const sync = (name: string, source: object, mapping: object = { id: 'id' }) => ({
      name,
      source,
      destination: { connection: 'files', object: `${name}.jsonl` },
      strategy: 'upsert',
      mapping,
    });
    const { dir } = await project(
      edit((c) => {
        c.syncs = [
          sync('no_table', { table: 'peple', key: 'id' }),
          sync('no_key', { table: 'people', key: 'idd' }),
          sync('no_key_part', { table: 'people', key: ['id', 'nmae'] }),
          sync('no_column', { table: 'people', key: 'id' }, { id: 'id', score: 'scroe' }),
          sync('bad_filter', { table: 'people', key: 'id', filter: 'scroe > 1' }),
          sync('bad_sql', { table: 'people', key: 'id' }, { id: 'id', rounded: { sql: 'round(score, ' }, upper: { sql: 'upper(nam)' } }),
          sync('fine', { query: 'select id, score from people', key: 'id' }, { id: 'id', double: { sql: 'score * 2' } }),
        ];
      }),
    );
    const result = await ebb(dir, ['validate']);
    expect(result.code, result.stderr).toBe(3);
    expect(result.stderr).toContain('(7 problems)');
    expectLines(result.stderr, [
      /^ {2}syncs\[0\]\.source\.table: .*peple/m,
      'syncs[1].source.key: unknown column "idd"; did you mean "id"?',
      'syncs[2].source.key[1]: unknown column "nmae"; did you mean "name"?',
      'syncs[3].mapping.score: unknown column "scroe"; did you mean "score"?',
      /^ {2}syncs\[4\]\.source\.filter: .*scroe/m,
      /^ {2}syncs\[5\]\.mapping\.rounded: .*syntax error/im,
      /^ {2}syncs\[5\]\.mapping\.upper: .*nam/m,
    ]);
    expect(result.stderr).not.toContain('syncs[6]');
  });

  it('`ebb run` makes the same checks before it sends anything (SPEC §1, §5: run deploys as `ebb deploy` does)', async () => {
    const { dir, db } = await project(edit((c) => (c.syncs[0].mapping.score = 'scroe')));
    const result = await ebb(dir, ['run', 'scores']);
    expect(result.code, result.stderr).toBe(3);
    expectLines(result.stderr, ['syncs[0].mapping.score: unknown column "scroe"; did you mean "score"?']);
    const runs = await duck(db, `SELECT count(*) AS n FROM duckdb_tables() t WHERE schema_name = 'ebb' AND table_name = 'sync_runs' AND estimated_size > 0`);
    expect(runs).toEqual([{ n: 0 }]);
    expect(await access(join(dir, 'out')).then(() => true, () => false)).toBe(false);
  });

  it('`ebb plan` reports config errors as `ebb validate` does (exit 3, same lines)', async () => {
    const { dir } = await project(edit((c) => (c.syncs[0].mapping.score = 'scroe')));
    const validate = await ebb(dir, ['validate']);
    const plan = await ebb(dir, ['plan', 'scores']);
    expect(plan.code, plan.stderr).toBe(3);
    expect(plan.stderr).toBe(validate.stderr);
    expectLines(plan.stderr, ['syncs[0].mapping.score: unknown column "scroe"; did you mean "score"?']);
    expect(plan.stdout).toBe('');
  });

  it('accepts a valid project and sends nothing', async () => {
    const { dir } = await project(base());
    const result = await ebb(dir, ['validate']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('ebb.yml is valid');
    expect(await access(join(dir, 'out')).then(() => true, () => false)).toBe(false);
  });
});

describe('secrets', () => {
  const secret = 'supersecret123';
  const apps: CrmApp[] = [];
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.stop()));
  });

  /**
   * A project whose CRM token comes from env_var, in a header and in a request path. The app is
   * careless: it rejects Bob and quotes the credentials it was sent in its error. Runs a few
   * commands and returns everything they printed.
   */
  async function runWithSecret() {
    const app = await CrmApp.start();
    apps.push(app);
    app.rules = [(r) => (r.body?.email === 'bob@x.io' ? { status: 401, body: { error: 'unauthorized', authorization: r.headers.authorization, url: r.path } } : undefined)];
    const config = base();
    config.connections.crm = {
      plugin: 'http',
      config: { base_url: app.url, headers: { authorization: "Bearer {{ env_var('CRM_TOKEN') }}" } },
      retry: { delays_seconds: [] },
    };
    config.connections.down = { plugin: 'http', config: { base_url: "http://127.0.0.1:9/?key={{ env_var('CRM_TOKEN') }}" } };
    const create = { ...crmRequests.create, path: "/contacts?key={{ env_var('CRM_TOKEN') }}" };
    config.syncs = [
      {
        name: 'contacts',
        source: { query: `select id, name, lower(name) || '@x.io' as email from people`, key: 'id' },
        destination: { connection: 'crm', object: 'contacts', requests: { ...crmRequests, create } },
        strategy: 'upsert',
        mapping: { email: 'email', name: 'name' },
      },
    ];
    const { dir, db } = await project(config);
    const outputs: string[] = [];
    const cli = async (...args: string[]) => {
      const result = await ebb(dir, args, { CRM_TOKEN: secret });
      outputs.push(result.stdout, result.stderr);
      return result;
    };

    expect((await cli('validate')).code).toBe(0);
    const first = await cli('run', 'contacts');
    expect(first.code, first.stderr + first.stdout).toBe(2);
    expect(app.requests.map((r) => [r.headers.authorization, r.path])).toEqual([
      [`Bearer ${secret}`, `/contacts?key=${secret}`],
      [`Bearer ${secret}`, `/contacts?key=${secret}`],
    ]);
    const check = await cli('check');
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/FAIL down: cannot reach/);
    for (const args of [['run', 'contacts', '--json'], ['history', 'contacts', '--json'], ['history', 'contacts', '--failed'], ['runs', 'contacts', '--json'], ['status', '--json'], ['plan', 'contacts', '--json']]) {
      await cli(...args);
    }
    return { dir, db, outputs };
  }

  it('a secret from env_var never appears in CLI output, history, runs or state, even when the app echoes it back', async () => {
    const { db, outputs } = await runWithSecret();
    // The app's answer is in history, with the secret masked.
    const [failure] = await duck(db, `SELECT result::VARCHAR AS result FROM ebb.sync_record_history WHERE NOT success LIMIT 1`);
    expect(failure.result).toContain('Bearer ***');
    expect(failure.result).toContain('key=***');

    for (const text of outputs) expect(text).not.toContain(secret);
    const tables = await duck(db, `SELECT table_name FROM duckdb_tables() WHERE schema_name = 'ebb' AND table_name <> 'syncs'`);
    expect(tables.map((t) => t.table_name)).toEqual(expect.arrayContaining(['sync_runs', 'sync_record_state', 'sync_record_history']));
    for (const { table_name } of tables) {
      const rows = await duck(db, `SELECT * FROM ebb."${String(table_name)}"`);
      expect(JSON.stringify(rows), String(table_name)).not.toContain(secret);
    }
  });

  it('nor in the catalog of sync definitions, nor anywhere in the warehouse file', async () => {
    const { dir, db } = await runWithSecret();
    const catalog = await duck(db, `SELECT definition::VARCHAR AS definition FROM ebb.syncs`);
    expect(catalog).toHaveLength(1);
    expect(catalog[0].definition).not.toContain(secret);
    for (const file of (await readdir(dir)).filter((f) => f.startsWith('warehouse.duckdb'))) {
      expect((await readFile(join(dir, file))).includes(secret), file).toBe(false);
    }
  });
});
