/**
 * Delivery to a flaky app, end to end through `ebb run` against the fault server (SPEC §3, §4):
 * 5xx, reset connections and timeouts; 429 with Retry-After; records refused inside a batch and
 * batches refused whole; the business retries; the time limit; the run lock and a killed run;
 * creates in doubt (sent, never answered) and how they are resolved; bounded runs (Retry-After
 * past its cap, max_run_seconds over retry waits, an app that cannot be reached).
 * Retries wait 50-200 ms here, not 3-10 s, so that the tests stay fast.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { setTimeout as sleep } from 'node:timers/promises';
import { duck, ebb, makeProject, repoRoot, runHere } from './support/project.ts';
import { FaultServer, type FaultConfig } from './support/fault-server.ts';
import { lockHolder } from '../engine/run-lock.ts';

const servers: FaultServer[] = [];
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

const retry = { delays_seconds: [0.05, 0.1, 0.2] };

const singleRequests = {
  create: { method: 'POST', path: '/contacts', body: '{{ record | tojson }}', app_id: '{{ response.id }}' },
  update: { method: 'PATCH', path: '/contacts/{{ app_id | urlencode }}', body: '{{ record | tojson }}' },
  delete: { method: 'DELETE', path: '/contacts/{{ app_id | urlencode }}' },
};

const lookup = { method: 'GET', path: '/contacts?email={{ record.email | urlencode }}', app_id: '{{ response.id }}' };

const each = (item: string) => `[{% for c in changes %}${item}{{ "," if not loop.last }}{% endfor %}]`;
const batchRequests = {
  create: { method: 'POST', path: '/contacts/batch/create', batch: true, body: '{"inputs": {{ records | tojson }}}', results: 'results', app_id: '{{ result.id }}', error: '{{ result.error }}' },
  update: {
    method: 'POST',
    path: '/contacts/batch/update',
    batch: true,
    body: `{"inputs": ${each('{"id": {{ c.app_id | tojson }}, "properties": {{ c.record | tojson }}}')}}`,
    results: 'results',
    error: '{{ result.error }}',
  },
};

/** A row of the source table `contacts`: the id is the key, the email is unique in the app. */
interface Person {
  id: number;
  email: string;
  name: string;
}

const people = (from: number, to: number, name = 'P', bad: number[] = []): Person[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i).map((id) => ({ id, email: `${bad.includes(id) ? 'bad' : 'p'}${id}@x.io`, name: `${name}${id}` }));

interface RunJson {
  run_id: string;
  health: string;
  counts: Record<string, number>;
  error: string | null;
  note: string | null;
}

interface SetupOptions {
  app?: Partial<FaultConfig>;
  mode?: 'single' | 'batch';
  strategy?: string;
  batchSize?: number;
  concurrency?: number;
  timeoutMs?: number;
  createIsIdempotent?: boolean;
  /** Adds requests.lookup: a contact found by its email. */
  lookup?: boolean;
  retry?: Record<string, unknown>;
}

/** A project with a sync `s` of the table `contacts` to a running fault server. */
async function setup(options: SetupOptions = {}) {
  const app = await FaultServer.start(options.app);
  servers.push(app);
  const config = (maxRunSeconds?: number) => ({
    version: 1,
    name: 'delivery',
    warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
    connections: {
      app: { plugin: 'http', config: { base_url: app.url, timeout_ms: options.timeoutMs ?? 5000 }, concurrency: options.concurrency ?? 4, retry: options.retry ?? retry },
    },
    syncs: [
      {
        name: 's',
        source: { table: 'contacts', key: 'id' },
        destination: {
          connection: 'app',
          object: 'contacts',
          requests: { ...(options.mode === 'batch' ? batchRequests : singleRequests), ...(options.lookup && { lookup }) },
          ...(options.createIsIdempotent && { create_is_idempotent: true }),
        },
        strategy: options.strategy ?? 'upsert',
        mapping: { email: 'email', name: 'name' },
        batch_size: options.batchSize ?? 10,
        ...(maxRunSeconds && { max_run_seconds: maxRunSeconds }),
      },
    ],
  });
  const dir = await makeProject(config());
  const db = join(dir, 'warehouse.duckdb');
  return {
    app,
    dir,
    db,
    /** Sets or removes the sync's `max_run_seconds`. */
    async timeLimit(seconds?: number) {
      await writeFile(join(dir, 'ebb.yml'), stringify(config(seconds)));
    },
    async load(rows: Person[]) {
      const values = rows.map((p) => `(${p.id}, '${p.email}', '${p.name}')`).join(', ');
      await duck(db, `CREATE OR REPLACE TABLE contacts (id INTEGER, email VARCHAR, name VARCHAR);\nINSERT INTO contacts VALUES ${values}`);
    },
    /** A run of `s` as `ebb run s --json` makes it, in this process, expecting an exit code. */
    async run(exit: number): Promise<RunJson> {
      const result = await runHere(dir, ['s']);
      expect(result.code, `${result.warnings.join('\n')}\n${result.json}`).toBe(exit);
      return (JSON.parse(result.json) as { runs: RunJson[] }).runs[0];
    },
    /** The real `ebb run s --json`, expecting an exit code. */
    async runCommand(exit: number, env: Record<string, string> = {}): Promise<RunJson> {
      const result = await ebb(dir, ['run', 's', '--json'], env);
      expect(result.code, result.stderr + result.stdout).toBe(exit);
      return (JSON.parse(result.stdout) as { runs: RunJson[] }).runs[0];
    },
    /** `ebb <args>` in the project, expecting an exit code. */
    async cli(exit: number, ...args: string[]) {
      const result = await ebb(dir, args);
      expect(result.code, result.stderr + result.stdout).toBe(exit);
      return result;
    },
    /** The state rows, `key -> apply_state`. */
    async states(): Promise<Record<string, string>> {
      const rows = await duck(db, `SELECT record_key, apply_state FROM ebb.sync_record_state`);
      return Object.fromEntries(rows.map((r) => [String(r.record_key), String(r.apply_state)]));
    },
  };
}

