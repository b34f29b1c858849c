/**
 * Alerts and lifecycle webhooks, end to end against real receivers: a webhook receiver that
 * verifies the HMAC signature, a Slack-shaped receiver and a local SMTP server. Runs go in this
 * process, as `ebb run --json` makes them; the other commands through the CLI.
 * Each rule fires once and resolves once over a scripted sequence of runs; a channel that is
 * down does not fail the run, and is retried.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { duck, ebb, makeProject, runHere } from './support/project.ts';
import { CrmApp, crmRequests, rejectEmails, type Rule } from './support/crm-app.ts';
import { HttpReceivers, MailServer } from './support/notification-receivers.ts';

const SECRET = 'whsec-0123456789abcdef0123';
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Contact = [number, string, string];
const contacts = (n: number): Contact[] => Array.from({ length: n }, (_, i) => [i + 1, `p${i + 1}@x.io`, `P${i + 1}`]);

async function setup(alerts: Record<string, unknown>, sync: Record<string, unknown> = {}) {
  const app = await CrmApp.start();
  const receivers = await HttpReceivers.start(SECRET);
  const mail = await MailServer.start();
  cleanups.push(() => app.stop(), () => receivers.stop(), () => mail.stop());
  const dir = await makeProject({
    version: 1,
    name: 'alerting',
    warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
    server: { public_url: 'https://ebb.example.com/' },
    connections: { crm: { plugin: 'http', config: { base_url: app.url }, retry: { delays_seconds: [1] } } },
    alerts,
    syncs: [
      {
        name: 's',
        source: { table: 'contacts', key: 'id' },
        destination: { connection: 'crm', object: 'contacts', requests: crmRequests },
        strategy: 'upsert',
        mapping: { email: 'email', name: 'name' },
        ...sync,
      },
    ],
  });
  const db = join(dir, 'warehouse.duckdb');
  const env = { HOOK_SECRET: SECRET, SLACK_WEBHOOK_URL: `${receivers.url}/services/T0/B0/slacktoken123`, HOOK_URL: `${receivers.url}/hook`, SMTP_PORT: String(mail.port) };
  const load = async (rows: Contact[]) => {
    const values = rows.map(([id, email, name]) => `(${id}, '${email}', '${name}')`).join(', ');
    await duck(db, `CREATE OR REPLACE TABLE contacts (id INTEGER, email VARCHAR, name VARCHAR);\n${values ? `INSERT INTO contacts VALUES ${values}` : 'SELECT 1'}`);
  };
  /** A run of `s` as `ebb run s --json` makes it, in this process (the command's notifications are the run's). */
  const run = async (exit: number) => {
    const r = await runHere(dir, ['s'], { env });
    expect(r.code, `${r.stderr}${r.json}`).toBe(exit);
    return (JSON.parse(r.json) as { runs: Array<{ run_id: string; health: string }> }).runs[0];
  };
  return { app, receivers, mail, dir, db, env, load, run };
}

const channels = {
  hook: { type: 'webhook', url: "{{ env_var('HOOK_URL') }}", secret: "{{ env_var('HOOK_SECRET') }}", retry_delays_seconds: [0.2, 0.2] },
  slack: { type: 'slack', url: "{{ env_var('SLACK_WEBHOOK_URL') }}", retry_delays_seconds: [0.2] },
  mail: { type: 'email', smtp: { host: '127.0.0.1', port: "{{ env_var('SMTP_PORT') }}" }, from: 'ebb@example.com', to: ['oncall@example.com'] },
};

/** The alert events the webhook received, as `event rule`. */
function alertEvents(receivers: HttpReceivers): string[] {
  return receivers
    .webhooks()
    .map((r) => r.json as { event: string; alert: { rule: string } | null })
    .filter((p) => p.alert)
    .map((p) => `${p.event} ${p.alert!.rule}`);
}

