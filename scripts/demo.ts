/**
 * `npm run demo`: ebb end to end, through the real CLI.
 *
 * Scaffolds ./demo with `ebb init`, starts a small CRM in this process (scripts/demo-crm.ts),
 * runs every sync, changes the warehouse and the CRM the way real life does, plans and runs
 * again, then shows the status, the audit trail and checks that the destinations match the
 * warehouse. Exits 1 when a step fails.
 */
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { startCrm, type Contact, type Crm } from './demo-crm.ts';

const repo = fileURLToPath(new URL('..', import.meta.url));
const ebbBin = join(repo, 'bin', 'ebb.js');
const demoDir = join(repo, 'demo');
const token = 'demo-token';

const tty = process.stdout.isTTY === true;
const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[22m` : s);
const dim = (s: string) => (tty ? `\x1b[2m${s}\x1b[22m` : s);
const say = (s = '') => process.stdout.write(`${s}\n`);

let step = 0;
function section(title: string): void {
  step += 1;
  say();
  say(bold(`━━━ ${step}. ${title} ${'━'.repeat(Math.max(3, 70 - title.length))}`));
}

/** A step that did not go as planned: the demo stops and exits 1. */
class DemoFailure extends Error {}

/** Runs `ebb ARGS` in `cwd`, its output on this terminal; a non-zero exit code is a failure. */
function ebb(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const where = relative(repo, cwd);
  say(dim(`$ ${where ? `(cd ${where}) ` : ''}ebb ${args.join(' ')}`));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ebbBin, ...args], { cwd, stdio: 'inherit', env: { ...process.env, ...env } });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new DemoFailure(`\`ebb ${args.join(' ')}\` ${signal ? `was killed by ${signal}` : `exited with code ${code}`}`));
    });
  });
}

/** The source changes of step 4: what happens in a warehouse between two runs. */
const sourceChanges: Array<{ what: string; sql: string[] }> = [
  {
    what: 'customer 1 changed their email; customers 2 and 3 their names',
    sql: [
      `update analytics.customers set email = 'grace.thompson@example.org' where customer_id = 1`,
      `update analytics.customers set first_name = 'Radia', last_name = 'Perlman' where customer_id = 2`,
      `update analytics.customers set last_name = 'Hamilton' where customer_id = 3`,
    ],
  },
  {
    what: 'customers 5 and 6 were deleted, with their orders',
    sql: [`delete from analytics.orders where customer_id in (5, 6)`, `delete from analytics.customers where customer_id in (5, 6)`],
  },
  {
    what: 'new customers 201, 202, 203 and a new lead 204 signed up',
    sql: [
      `insert into analytics.customers values
         (201, 'margaret.hamilton@example.com', 'Margaret', 'Hamilton', 'customer', timestamp '2026-11-01'),
         (202, 'john.backus@example.com', 'John', 'Backus', 'customer', timestamp '2026-11-01'),
         (203, 'sophie.wilson@example.com', 'Sophie', 'Wilson', 'customer', timestamp '2026-11-02'),
         (204, 'tim.berners-lee@example.com', 'Tim', 'Berners-Lee', 'lead', timestamp '2026-11-02')`,
    ],
  },
  { what: 'lead 8 became a customer', sql: [`update analytics.customers set lifecycle_stage = 'customer' where customer_id = 8`] },
  {
    what: 'new orders from customers 7, 8 and 201',
    sql: [
      `insert into analytics.orders values
         (1601, 7, 129.90, timestamp '2026-10-31'),
         (1602, 8, 49.00, timestamp '2026-10-31'),
         (1603, 201, 310.25, timestamp '2026-11-01'),
         (1604, 201, 18.50, timestamp '2026-11-02')`,
    ],
  },
];

/** What the warehouse holds after the changes; the destinations must match it at the end. */
interface Expected {
  customers: number;
  payingCustomers: number;
  orders: number;
}

/** Applies the source changes with @duckdb/node-api (no ebb process holds the file now). */
async function changeWarehouse(path: string): Promise<Expected> {
  const instance = await DuckDBInstance.create(path);
  const conn = await instance.connect();
  try {
    for (const change of sourceChanges) {
      for (const sql of change.sql) await conn.run(sql);
      say(`  • ${change.what}`);
    }
    const reader = await conn.runAndReadAll(
      `select (select count(*) from analytics.customers) as customers,
              (select count(*) from analytics.customers where lifecycle_stage = 'customer') as paying,
              (select count(*) from analytics.orders) as orders`,
    );
    const [customers, paying, orders] = reader.getRows()[0].map(Number);
    return { customers, payingCustomers: paying, orders };
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

/** The CRM contact with this email. */
function contactByEmail(crm: Crm, email: string): Contact {
  for (const contact of crm.contacts.values()) if (contact.email === email) return contact;
  throw new DemoFailure(`the CRM holds no contact with email ${email}; did the first run send the customers?`);
}

/** Number of lines of a file (the file plugin ends each with "\n"). */
async function lineCount(path: string): Promise<number> {
  const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new DemoFailure(`cannot read ${relative(repo, path)}: ${e.message}`);
  });
  return text.split('\n').filter((line) => line !== '').length;
}