/** The app holds exactly these people, each created once (but those deleted in the app and created again). */
function expectAppHolds(app: FaultServer, rows: Person[], recreated: string[] = []) {
  const held = [...app.contacts.values()].map((c) => `${String(c.email)} ${String(c.name)}`).sort();
  expect(held).toEqual(rows.map((p) => `${p.email} ${p.name}`).sort());
  const twice = [...app.createdPerEmail()].filter(([email, n]) => n > (recreated.includes(String(email)) ? 2 : 1));
  expect(twice, 'contacts created twice').toEqual([]);
}

const idOf = (record: Record<string, unknown>) => Number(String(record.email).slice(1, -5));

describe('technical retries', () => {
  it('5xx, reset connections and timeouts on some requests: the run still ends HEALTHY, each record once in the app', async () => {
    // A create that got no answer may have landed: it is sent again only because the app answers a
    // repeated create with 409 and the id (create_is_idempotent).
    const s = await setup({
      timeoutMs: 300,
      createIsIdempotent: true,
      app: {
        faults: [
          // Each record meets each fault at most once, so three retries are always enough; which
          // requests are hit varies (seeded), and some faults land after the app did the work.
          { kind: 'error', status: 503, firstPerRecord: 1, probability: 0.4, only: (r) => idOf(r) > 10 && idOf(r) % 3 === 0 },
          { kind: 'reset', firstPerRecord: 1, probability: 0.4, only: (r) => idOf(r) > 10 && idOf(r) % 3 === 1 },
          { kind: 'hang', firstPerRecord: 1, probability: 0.3, only: (r) => idOf(r) > 10 && idOf(r) % 3 === 2 },
          { kind: 'reset', afterApply: true, firstPerRecord: 1, only: (r) => r.email === 'p7@x.io' },
          { kind: 'error', status: 500, afterApply: true, firstPerRecord: 1, only: (r) => r.email === 'p8@x.io' },
        ],
      },
    });
    const rows = people(1, 60);
    await s.load(rows);
    const run = await s.run(0);
    expect(run.health).toBe('HEALTHY');
    expect(run.counts).toMatchObject({ succeeded: 60, failed: 0 });
    expectAppHolds(s.app, rows);
    const answers = s.app.requests.map((r) => r.answer);
    for (const fault of [503, 'reset', 'hang', 500]) expect(answers, `no ${fault} was injected`).toContain(fault);
    // p7 and p8 landed on the first try although the app's answer was lost: the retry was answered
    // 409 with the id, and became an update of that id.
    for (const email of ['p7@x.io', 'p8@x.io']) {
      expect(s.app.requests.filter((r) => r.records.some((c) => c.email === email)).map((r) => `${r.method} ${r.path} ${String(r.answer)}`)).toEqual([
        `POST /contacts ${email === 'p7@x.io' ? 'reset' : 500}`,
        'POST /contacts 409',
        `PATCH /contacts/${s.app.idOf(email)} 200`,
      ]);
    }
    expect(Object.values(await s.states()).every((state) => state === 'SUCCESS')).toBe(true);
  });

  it('429 with Retry-After: 1 is honoured; when the tries run out the records are FAILED with the app answer', async () => {
    const s = await setup({ app: { faults: [{ kind: 'rate_limit', retryAfterSeconds: 1, firstPerRecord: 1 }] } });
    await s.load(people(1, 3));
    expect((await s.run(0)).health).toBe('HEALTHY');
    for (const email of ['p1@x.io', 'p2@x.io', 'p3@x.io']) {
      const tries = s.app.requests.filter((r) => r.records.some((c) => c.email === email));
      expect(tries.map((r) => r.answer)).toEqual([429, 201]);
      // The retry waited for Retry-After (1 s), not for the first retry delay (50 ms).
      expect(tries[1].at - tries[0].at).toBeGreaterThanOrEqual(1000);
    }

    s.app.configure({ faults: [{ kind: 'rate_limit', retryAfterSeconds: 0 }] });
    s.app.requests.length = 0;
    await s.load(people(1, 3, 'Renamed'));
    const failed = await s.run(1);
    expect(failed).toMatchObject({ health: 'FAILED', counts: { succeeded: 0, failed: 3 } });
    // The first try and the three retries.
    expect(s.app.requests.map((r) => r.answer)).toEqual(Array(12).fill(429));
    const history = await duck(s.db, `SELECT apply_state, result::VARCHAR AS result FROM ebb.sync_record_history WHERE run_id = '${failed.run_id}'`);
    expect(history).toHaveLength(3);
    for (const row of history) {
      expect(row.apply_state).toBe('FAILED');
      const result = JSON.parse(String(row.result)) as { error: { kind: string; message: string }; response: unknown };
      expect(result.error).toMatchObject({ kind: 'rate_limited', message: expect.stringMatching(/^PATCH \/contacts\/c\d answered 429: \{"error":"too many requests"\}$/) as unknown });
      expect(result.response).toEqual({ status: 429, body: { error: 'too many requests' } });
    }
    expect(Object.values(await s.states())).toEqual(['FAILED', 'FAILED', 'FAILED']);
  });
});

