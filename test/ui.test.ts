/**
 * The Sync Manager's page in real Chromium, against the real `ebb serve` server on a DuckDB
 * project with syncs into a file and into a local CRM that refuses one record. Each step does
 * what a user does with the mouse or the keyboard, and the tests take the README's screenshots.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { stringify } from 'yaml';
import type { Browser, Page } from 'playwright-core';
import { duck, ebb, makeProject, repoRoot } from './support/project.ts';
import { CrmApp, rejectEmails } from './support/crm-app.ts';
import { launchChromium } from './support/browser.ts';
import { loadProject } from '../engine/config/load.ts';
import { createServer, type EbbServer } from '../engine/server/server.ts';

/**
 * The README's screenshots: written to docs/screenshots with EBB_SCREENSHOTS=1, else to a temporary
 * folder (taken all the same), so that a test run leaves the working tree as it was.
 */
const shots = process.env.EBB_SCREENSHOTS ? join(repoRoot, 'docs', 'screenshots') : await mkdtemp(join(tmpdir(), 'ebb-shots-'));
const refused = 'ada.3@example.com';
/** The CRM accepts this one without saying its id: ebb cannot tell whether it holds it (NEEDS_REVIEW). */
const inDoubt = 'ada.7@example.com';

let crm: CrmApp;
let server: EbbServer;
let url: string;
let browser: Browser;
let page: Page;
const errors: string[] = [];

async function project(): Promise<string> {
  const config = {
    version: 1,
    name: 'ui_test',
    warehouse: { type: 'duckdb', path: 'warehouse.duckdb', state_schema: 'ebb' },
    connections: {
      files: { plugin: 'file', config: { directory: './out' } },
      // A rate limit makes a run last a few seconds: long enough to watch it in progress.
      crm: { plugin: 'http', config: { base_url: crm.url }, rate_limit: { requests: 8, per_seconds: 1 }, concurrency: 2, retry: { delays_seconds: [0.1] } },
    },
    syncs: [
      {
        name: 'contacts_to_crm',
        description: 'Customers into the CRM',
        tags: ['crm'],
        source: { table: 'analytics.customers', key: 'customer_id' },
        destination: {
          connection: 'crm',
          object: 'contacts',
          requests: {
            create: { method: 'POST', path: '/contacts', body: '{{ record | tojson }}', app_id: '{{ response.id }}' },
            update: { method: 'PATCH', path: '/contacts/{{ app_id }}', body: '{{ record | tojson }}' },
            delete: { method: 'DELETE', path: '/contacts/{{ app_id }}' },
          },
        },
        strategy: 'upsert',
        // Small batches: a cancelled run stops between them.
        batch_size: 2,
        mapping: { email: 'email', name: { sql: "first_name || ' ' || last_name" } },
      },
      {
        name: 'customers_to_file',
        tags: ['files'],
        source: { table: 'analytics.customers', key: 'customer_id' },
        destination: { connection: 'files', object: 'customers.jsonl' },
        strategy: 'mirror',
        mapping: { email: 'email', first_name: 'first_name' },
      },
      {
        name: 'leads_to_file',
        tags: ['files'],
        source: { table: 'analytics.customers', key: 'customer_id' },
        destination: { connection: 'files', object: 'leads.csv' },
        strategy: 'upsert',
        mapping: { email: 'email' },
      },
    ],
  };
  const dir = await makeProject(config);
  // Customer 5's first name is markup: the page must show it as text.
  await duck(
    join(dir, 'warehouse.duckdb'),
    `CREATE SCHEMA analytics;
     CREATE TABLE analytics.customers AS
       SELECT i AS customer_id, 'ada.' || i || '@example.com' AS email,
              CASE WHEN i = 5 THEN '<img src=x onerror="window.__xss=1">' ELSE 'Ada' END AS first_name, 'Lovelace ' || i AS last_name
       FROM range(1, 25) t(i)`,
  );
  // leads_to_file ran once, then left ebb.yml: the catalog keeps it (paused, with its state) until
  // someone deletes it, which is what the Delete button is for.
  const run = await ebb(dir, ['run', 'leads_to_file']);
  expect(run.code, run.stderr).toBe(0);
  await writeFile(join(dir, 'ebb.yml'), stringify({ ...config, syncs: config.syncs.filter((s) => s.name !== 'leads_to_file') }));
  return dir;
}