describe('alert rules', () => {
  it('each rule fires once when it starts firing and resolves once, over a scripted sequence of runs', async () => {
    const rules = {
      run_failed: true,
      failed_records: { above_percent: 20 },
      needs_review: { above: 0 },
      run_time: { above: '3s' },
      volume: { counts: ['source_rows'], deviation_percent: 50, runs: 2 },
    };
    const s = await setup({ channels: { hook: channels.hook }, rules });
    const step = async (what: string, exit: number, expected: string[]) => {
      await s.run(exit);
      expect(alertEvents(s.receivers), what).toEqual(expected);
    };
    const fired: string[] = [];
    await s.load(contacts(3));
    await step('a healthy first run: every rule OK, nothing sent', 0, fired);
    // Two new records, one refused: 1 of 2 sent failed (50% > 20%).
    await s.load(contacts(5));
    s.app.rules = [rejectEmails(['p4@x.io'])];
    fired.push('sync.alert.firing failed_records');
    await step('failed records above 20%', 2, fired);
    // The refused record again, with a new one that goes through: 50% still.
    await s.load(contacts(6));
    await step('still failing: no second notification', 2, fired);
    s.app.rules = [];
    fired.push('sync.alert.resolved failed_records');
    await step('the record went through', 0, fired);
    // The app refuses everything: no record of the run gets through, so the run fails.
    s.app.rules = [() => ({ status: 500, body: { error: 'down' } })];
    await s.load(contacts(6).map(([id, email, name]) => [id, email, id === 1 ? 'Ann' : name]));
    fired.push('sync.alert.firing run_failed');
    await step('a failed run', 1, fired);
    s.app.rules = [];
    fired.push('sync.alert.resolved run_failed');
    await step('a healthy run again', 0, fired);
    // A slow run: the app asks for a 4 s pause before the first request of the run goes through.
    let slowed = false;
    const slow: Rule = () => (slowed ? undefined : ((slowed = true), { status: 503, headers: { 'retry-after': '4' }, body: { error: 'busy' } }));
    s.app.rules = [slow];
    await s.load(contacts(7));
    fired.push('sync.alert.firing run_time');
    await step('a run longer than 3s', 0, fired);
    s.app.rules = [];
    fired.push('sync.alert.resolved run_time');
    await step('a quick run', 0, fired);
    // A source that is suddenly empty: 0 rows against an average of 7.
    await s.load([]);
    fired.push('sync.alert.firing volume.source_rows');
    await step('an empty source', 0, fired);
    await s.load(contacts(7));
    await step('7 rows against an average of 3.5 (0 and 7): still off', 0, fired);
    await step('7 rows against an average of 3.5 again', 0, fired);
    fired.push('sync.alert.resolved volume.source_rows');
    await step('7 rows against 7', 0, fired);
    // A record in doubt (a create whose answer was lost), settled by `ebb resolve`.
    const [{ app_identifier: id }] = await duck(s.db, "SELECT app_identifier FROM ebb.sync_record_state WHERE record_key = '1'");
    await duck(s.db, "UPDATE ebb.sync_record_state SET apply_state = 'NEEDS_REVIEW' WHERE record_key = '1'");
    fired.push('sync.alert.firing needs_review');
    await step('a record in doubt', 2, fired);
    const resolved = await ebb(s.dir, ['resolve', 's', '--key', '1', '--app-id', String(id)], s.env);
    expect(resolved.code, resolved.stderr).toBe(0);
    fired.push('sync.alert.resolved needs_review');
    await step('settled', 0, fired);

    // Every notification was signed, and each carries the run, its counts and its link.
    const hooks = s.receivers.webhooks();
    expect(hooks.every((h) => h.verified)).toBe(true);
    const firing = hooks.map((h) => h.json).find((j) => j.event === 'sync.alert.firing')!;
    expect(firing).toMatchObject({ project: 'alerting', sync: 's', alert: { rule: 'failed_records', state: 'FIRING' } });
    expect(firing.counts).toMatchObject({ succeeded: 1, failed: 1 });
    expect(firing.url).toBe(`https://ebb.example.com/#/syncs/s/runs/${String(firing.run_id)}`);
    // The states and the notifications are warehouse tables.
    const states = await duck(s.db, "SELECT rule, state FROM ebb.sync_alerts WHERE sync_name = 's' ORDER BY rule");
    expect(states).toEqual(['failed_records', 'needs_review', 'run_failed', 'run_time', 'volume.source_rows'].map((rule) => ({ rule, state: 'OK' })));
    const log = await duck(s.db, "SELECT count(*) AS n FROM ebb.alert_notifications WHERE event LIKE 'sync.alert.%' AND success");
    expect(log[0].n).toBe(10);
  }, 180_000);
});