describe('batch mode', () => {
  const rows = people(1, 50, 'P', [17]);

  it('one bad record inside a batch of 50 is refused alone', async () => {
    const s = await setup({ mode: 'batch', batchSize: 50 });
    await s.load(rows);
    const run = await s.run(2);
    expect(run).toMatchObject({ health: 'INCOMPLETE', counts: { succeeded: 49, failed: 1 } });
    expect(s.app.requests.map((r) => `${r.path} ${r.records.length} ${String(r.answer)}`)).toEqual(['/contacts/batch/create 50 200']);
    expect(s.app.contacts.size).toBe(49);
    const [bad] = await duck(s.db, `SELECT apply_state, result::VARCHAR AS result FROM ebb.sync_record_history WHERE record_key = '17'`);
    expect(bad.apply_state).toBe('FAILED');
    expect(JSON.parse(String(bad.result))).toEqual({ error: { kind: 'rejected', message: 'invalid email' }, response: { status: 200, body: { error: 'invalid email' } } });
    const [good] = await duck(s.db, `SELECT app_identifier FROM ebb.sync_record_state WHERE record_key = '1'`);
    expect(good.app_identifier).toBe(s.app.idOf('p1@x.io'));
  });

  it('a batch refused whole is split in half until only the bad record fails', async () => {
    const s = await setup({ mode: 'batch', batchSize: 50, app: { rejectWholeBatch: true } });
    await s.load(rows);
    const run = await s.run(2);
    expect(run).toMatchObject({ health: 'INCOMPLETE', counts: { succeeded: 49, failed: 1 } });
    const refused = s.app.requests.filter((r) => r.answer === 422);
    const accepted = s.app.requests.filter((r) => r.answer === 200);
    // Each refused batch holds the bad record; halving 50 reaches it in 5 or 6 splits (log2 50 ≈ 5.6).
    expect(refused.every((r) => r.records.some((c) => c.email === 'bad17@x.io'))).toBe(true);
    expect(refused.map((r) => r.records.length).at(-1)).toBe(1);
    expect(refused.length).toBeGreaterThanOrEqual(Math.floor(Math.log2(50)) + 1);
    expect(refused.length).toBeLessThanOrEqual(Math.ceil(Math.log2(50)) + 1);
    // The good half of every split is accepted in one request.
    expect(accepted).toHaveLength(refused.length - 1);
    expect(accepted.reduce((n, r) => n + r.records.length, 0)).toBe(49);
    expect(s.app.contacts.size).toBe(49);
    expect(s.app.received().filter((c) => c.email === 'bad17@x.io')).toHaveLength(refused.length);
    const [bad] = await duck(s.db, `SELECT apply_state, last_result::VARCHAR AS result FROM ebb.sync_record_state WHERE record_key = '17'`);
    expect(bad.apply_state).toBe('FAILED');
    expect(JSON.parse(String(bad.result))).toMatchObject({
      error: { kind: 'rejected', message: 'POST /contacts/batch/create answered 422: {"error":"invalid email","index":0}' },
    });
  });
});

