/**
 * The conformance suite (test/plugin-conformance.ts) run against the two generic plugins, which
 * proves the suite on plugins known to work:
 *
 * - `file`: a JSONL file. It has no rate limit and never refuses a record, so its harness has no
 *   such faults and those scenarios are skipped. `seed` writes through a second session of the
 *   file plugin, keyed as ebb keys the sync (by id): the file knows records by key only.
 * - `http`: the fault-injecting contacts app (test/support/fault-server.ts): POST /contacts answers
 *   409 with the existing id for a known email, 422 for a refused record, and 429 with
 *   Retry-After on demand. Not `update`: these templates reach a contact by the id the app gave
 *   it, which ebb knows only for contacts it created, so a contact put there by someone else
 *   cannot be updated. Not `replace`: the http plugin cannot empty the app's object before the
 *   full set, so records left out would stay.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import filePlugin from '../../plugins/file/index.ts';
import { sessionContext } from '../support/plugin-context.ts';
import { FaultServer } from '../support/fault-server.ts';
import { describePlugin, type PluginHarness } from '../plugin-conformance.ts';

/** The file plugin writing `people.jsonl` in a temporary directory. */
export async function fileHarness(): Promise<PluginHarness> {
  const dir = await mkdtemp(join(tmpdir(), 'ebb-conformance-file-'));
  const object = 'people.jsonl';
  const mapping = { id: 'id', email: 'email', first_name: 'first_name', last_name: 'last_name', score: 'score' };
  return {
    connection: { plugin: 'file', config: { directory: dir } },
    destination: { object },
    mapping,
    strategies: ['create', 'update', 'upsert', 'mirror', 'replace', 'send'],
    async read() {
      const text = await readFile(join(dir, object), 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    async seed(record) {
      // Another writer of the same file: a session of the file plugin, keyed like the sync (by id).
      const session = await filePlugin.open(
        sessionContext(filePlugin, { config: { directory: dir }, projectDir: dir, destination: { connection: 'seed', object }, strategy: 'upsert', fields: Object.keys(mapping) }),
      );
      const [outcome] = await session.apply([{ key: String(record.id), action: 'create', record }]);
      await session.close(true);
      if (!outcome.success) throw new Error(`seeding ${JSON.stringify(record)} failed: ${outcome.error?.message}`);
    },
    // A file has no rate limit and takes every record: no rateLimitOnce, no rejectEmail.
    faults: { clear() {} },
    close: () => rm(dir, { recursive: true, force: true }),
  };
}

/** The http plugin against the fault-injecting contacts app. */
export async function httpHarness(): Promise<PluginHarness> {
  const server = await FaultServer.start();
  const fields = ['email', 'first_name', 'last_name', 'score'];
  const create = { method: 'POST', path: '/contacts', body: '{{ record | tojson }}', app_id: '{{ response.id }}' };
  return {
    connection: { plugin: 'http', config: { base_url: server.url } },
    destination: {
      object: 'contacts',
      // A repeated create answers 409 with the existing id.
      create_is_idempotent: true,
      requests: {
        create,
        send: create,
        update: { method: 'PATCH', path: '/contacts/{{ app_id | urlencode }}', body: '{{ record | tojson }}' },
        delete: { method: 'DELETE', path: '/contacts/{{ app_id | urlencode }}' },
      },
    },
    mapping: Object.fromEntries(fields.map((f) => [f, f])),
    strategies: ['create', 'upsert', 'mirror', 'send'],
    async read() {
      return [...server.contacts.values()].map((c) => Object.fromEntries(fields.map((f) => [f, c[f] ?? null])));
    },
    async seed(record) {
      server.insert(record);
    },
    faults: {
      rateLimitOnce: () => server.configure({ faults: [{ kind: 'rate_limit', firstRequests: 1, retryAfterSeconds: 1 }] }),
      rejectEmail: (email) => server.configure({ isBad: (record) => record.email === email }),
      clear: () => server.configure({ faults: [], isBad: () => false }),
    },
    close: () => server.stop(),
  };
}

describePlugin('file', fileHarness);
describePlugin('http', httpHarness);