async function main(): Promise<void> {
  section('Scaffold a project: ebb init demo');
  await rm(demoDir, { recursive: true, force: true });
  await ebb(['init', 'demo'], repo);

  section('Start the demo CRM (scripts/demo-crm.ts)');
  const crm = await startCrm({ token });
  const env = { CRM_PORT: String(crm.port), CRM_TOKEN: token };
  say(`CRM listening on http://127.0.0.1:${crm.port} (POST /contacts, PATCH|GET|DELETE /contacts/:id); CRM_PORT=${crm.port}`);

  try {
    await ebb(['check'], demoDir, env);

    section('First run: every sync sends everything');
    await ebb(['run', '--all'], demoDir, env);
    say(`The CRM now holds ${crm.contacts.size} contacts.`);

    section('Meanwhile, the data changes');
    say('In the warehouse (demo/warehouse.duckdb):');
    const expected = await changeWarehouse(join(demoDir, 'warehouse.duckdb'));
    say('In the CRM, by hand:');
    crm.contacts.delete(contactByEmail(crm, 'customer7@example.com').id);
    say('  • a sales rep deleted the contact of customer 7 (whose next update will answer 404)');
    const manualId = 'manual-1';
    crm.contacts.set(manualId, { id: manualId, email: 'margaret.hamilton@example.com', first_name: 'Margaret', notes: 'met at a conference' });
    say(`  • a sales rep entered Margaret Hamilton (new customer 201) as contact ${manualId} (the create will answer 409)`);

    section('Plan: what the next run of customers_to_crm will do (nothing is sent)');
    await ebb(['plan', 'customers_to_crm', '--limit', '5'], demoDir, env);

    section('Second run: only the changes are sent');
    await ebb(['run', '--all'], demoDir, env);

    section('Status of every sync');
    await ebb(['status'], demoDir, env);

    section('Audit trail: the latest outcomes of customers_to_crm');
    await ebb(['history', 'customers_to_crm', '--limit', '10'], demoDir, env);
    say();
    say('The two business retries (404 on update → create; 409 on create → update of the existing contact):');
    await ebb(['history', 'customers_to_crm', '--key', '7', '201', '--limit', '4'], demoDir, env);

    section('Summary');
    const jsonl = await lineCount(join(demoDir, 'out', 'customers.jsonl'));
    const csv = await lineCount(join(demoDir, 'out', 'orders.csv'));
    const margaret = crm.contacts.get(manualId);
    const checks: Array<[string, boolean]> = [
      [`CRM contacts: ${crm.contacts.size} (paying customers in the warehouse: ${expected.payingCustomers})`, crm.contacts.size === expected.payingCustomers],
      [`demo/out/customers.jsonl: ${jsonl} lines (customers: ${expected.customers})`, jsonl === expected.customers],
      [`demo/out/orders.csv: ${csv} lines (a header and ${expected.orders} orders)`, csv === expected.orders + 1],
      [
        `Margaret Hamilton kept her contact ${manualId} and its notes, and got the synced fields`,
        margaret?.notes === 'met at a conference' && margaret.source_system === 'ebb-demo',
      ],
    ];
    for (const [text, ok] of checks) say(`  ${ok ? '✓' : '✗'} ${text}`);
    const failed = checks.filter(([, ok]) => !ok);
    if (failed.length) throw new DemoFailure(`the destinations do not match the warehouse (${failed.length} check${failed.length > 1 ? 's' : ''} failed)`);

    say();
    say(bold('Try next') + ' (in demo/; the state and the audit trail are tables in demo/warehouse.duckdb, schema ebb):');
    say('  ebb history customers_to_crm --key 1         what was sent for one record, and what the CRM answered');
    say('  ebb runs customers_to_crm                    every execution, with counts and durations');
    say('  ebb plan customers_to_file --full-resync     what a full resync would send');
    say('  ebb validate                                 after editing the mapping in demo/ebb.yml');
    say('  With the DuckDB CLI: select * from ebb.sync_record_history where sync_name = \'customers_to_crm\' order by recorded_at desc;');
    say(dim('  The CRM stopped with this demo: to run customers_to_crm again, run `npm run demo` (or serve your own app on $CRM_PORT).'));
  } finally {
    await crm.close();
  }
}

try {
  await main();
} catch (e) {
  process.stderr.write(`\ndemo failed: ${e instanceof Error ? e.message : String(e)}\n`);
  if (!(e instanceof DemoFailure) && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  process.exitCode = 1;
}