describe('business retries (SPEC §3)', () => {
  it('an update answered 404 under upsert becomes a create; a create answered 409 with an id becomes an update of that id', async () => {
    const s = await setup();
    await s.load(people(1, 3));
    await s.run(0);
    const goneId = s.app.idOf('p2@x.io')!;
    s.app.forget(goneId); // someone deleted p2 in the app
    const existing = s.app.insert({ email: 'p4@x.io', name: 'made by hand' }); // p4 is in the app before ebb sends it
    s.app.requests.length = 0;
    await s.load([...people(1, 1), ...people(2, 2, 'Changed'), ...people(3, 4)]);

    const run = await s.run(0);
    expect(run.counts).toMatchObject({ succeeded: 2, failed: 0 });
    expect(s.app.requests.map((r) => `${r.method} ${r.path} ${String(r.answer)}`).sort()).toEqual(
      [`PATCH /contacts/${goneId} 404`, 'POST /contacts 201', 'POST /contacts 409', `PATCH /contacts/${existing} 200`].sort(),
    );
    const history = await duck(s.db, `SELECT record_key, action, apply_state, app_identifier FROM ebb.sync_record_history WHERE run_id = '${run.run_id}' ORDER BY record_key`);
    expect(history).toEqual([
      { record_key: '2', action: 'create', apply_state: 'SUCCESS', app_identifier: s.app.idOf('p2@x.io') },
      { record_key: '4', action: 'update', apply_state: 'SUCCESS', app_identifier: existing },
    ]);
    expect(s.app.contacts.get(existing)).toEqual({ email: 'p4@x.io', name: 'P4' });
    expectAppHolds(s.app, [...people(1, 1), ...people(2, 2, 'Changed'), ...people(3, 4)], ['p2@x.io']);
  });
});

describe('time limit', () => {
  it('max_run_seconds: the run ends DELAYED (exit 0), and the next run sends the delayed records first', async () => {
    const s = await setup({ batchSize: 5, concurrency: 1 });
    const rows = people(1, 40);
    await s.load(rows);
    expect((await s.run(0)).health).toBe('HEALTHY');

    // Every record changes; at 1 s a batch, 40 updates need 8 s, and the limit is 3 s.
    s.app.configure({ latencyMs: 1000 });
    await s.timeLimit(3);
    await s.load(people(1, 40, 'Second'));
    const slow = await s.run(0);
    expect(slow.health, JSON.stringify(slow)).toBe('DELAYED');
    expect(slow.counts.failed).toBe(0);
    expect(slow.counts.delayed).toBeGreaterThan(0);
    expect(slow.counts.succeeded + slow.counts.delayed).toBe(40);
    const states = await s.states();
    const delayed = Object.keys(states).filter((k) => states[k] === 'DELAYED');
    expect(delayed).toHaveLength(slow.counts.delayed);
    const [run] = await duck(s.db, `SELECT status, delayed FROM ebb.sync_runs WHERE run_id = '${slow.run_id}'`);
    expect(run).toEqual({ status: 'DELAYED', delayed: delayed.length });
    // The delayed records never reached the app.
    const sent = new Set(s.app.received().filter((c) => String(c.name).startsWith('Second')).map((c) => String(c.email)));
    expect(delayed.filter((k) => sent.has(`p${k}@x.io`))).toEqual([]);

    // Next run: the delayed updates and five new records. Creates sort before updates, so only
    // "delayed first" puts the updates ahead.
    s.app.configure({ latencyMs: 0 });
    await s.timeLimit(undefined);
    s.app.requests.length = 0;
    await s.load([...people(1, 40, 'Second'), ...people(41, 45)]);
    const next = await s.run(0);
    expect(next, `delayed before: ${delayed.join(' ')}`).toMatchObject({ health: 'HEALTHY', counts: { succeeded: delayed.length + 5 } });
    const history = await duck(
      s.db,
      `SELECT list(record_key ORDER BY record_key) FILTER (WHERE action = 'update') AS updated, count(*) FILTER (WHERE action = 'create') AS created,
              max(recorded_at) FILTER (WHERE action = 'update') <= min(recorded_at) FILTER (WHERE action = 'create') AS updates_first
       FROM ebb.sync_record_history WHERE run_id = '${next.run_id}'`,
    );
    expect(history).toEqual([{ updated: [...delayed].sort(), created: 5, updates_first: true }]);
    // The app saw them in that order too (one batch at a time).
    const order = s.app.requests.map((r) => `${r.method} ${r.path} ${String(r.answer)}`);
    expect(s.app.requests.map((r) => r.method), order.join('\n')).toEqual([...Array<string>(delayed.length).fill('PATCH'), ...Array<string>(5).fill('POST')]);
    expect(new Set(s.app.received((r) => r.method === 'PATCH').map((c) => String(c.email)))).toEqual(new Set(delayed.map((k) => `p${k}@x.io`)));
    expectAppHolds(s.app, [...people(1, 40, 'Second'), ...people(41, 45)]);
  });
});