/** Loads the page at a route afresh (a new document: nothing left open by an earlier step). */
async function visit(route: string): Promise<void> {
  await page.goto('about:blank');
  await page.goto(`${url}/${route}`);
}

/** The row of a sync in the list. */
const row = (name: string) => page.locator(`tr[data-sync="${name}"]`);

/** A screenshot of the page's first 1280×`height` pixels. */
async function shot(name: string, height = 800): Promise<void> {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true, clip: { x: 0, y: 0, width: 1280, height } });
}

beforeAll(async () => {
  crm = await CrmApp.start();
  crm.rules = [rejectEmails([refused]), (r) => (r.method === 'POST' && r.body?.email === inDoubt ? { status: 201, body: { ok: true } } : undefined)];
  const dir = await project();
  server = createServer({ project: await loadProject(dir), scheduler: false, log: () => undefined });
  ({ url } = await server.listen({ port: 0 }));
  await mkdir(shots, { recursive: true });
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (e) => errors.push(e.message));
  // A refusal the page shows (422, 409) is logged by Chromium too; anything else (a blocked script, a CSP violation) is an error.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource: the server responded with a status of 4')) errors.push(m.text());
  });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await crm?.stop();
  if (!process.env.EBB_SCREENSHOTS) await rm(shots, { recursive: true, force: true });
});