describe('channels and lifecycle webhooks', () => {
  it('a run sends started and completed (or failed) to the webhook; an alert goes to Slack, email and the webhook; status and alerts show it', async () => {
    const s = await setup({ channels, rules: { run_failed: true } });
    await s.load(contacts(2));
    const first = await s.run(0);
    const events = () => s.receivers.webhooks().map((h) => `${String(h.json.event)} ${String(h.json.run_id)}`);
    expect(events()).toEqual([`sync.run.started ${first.run_id}`, `sync.run.completed ${first.run_id}`]);
    const completed = s.receivers.webhooks()[1].json;
    expect(completed).toMatchObject({ sync: 's', status: 'HEALTHY', trigger: 'manual', counts: { succeeded: 2, failed: 0 }, planned: { create: 2 }, url: `https://ebb.example.com/#/syncs/s/runs/${first.run_id}` });
    expect(s.receivers.webhooks()[1].headers['idempotency-key']).toBe(completed.id);
    // Slack and email take the alert events only (by default).
    expect(s.receivers.slack()).toEqual([]);
    expect(s.mail.mails).toEqual([]);

    s.app.rules = [() => ({ status: 422, body: { error: 'nope' } })];
    await s.load(contacts(3));
    const failed = await s.run(1);
    expect(events().slice(2)).toEqual([`sync.run.started ${failed.run_id}`, `sync.run.failed ${failed.run_id}`, `sync.alert.firing ${failed.run_id}`]);
    expect(s.receivers.webhooks().every((h) => h.verified)).toBe(true);
    const [slack] = s.receivers.slack();
    expect(String(slack.json.text)).toContain('FIRING run_failed on s');
    expect(String(slack.json.text)).toContain(`https://ebb.example.com/#/syncs/s/runs/${failed.run_id}`);
    expect(s.mail.mails).toHaveLength(1);
    expect(s.mail.mails[0].to).toEqual(['oncall@example.com']);
    expect(s.mail.mails[0].data).toMatch(/Subject: \[ebb\] FIRING run_failed on s/);

    const status = await ebb(s.dir, ['status', '--json'], s.env);
    const [row] = JSON.parse(status.stdout) as Array<{ alerts_firing: Array<{ rule: string }> }>;
    expect(row.alerts_firing.map((a) => a.rule)).toEqual(['run_failed']);
    const text = await ebb(s.dir, ['status'], s.env);
    expect(text.stdout).toContain('s: alert FIRING: run_failed');
    const listed = JSON.parse((await ebb(s.dir, ['alerts', '--json'], s.env)).stdout) as { firing: Array<{ rule: string }>; notifications: Array<{ event: string; channel: string; success: boolean }> };
    expect(listed.firing.map((a) => a.rule)).toEqual(['run_failed']);
    expect(listed.notifications.filter((n) => n.event === 'sync.alert.firing').map((n) => n.channel).sort()).toEqual(['hook', 'mail', 'slack']);
    // The Slack webhook's URL holds its token: never printed.
    expect(JSON.stringify(listed) + text.stdout).not.toContain('slacktoken123');
    const dbText = await duck(s.db, 'SELECT payload::VARCHAR AS p, error FROM ebb.alert_notifications');
    expect(JSON.stringify(dbText)).not.toContain('slacktoken123');

    s.app.rules = [];
    await s.run(0);
    expect(String(s.receivers.slack()[1].json.text)).toContain('resolved run_failed on s');
    expect(s.mail.mails).toHaveLength(2);
    expect(JSON.parse((await ebb(s.dir, ['status', '--json'], s.env)).stdout)[0].alerts_firing).toEqual([]);
  }, 120_000);

  it('a channel that is down does not fail the run: it is retried, the failure is logged, and the next notification goes through', async () => {
    const s = await setup({ channels: { hook: channels.hook }, rules: { run_failed: true } });
    await s.load(contacts(2));
    s.receivers.down = true;
    const run = await s.run(0);
    expect(run.health).toBe('HEALTHY');
    // started and completed, each tried 3 times (retry_delays_seconds: [0.2, 0.2]).
    expect(s.receivers.refused).toBe(6);
    const log = await duck(s.db, 'SELECT event, success, attempts, error FROM ebb.alert_notifications ORDER BY event DESC');
    expect(log).toEqual([
      { event: 'sync.run.started', success: false, attempts: 3, error: 'answered 503: down' },
      { event: 'sync.run.completed', success: false, attempts: 3, error: 'answered 503: down' },
    ]);
    // Back up after one more refusal: the next run's first event goes through on its retry.
    s.receivers.down = false;
    s.receivers.refuseNext = 1;
    await s.load(contacts(3));
    const next = await s.run(0);
    expect(s.receivers.webhooks().map((h) => `${String(h.json.event)} ${String(h.json.run_id)}`)).toEqual([`sync.run.started ${next.run_id}`, `sync.run.completed ${next.run_id}`]);
    const [retried] = await duck(s.db, `SELECT success, attempts FROM ebb.alert_notifications WHERE run_id = '${next.run_id}' AND event = 'sync.run.started'`);
    expect(retried).toEqual({ success: true, attempts: 2 });
  }, 120_000);

  it('`ebb alerts test` sends a test notification to each channel and says how each went', async () => {
    const s = await setup({ channels });
    await s.load(contacts(1));
    const sent = await ebb(s.dir, ['alerts', 'test'], s.env);
    expect(sent.code, sent.stderr).toBe(0);
    expect(sent.stdout.split('\n').filter(Boolean).sort()).toEqual(['hook: sent', 'mail: sent', 'slack: sent']);
    expect(s.receivers.webhooks()[0]).toMatchObject({ verified: true, json: { event: 'test', project: 'alerting' } });
    expect(s.receivers.slack()).toHaveLength(1);
    expect(s.mail.mails[0].data).toContain('test notification');
    s.receivers.down = true;
    const down = await ebb(s.dir, ['alerts', 'test', 'slack'], s.env);
    expect(down.code).toBe(1);
    expect(down.stdout).toContain('slack: FAILED: answered 503: down');
  }, 60_000);

  it('no successful run for longer than `no_success.for` fires between runs (`ebb alerts check`), and resolves with the next success', async () => {
    const s = await setup({ channels: { hook: channels.hook }, rules: { no_success: { for: '1h' } } });
    await s.load(contacts(1));
    await s.run(0);
    expect(await ebb(s.dir, ['alerts', 'check'], s.env)).toMatchObject({ code: 0 });
    expect(alertEvents(s.receivers)).toEqual([]);
    // Two hours pass without a run (the clock of the warehouse's rows, not the test's, moves).
    await duck(s.db, "UPDATE ebb.sync_runs SET started_at = started_at - INTERVAL 2 HOUR, finished_at = finished_at - INTERVAL 2 HOUR; UPDATE ebb.syncs SET created_at = created_at - INTERVAL 3 HOUR");
    const status = JSON.parse((await ebb(s.dir, ['status', '--json'], s.env)).stdout) as Array<{ alerts_firing: Array<{ rule: string; message: string }> }>;
    expect(status[0].alerts_firing.map((a) => a.rule)).toEqual(['no_success']);
    expect(status[0].alerts_firing[0].message).toMatch(/^the last successful run finished 2h00m ago \(the limit is 1h\)$/);
    await ebb(s.dir, ['alerts', 'check'], s.env);
    await ebb(s.dir, ['alerts', 'check'], s.env);
    expect(alertEvents(s.receivers)).toEqual(['sync.alert.firing no_success']);
    await s.run(0);
    expect(alertEvents(s.receivers)).toEqual(['sync.alert.firing no_success', 'sync.alert.resolved no_success']);
  }, 60_000);
});