describe('the run lock and a killed run', () => {
  const bin = join(repoRoot, 'bin', 'ebb.js');

  it('a second run is refused while the first holds the sync; after a kill -9 the next run takes its lock at once and recovers, with no duplicates', async () => {
    const s = await setup({ batchSize: 2, concurrency: 2, createIsIdempotent: true, app: { latencyMs: 50 } });
    const rows = people(1, 40);
    await s.load(rows);

    const first = spawn(process.execPath, [bin, 'run', 's', '--json', '--project-dir', s.dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(first);
    let firstErr = '';
    first.stderr.on('data', (chunk: Buffer) => (firstErr += chunk.toString()));
    const exited = new Promise<void>((resolve) => first.on('exit', () => resolve()));
    for (let waited = 0; s.app.requests.length < 6; waited += 20) {
      expect(first.exitCode, firstErr).toBeNull();
      expect(waited, 'the first run sent nothing within 30 s').toBeLessThan(30_000);
      await sleep(20);
    }
    // The app stalls: the first run now holds requests in flight (that the app has carried out).
    s.app.configure({ latencyMs: 60_000 });

    // EBB_BUSY_WAIT_SECONDS: how long a command waits for a busy warehouse before it gives up.
    const second = await ebb(s.dir, ['run', 's'], { EBB_BUSY_WAIT_SECONDS: '1' });
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/^error: the warehouse warehouse\.duckdb is busy: another process \(PID \d+[^)]*\) holds it\b[^\n]*\n$/);
    expect(second.stderr + second.stdout).not.toMatch(/IO Error|internal error|\n\s+at /);
    expect(first.exitCode, 'the first run ended too early').toBeNull();

    first.kill('SIGKILL');
    await exited;
    s.app.configure({ latencyMs: 0 });
    const createdBefore = s.app.created.length;
    expect(createdBefore).toBeGreaterThan(0);
    // The killed run's lock would expire in 60 s (EBB_LOCK_TTL_SECONDS); its process is gone, so it is taken now.
    const next = await s.runCommand(0);
    expect(next.health).toBe('HEALTHY');
    const runs = await duck(s.db, `SELECT run_id, status, error FROM ebb.sync_runs ORDER BY started_at`);
    expect(runs).toHaveLength(2);
    expect(runs[0]).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^interrupted/) as unknown });
    expect(runs[1]).toMatchObject({ run_id: next.run_id, status: 'HEALTHY' });
    // Complete, and nothing created twice: the creates in flight at the kill were sent again,
    // answered 409 with the id, and became updates.
    expectAppHolds(s.app, rows);
    expect(s.app.requests.some((r) => r.answer === 409)).toBe(true);
    const states = await duck(s.db, `SELECT count(*) AS n, count(DISTINCT app_identifier) AS ids FROM ebb.sync_record_state WHERE apply_state = 'SUCCESS'`);
    expect(states).toEqual([{ n: 40, ids: 40 }]);
  });

  it('a lock held by a live process, or by a process elsewhere, refuses runs until it expires', async () => {
    const s = await setup();
    await s.load(people(1, 3));
    await s.run(0);
    // This test's own process (alive), a process of another machine, a holder that names no process space.
    for (const holder of [lockHolder, 'elsewhere:4242/0badf00d', `${hostname()}:4242`]) {
      await duck(s.db, `UPDATE ebb.syncs SET lock_run_id = 'other-run', lock_holder = '${holder}', lock_expires_at = now()::TIMESTAMP + INTERVAL 1 HOUR`);
      const refused = await ebb(s.dir, ['run', 's']);
      expect(refused.code, refused.stdout).toBe(1);
      expect(refused.stderr).toContain(`sync s is already running (run other-run, held by ${holder}); this run is refused.`);
    }
    await duck(s.db, `UPDATE ebb.syncs SET lock_expires_at = now()::TIMESTAMP - INTERVAL 1 SECOND`);
    expect((await s.runCommand(0)).health).toBe('HEALTHY');
  });
});