describe('the Sync Manager in Chromium', () => {
  it('lists the syncs, and filters them by tag', async () => {
    await visit('');
    for (const name of ['contacts_to_crm', 'customers_to_file', 'leads_to_file']) await row(name).waitFor();
    await page.getByLabel('Tag').fill('files');
    await page.getByLabel('Tag').press('Enter');
    await row('contacts_to_crm').waitFor({ state: 'detached' });
    expect(await page.locator('tr[data-sync]').count()).toBe(2);
    await page.getByLabel('Tag').fill('');
    await page.getByLabel('Tag').press('Enter');
    await row('contacts_to_crm').waitFor();
  });

  it('triggers a run and shows it live, with its progress, until its counts', async () => {
    await row('contacts_to_crm').getByRole('link', { name: 'contacts_to_crm' }).click();
    await page.getByRole('heading', { level: 1, name: 'contacts_to_crm' }).waitFor();
    await page.getByRole('button', { name: 'Trigger now' }).click();
    await page.getByRole('heading', { name: /Run in progress/ }).waitFor();
    // 24 records at 8 a second: the page shows how many are sent while the run goes on.
    await page.getByText(/of 24 records/).waitFor({ timeout: 20_000 });
    await shot('run-in-progress');
    await page.getByRole('heading', { name: /^Last run/ }).waitFor({ timeout: 30_000 });
    // One refused, one in doubt.
    expect(await page.locator('.live-run').textContent()).toMatch(/22\s*synced, 2\s*failed/);
    // The page reloads the sync when the run ends: 24 records tracked, 2 failing.
    await page.locator('.metrics div', { hasText: 'Records' }).getByText('24', { exact: true }).waitFor();
    await page.locator('.metrics div', { hasText: 'Failing records' }).getByText('2', { exact: true }).waitFor();
  });

  it('finds the failed record by key, shows the app answer, and resyncs it', async () => {
    await page.getByRole('link', { name: 'Record debugger' }).click();
    const failing = page.locator('table.records tbody tr');
    await failing.first().waitFor();
    expect(await failing.count()).toBe(2);
    expect(await failing.filter({ hasText: 'FAILED' }).textContent()).toContain(`invalid email ${refused}`);
    await failing.filter({ hasText: 'NEEDS_REVIEW' }).getByRole('link', { name: '7' }).waitFor();
    await page.getByLabel('Record key').fill('3');
    await page.getByRole('button', { name: 'Find' }).click();
    await page.getByRole('heading', { name: 'Record 3' }).waitFor();
    const history = page.locator('.history li');
    await history.first().waitFor();
    await history.first().getByText('What was sent, and what the app answered').click();
    expect(await history.first().locator('pre[aria-label="What the app answered"]').textContent()).toContain(`invalid email ${refused}`);
    expect(await history.first().locator('pre[aria-label="What was sent"]').textContent()).toContain(refused);
    await shot('record-debugger', 1300);
    await page.locator('.record').getByRole('button', { name: 'Resync', exact: true }).click();
    await page.getByText('Record 3 will be sent again in the next run.').waitFor();
    await page.locator('.record .metrics').getByText('RESYNC_REQUESTED').waitFor();
  });

  it('settles the record in doubt: the app does not hold it', async () => {
    await visit('#/syncs/contacts_to_crm/records?key=7');
    await page.locator('.record .metrics').getByText('NEEDS_REVIEW').waitFor();
    await page.getByRole('button', { name: 'It is not in the app' }).click();
    await page.getByText('Record 7 is not in the app: the next run creates it.').waitFor();
    await page.getByRole('form', { name: 'Settle the record in doubt' }).waitFor({ state: 'detached' });
    expect(await page.locator('.record .metrics .badge').textContent()).not.toBe('NEEDS_REVIEW');
  });

  it('runs again: the resynced record goes through, and the chart shows both runs', async () => {
    crm.rules = [];
    await page.getByRole('link', { name: 'contacts_to_crm' }).click();
    await page.getByRole('button', { name: 'Trigger now' }).click();
    await page.getByRole('heading', { name: /^Last run/ }).waitFor({ timeout: 30_000 });
    expect(await page.locator('.live-run').textContent()).toMatch(/2\s*synced, 0\s*failed/);
    await page.locator('figure.chart canvas').waitFor();
    expect(await page.locator('table.runs tbody tr').count()).toBe(2);
    await shot('sync-page', 1100);
  });

  it('shows the plan of the next run of a sync that never ran: every record is new', async () => {
    await visit('#/syncs/customers_to_file');
    await page.getByRole('button', { name: 'Compute the plan' }).click();
    await page.locator('.plan').getByText('records need action.').waitFor();
    expect(await page.locator('.plan strong').first().textContent()).toBe('24');
    expect(await page.locator('.plan .counts').textContent()).toContain('NEW24');
    expect(await page.locator('.plan table tbody tr').count()).toBe(10);
  });

  it('shows record values as text, never as markup', async () => {
    await visit('#/syncs/contacts_to_crm/records?key=5');
    await page.getByRole('heading', { name: 'Record 5' }).waitFor();
    expect(await page.locator('pre[aria-label="The transformed record"]').textContent()).toContain('"name": "<img src=x onerror=\\"window.__xss=1\\"> Lovelace 5"');
    expect(await page.locator('main img').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
    // And should markup ever slip through, the page runs no script but its own.
    expect((await fetch(`${url}/`)).headers.get('content-security-policy')).toMatch(/script-src 'self' 'sha256-[^']+'(;|$)/);
  });

  it('pauses a sync and starts it again', async () => {
    await visit('#/syncs');
    await row('customers_to_file').getByRole('button', { name: /^Pause/ }).click();
    await row('customers_to_file').getByText('PAUSED').waitFor();
    await page.getByText('customers_to_file is paused').waitFor();
    await row('customers_to_file').getByRole('button', { name: /^Start/ }).click();
    await row('customers_to_file').getByText('ACTIVE').waitFor();
  });

  it('edits an override, refuses a bad value with a message, and reverts', async () => {
    await visit('#/syncs/customers_to_file');
    await page.getByRole('button', { name: 'Edit overrides' }).click();
    await page.getByLabel('Batch size').fill('0');
    await page.getByRole('button', { name: 'Save overrides' }).click();
    const alert = page.locator('section[aria-labelledby="overrides-title"] [role="alert"]');
    await alert.waitFor();
    expect(await alert.textContent()).toContain('batch_size');
    await page.getByLabel('Batch size').fill('25');
    await page.getByRole('button', { name: 'Save overrides' }).click();
    await page.getByText('overrides saved (batch_size)').waitFor();
    await page.locator('pre[aria-label="The admin overrides"]').getByText('"batch_size": 25').waitFor();
    await page.getByRole('button', { name: 'Revert to code' }).click();
    await page.getByText('None: the sync runs as its code says.').waitFor();
  });

  it('deletes a sync through the confirmation dialog', async () => {
    await visit('#/syncs');
    await row('leads_to_file').getByRole('button', { name: /^Delete/ }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete leads_to_file?' });
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    await row('leads_to_file').getByRole('button', { name: /^Delete/ }).click();
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await page.getByText('leads_to_file is deleted.').waitFor();
    await row('leads_to_file').waitFor({ state: 'detached' });
    expect(await page.locator('tr[data-sync]').count()).toBe(2);
    await shot('sync-list');
  });

  it('works with the keyboard alone: Tab to a button, Enter presses it', async () => {
    await visit('#/syncs');
    await row('customers_to_file').waitFor();
    let focused = '';
    for (let i = 0; i < 60 && focused !== 'Trigger now customers_to_file'; i++) {
      await page.keyboard.press('Tab');
      focused = await page.evaluate(() => document.activeElement?.textContent?.replace(/\s+/g, ' ').trim() ?? '');
    }
    expect(focused).toBe('Trigger now customers_to_file');
    // The focus is visible: the outline of :focus-visible.
    expect(await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle)).toBe('solid');
    await page.keyboard.press('Enter');
    await page.getByText(/Run .* of customers_to_file started/).waitFor();
  });

  it('cancels a full resync in progress: the records not sent wait for the next run', async () => {
    await visit('#/syncs/contacts_to_crm');
    await page.getByRole('button', { name: 'Full resync' }).click();
    await page.getByRole('dialog', { name: 'Send every record of contacts_to_crm again?' }).getByRole('button', { name: 'Resync every record' }).click();
    // At once: the rate limit makes the run last seconds, so it is still going.
    await page.getByRole('button', { name: 'Cancel the run' }).click();
    await page.getByRole('heading', { name: /^Last run/ }).waitFor({ timeout: 30_000 });
    expect(await page.locator('.live-run .badge').textContent()).toBe('DELAYED');
    expect(await page.locator('.live-run').textContent()).toMatch(/\d+ delayed/);
  });

  it('reads on a phone: one card per sync, nothing wider than the screen', async () => {
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
    try {
      await phone.goto(`${url}/#/syncs`);
      await phone.locator('tr[data-sync="contacts_to_crm"]').waitFor();
      expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      expect(await phone.locator('tr[data-sync="contacts_to_crm"]').evaluate((tr) => getComputedStyle(tr).display)).toBe('block');
      await phone.screenshot({ path: join(shots, 'sync-list-phone.png') });
    } finally {
      await phone.close();
    }
  });

  it('asks a server with a token for it, and shows the refusal of a read-only server', async () => {
    const dir = await makeProject({
      version: 1,
      name: 'guarded',
      warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
      connections: { files: { plugin: 'file', config: { directory: './out' } } },
      syncs: [{ name: 'guarded_sync', source: { query: 'select 1 as id', key: 'id' }, destination: { connection: 'files', object: 'ids.jsonl' }, strategy: 'upsert', mapping: { id: 'id' } }],
    });
    const guarded = createServer({ project: await loadProject(dir), scheduler: false, token: 'a-long-secret-token', readOnly: true, log: () => undefined });
    const other = await browser.newPage();
    try {
      const { url: guardedUrl } = await guarded.listen({ port: 0 });
      await other.goto(`${guardedUrl}/#/syncs`);
      await other.getByLabel('Token').fill('a-long-secret-token');
      await other.getByRole('button', { name: 'Use this token' }).click();
      await other.locator('tr[data-sync="guarded_sync"]').waitFor();
      await other.locator('tr[data-sync="guarded_sync"]').getByRole('button', { name: /^Pause/ }).click();
      expect(await other.getByRole('alert').textContent()).toContain('--read-only');
      // The token stays in this tab's session storage, never in the address.
      expect(other.url()).not.toContain('a-long-secret-token');
    } finally {
      await other.close();
      await guarded.close();
    }
  });

  it('ran without an error in the page', () => {
    expect(errors).toEqual([]);
  });
});