describe('alerting config', () => {
  it('an unknown channel, a literal webhook secret or SMTP password, and a bad rule are config errors (exit 3)', async () => {
    /** A project whose channels hold their credentials in the file, mailing to `to`. */
    const project = (to: string, rules: object = {}) =>
      makeProject({
        version: 1,
        name: 'bad',
        warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
        alerts: {
          channels: {
            hook: { type: 'webhook', url: 'http://127.0.0.1:9/hook', secret: 'written-in-the-file-1234' },
            mail: { type: 'email', smtp: { host: 'localhost', password: 'hunter2hunter2' }, from: 'ebb@x.io', to: [to] },
          },
          notify: ['hook', 'pager'],
          rules,
        },
      });
    const r = await ebb(await project('not an address', { run_time: { runs: 5 }, volume: { counts: ['rows'], deviation_percent: 10 } }), ['validate']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('alerts.channels.mail.to[0]: must be an email address');
    expect(r.stderr).toContain('alerts.rules.run_time: give `above: <duration>`, `above_median_times: <number>`, or both');
    expect(r.stderr).toMatch(/alerts\.rules\.volume\.counts\[0\]: Invalid option: expected one of "planned"\|"sent"\|"failed"\|"source_rows"/);
    // Once the shapes are right, the checks that span fields.
    const second = await ebb(await project('a@x.io'), ['validate']);
    expect(second.code).toBe(3);
    expect(second.stderr).toContain('alerts.notify: unknown channel "pager"; the channels under alerts.channels are: hook, mail');
    expect(second.stderr).toContain("alerts.channels.hook.secret: write it as {{ env_var('NAME') }}");
    expect(second.stderr).toContain("alerts.channels.mail.smtp.password: write it as {{ env_var('NAME') }}");
  });

  it("an admin's override of a sync's rules in the catalog wins over the code", async () => {
    const s = await setup({ channels: { hook: channels.hook }, rules: { run_failed: true } });
    await s.load(contacts(2));
    await s.run(0);
    await duck(s.db, `UPDATE ebb.syncs SET overrides = '{"alerts": {"rules": {"run_failed": false, "failed_records": {"above_percent": 10}}}}' WHERE sync_name = 's'`);
    s.app.rules = [rejectEmails(['p3@x.io'])];
    await s.load(contacts(3));
    await s.run(1);
    expect(alertEvents(s.receivers)).toEqual([]);
    await s.load(contacts(4));
    await s.run(2);
    expect(alertEvents(s.receivers)).toEqual(['sync.alert.firing failed_records']);
  }, 60_000);
});

describe('alerts between runs, in the worker', () => {
  it('`ebb worker` evaluates no_success as it starts looking at the queue, and notifies once', async () => {
    const s = await setup({ channels: { hook: channels.hook }, rules: { no_success: { for: '1h' } } });
    await s.load(contacts(1));
    expect((await ebb(s.dir, ['deploy'], s.env)).code).toBe(0);
    // Deployed three hours ago, never run: a schedule that never started.
    await duck(s.db, 'UPDATE ebb.syncs SET created_at = created_at - INTERVAL 3 HOUR');
    const worker = await ebb(s.dir, ['worker', '--once', '--poll-seconds', '0.1'], s.env);
    expect(worker.code, worker.stderr).toBe(0);
    expect(alertEvents(s.receivers)).toEqual(['sync.alert.firing no_success']);
    expect(String((s.receivers.webhooks()[0].json.alert as { message: string }).message)).toMatch(/^no successful run since the sync was deployed 3h00m ago \(the limit is 1h\)$/);
    await ebb(s.dir, ['worker', '--once', '--poll-seconds', '0.1'], s.env);
    expect(alertEvents(s.receivers)).toEqual(['sync.alert.firing no_success']);
  }, 60_000);
});