describe('creates in doubt: sent, never answered (without create_is_idempotent)', () => {
  // p3's create lands but its answer never comes; p5's create never reaches the app (no answer either).
  // The timeout (1.5 s) is far above a local answer even on a loaded machine: any other create that
  // timed out would be in doubt too, and the counts below would be wrong.
  const faults: FaultConfig['faults'] = [
    { kind: 'hang', afterApply: true, firstPerRecord: 1, match: /^POST /, only: (r) => r.email === 'p3@x.io' },
    { kind: 'hang', firstPerRecord: 1, match: /^POST /, only: (r) => r.email === 'p5@x.io' },
  ];
  const posts = (app: FaultServer, email: string) => app.requests.filter((r) => r.method === 'POST' && r.records.some((c) => c.email === email));
  const health = async (s: Awaited<ReturnType<typeof setup>>) => {
    const [view] = await duck(s.db, `SELECT health FROM ebb.sync_health WHERE sync_name = 's'`);
    const status = JSON.parse((await s.cli(0, 'status', '--json')).stdout) as Array<{ sync_name: string; health: string }>;
    return { view: view.health, status: status.find((r) => r.sync_name === 's')?.health };
  };

  it('is not resent but NEEDS_REVIEW; the next run looks it up (requests.lookup): found is updated, not found is created, once each', async () => {
    const s = await setup({ timeoutMs: 1500, lookup: true, app: { faults } });
    const rows = people(1, 6);
    await s.load(rows);
    const first = await s.run(2);
    expect(first).toMatchObject({ health: 'INCOMPLETE', counts: { succeeded: 4, failed: 0, needs_review: 2 } });
    // Sent once each: never three more times on a timeout.
    expect(posts(s.app, 'p3@x.io').map((r) => r.answer)).toEqual(['hang']);
    expect(posts(s.app, 'p5@x.io').map((r) => r.answer)).toEqual(['hang']);
    expect(await s.states()).toMatchObject({ 3: 'NEEDS_REVIEW', 5: 'NEEDS_REVIEW' });
    const [doubt] = await duck(s.db, `SELECT result::VARCHAR AS result FROM ebb.sync_record_history WHERE run_id = '${first.run_id}' AND record_key = '3'`);
    expect(JSON.parse(String(doubt.result))).toMatchObject({ note: expect.stringMatching(/did not learn the outcome/) as unknown, error: { kind: 'transient', noAnswer: 'sent' } });
    expect(await health(s)).toEqual({ view: 'INCOMPLETE', status: 'INCOMPLETE' });

    s.app.requests.length = 0;
    const second = await s.run(0);
    expect(second).toMatchObject({ health: 'HEALTHY', counts: { succeeded: 2, failed: 0, needs_review: 0 } });
    const p3 = s.app.idOf('p3@x.io')!;
    expect(s.app.requests.map((r) => `${r.method} ${decodeURIComponent(r.path)} ${String(r.answer)}`).sort()).toEqual(
      ['GET /contacts?email=p3@x.io 200', 'GET /contacts?email=p5@x.io 404', `PATCH /contacts/${p3} 200`, 'POST /contacts 201'].sort(),
    );
    expectAppHolds(s.app, rows);
    const state = await duck(s.db, `SELECT record_key, apply_state, app_identifier FROM ebb.sync_record_state WHERE record_key IN ('3', '5') ORDER BY record_key`);
    expect(state).toEqual([
      { record_key: '3', apply_state: 'SUCCESS', app_identifier: p3 },
      { record_key: '5', apply_state: 'SUCCESS', app_identifier: s.app.idOf('p5@x.io') },
    ]);
    const traced = await duck(s.db, `SELECT record_key, apply_state, app_identifier FROM ebb.sync_record_history WHERE action = 'lookup' ORDER BY record_key`);
    expect(traced).toEqual([
      { record_key: '3', apply_state: 'SUCCESS', app_identifier: p3 },
      { record_key: '5', apply_state: 'RESYNC_REQUESTED', app_identifier: null },
    ]);
    expect(await health(s)).toEqual({ view: 'HEALTHY', status: 'HEALTHY' });
  });

  it('without a lookup it stays NEEDS_REVIEW run after run; resync refuses it; `ebb resolve` settles it with no duplicate', async () => {
    const s = await setup({ timeoutMs: 1500, app: { faults } });
    const rows = people(1, 6);
    await s.load(rows);
    await s.run(2);
    // A run with nothing to do is still not healthy while records are in doubt.
    const idle = await s.run(2);
    expect(idle).toMatchObject({ health: 'INCOMPLETE', planned: {}, counts: { succeeded: 0, needs_review: 2 } });
    expect(await health(s)).toEqual({ view: 'INCOMPLETE', status: 'INCOMPLETE' });

    const refused = await s.cli(1, 'resync', 's', '--key', '3');
    expect(refused.stderr).toMatch(/^error: s: 3 is in doubt \(NEEDS_REVIEW\): the app may hold it already, so `ebb resync` could create it twice\. .*`ebb resolve s --key K --app-id ID`/);
    expect((await s.cli(1, 'skip', 's', '--key', '5')).stderr).toMatch(/5 is in doubt/);
    const all = await s.cli(0, 'resync', 's');
    expect(all.stdout).toBe('s: 4 records will be sent again in the next run\ns: 2 records are in doubt and left alone: see `ebb resolve s`\n');
    expect(await s.states()).toMatchObject({ 3: 'NEEDS_REVIEW', 5: 'NEEDS_REVIEW' });
    const listed = JSON.parse((await s.cli(0, 'resolve', 's', '--json')).stdout) as Array<{ record_key: string; action: string }>;
    expect(listed.map((r) => `${r.record_key} ${r.action}`)).toEqual(['3 create', '5 create']);

    // The person checks the app: p3 is there, p5 is not.
    const p3 = s.app.idOf('p3@x.io')!;
    expect(s.app.idOf('p5@x.io')).toBeUndefined();
    expect((await s.cli(3, 'resolve', 's', '--key', '4', '--not-in-app')).stderr).toMatch(/4 is not in doubt/);
    await s.cli(0, 'resolve', 's', '--key', '3', '--app-id', p3);
    await s.cli(0, 'resolve', 's', '--key', '5', '--not-in-app');
    const traced = await duck(s.db, `SELECT record_key, apply_state, app_identifier FROM ebb.sync_record_history WHERE action = 'resolve' ORDER BY record_key`);
    expect(traced).toEqual([
      { record_key: '3', apply_state: 'SUCCESS', app_identifier: p3 },
      { record_key: '5', apply_state: 'RESYNC_REQUESTED', app_identifier: null },
    ]);
    s.app.requests.length = 0;
    const healed = await s.run(0);
    expect(healed).toMatchObject({ health: 'HEALTHY', counts: { needs_review: 0 } });
    // p3 is updated in place, p5 created once; the others are resent as `ebb resync` asked.
    expect(s.app.requests.filter((r) => r.records.some((c) => c.email === 'p3@x.io' || c.email === 'p5@x.io')).map((r) => `${r.method} ${r.path} ${String(r.answer)}`).sort()).toEqual(
      [`PATCH /contacts/${p3} 200`, 'POST /contacts 201'].sort(),
    );
    expectAppHolds(s.app, rows);
    expect(await health(s)).toEqual({ view: 'HEALTHY', status: 'HEALTHY' });
  }, 180_000);
});

describe('bounded runs', () => {
  it('a 429 asking for an hour (Retry-After: 3600) is not slept on: the records are DELAYED with the reason, and go first in the next run', async () => {
    const s = await setup({ app: { faults: [{ kind: 'rate_limit', retryAfterSeconds: 3600, firstRequests: 3 }] }, concurrency: 1, batchSize: 3 });
    const rows = people(1, 3);
    await s.load(rows);
    const run = await s.run(0);
    expect(run).toMatchObject({
      health: 'DELAYED',
      counts: { succeeded: 0, failed: 0, delayed: 3 },
      note: '3 records delayed to the next run: the app asked to wait 3600 s (Retry-After), more than retry.max_wait_seconds (60)',
    });
    expect(s.app.requests.map((r) => r.answer)).toEqual([429, 429, 429]);
    const history = await duck(s.db, `SELECT apply_state, result::VARCHAR AS result FROM ebb.sync_record_history WHERE run_id = '${run.run_id}'`);
    expect(history).toHaveLength(3);
    for (const row of history) {
      expect(row.apply_state).toBe('DELAYED');
      expect(JSON.parse(String(row.result))).toMatchObject({
        note: 'the app asked to wait 3600 s (Retry-After), more than retry.max_wait_seconds (60); it goes first in the next run',
        error: { kind: 'rate_limited', retryAfterMs: 3_600_000 },
      });
    }
    const next = await s.run(0);
    expect(next).toMatchObject({ health: 'HEALTHY', counts: { succeeded: 3 } });
    expectAppHolds(s.app, rows);
  });

  it('retry.max_wait_seconds sets the cap', async () => {
    const s = await setup({ retry: { delays_seconds: [0.05], max_wait_seconds: 1 }, app: { faults: [{ kind: 'rate_limit', retryAfterSeconds: 2, firstRequests: 1 }] }, concurrency: 1 });
    await s.load(people(1, 2));
    // The result line says why.
    const { stderr } = await s.cli(0, 'run', 's');
    expect(stderr).toMatch(/^s: DELAYED in [\d.]+s — 1 succeeded, 0 failed, 1 delayed, 0 source failures \(run \S+\)\n {2}note: 1 record delayed to the next run: the app asked to wait 2 s \(Retry-After\), more than retry\.max_wait_seconds \(1\)$/m);
    expect(s.app.requests.map((r) => r.answer)).toEqual([429, 201]);
  });

  it('max_run_seconds bounds the waits for retries: a retry due after the limit is not waited for, its record is DELAYED', async () => {
    // Every first try fails with 503; the retry would come 30 s later, past the 2 s limit.
    const s = await setup({ retry: { delays_seconds: [30] }, app: { faults: [{ kind: 'error', status: 503, firstPerRecord: 1 }] } });
    await s.timeLimit(2);
    const rows = people(1, 5);
    await s.load(rows);
    const run = await s.run(0);
    expect(run).toMatchObject({
      health: 'DELAYED',
      counts: { succeeded: 0, failed: 0, delayed: 5 },
      note: '5 records delayed to the next run: the time limit (max_run_seconds) comes before a retry, 30 s later',
    });
    expect(s.app.requests.map((r) => r.answer)).toEqual(Array(5).fill(503));
    const notes = await duck(s.db, `SELECT DISTINCT json_extract_string(result, '$.note') AS note FROM ebb.sync_record_history WHERE run_id = '${run.run_id}'`);
    expect(notes).toEqual([{ note: 'not tried again in this run: the time limit (max_run_seconds) comes before a retry, 30 s later' }]);
    await s.timeLimit(undefined);
    expect(await s.run(0)).toMatchObject({ health: 'HEALTHY', counts: { succeeded: 5 } });
    expectAppHolds(s.app, rows);
  });

  it('max_run_seconds with creates that are read ahead: those not sent when the limit comes are DELAYED, none in doubt', async () => {
    // At 1 s an answer, one batch of 5 at a time, 40 creates need 8 s; the limit is 3 s.
    const s = await setup({ batchSize: 5, concurrency: 1, app: { latencyMs: 1000 } });
    await s.timeLimit(3);
    const rows = people(1, 40);
    await s.load(rows);
    const run = await s.run(0);
    expect(run).toMatchObject({ health: 'DELAYED', counts: { failed: 0, needs_review: 0 } });
    expect(run.note).toBe(`${run.counts.delayed} records delayed to the next run: the time limit (max_run_seconds) was reached`);
    expect(run.counts.succeeded).toBe(s.app.contacts.size);
    expect(run.counts.succeeded + run.counts.delayed).toBe(40);
    await s.timeLimit(undefined);
    s.app.configure({ latencyMs: 0 });
    expect(await s.run(0)).toMatchObject({ health: 'HEALTHY', counts: { succeeded: run.counts.delayed } });
    expectAppHolds(s.app, rows);
  });

  it('an app that refuses connections: the run stops after 3 batches in a row got no answer, FAILED with the error, every record DELAYED in history', async () => {
    const s = await setup({ batchSize: 10, concurrency: 4 });
    await s.app.stop(); // nothing listens on its port any more: every connection is refused
    await s.load(people(1, 1000));
    const run = await s.run(1);
    expect(run.health).toBe('FAILED');
    expect(run.error).toMatch(/^stopped after 3 batches in a row got no answer from the app: POST \/contacts failed: connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
    expect(run.counts).toMatchObject({ succeeded: 0, failed: 0, delayed: 1000 });
    expect(run.note).toBeNull();
    const [tried] = await duck(s.db, `SELECT count(*) AS n FROM ebb.sync_record_history WHERE run_id = '${run.run_id}' AND result IS NOT NULL`);
    // Only the batches sent before the breaker opened were tried: at most one per concurrent slot.
    expect(tried.n).toBeGreaterThan(0);
    expect(tried.n).toBeLessThanOrEqual(4 * 10);
    expect(Object.values(await s.states()).filter((state) => state === 'DELAYED')).toHaveLength(1000);
  });
});
