/**
 * `ebb serve` and its REST API, against a real server (real HTTP on a free port) over a real DuckDB
 * project. Every answer is checked against the server's own OpenAPI document (test/support/api.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { duck, ebb, makeProject, repoRoot } from './support/project.ts';
import { documentOf, startServer, type TestServer } from './support/api.ts';
import { loadProject } from '../engine/config/load.ts';
import { createServer } from '../engine/server/server.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A project with syncs of a `people` table to JSONL files. */
async function fileProject(rows = 3): Promise<{ dir: string; db: string }> {
  const sync = (name: string, tags: string[]) => ({
    name,
    tags,
    source: { table: 'people', key: 'id' },
    destination: { connection: 'out', object: `${name}.jsonl` },
    strategy: 'upsert',
    mapping: { id: 'id', name: 'name' },
  });
  const dir = await makeProject({
    version: 1,
    name: 'served',
    warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
    connections: { out: { plugin: 'file', config: { directory: './out' } } },
    syncs: [sync('people_a', ['daily']), sync('people_b', ['hourly'])],
  });
  const db = join(dir, 'warehouse.duckdb');
  await duck(db, `CREATE TABLE people AS SELECT range AS id, 'person ' || range AS name FROM range(${rows})`);
  return { dir, db };
}

async function serve(dir: string, options: Parameters<typeof startServer>[1] = {}): Promise<TestServer> {
  const server = await startServer(dir, options);
  cleanups.push(() => server.close());
  return server;
}

describe('the OpenAPI document and the docs page', () => {
  it('is a valid OpenAPI 3.1 document, and the docs page and its assets are served without a CDN', async () => {
    const { dir } = await fileProject();
    const api = await serve(dir);
    const doc = await documentOf(api.url);
    expect(doc.errors).toBeUndefined();
    expect(doc.valid).toBe(true);
    expect(doc.raw.openapi).toBe('3.1.0');
    const page = await fetch(`${api.url}/api/v1/docs`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('/api/v1/openapi.json');
    expect(html).not.toMatch(/https?:\/\//);
    const bundle = await fetch(`${api.url}/api/v1/docs/swagger-ui-bundle.js`);
    expect(bundle.status).toBe(200);
    expect((await bundle.text()).length).toBeGreaterThan(100_000);
  });

  it('answers an unknown endpoint with a problem+json 404', async () => {
    const { dir } = await fileProject();
    const api = await serve(dir);
    const answer = await fetch(`${api.url}/api/v1/nothing-here`);
    expect(answer.status).toBe(404);
    expect(answer.headers.get('content-type')).toContain('application/problem+json');
    expect(await answer.json()).toMatchObject({ type: 'urn:ebb:problem:not-found', status: 404, detail: expect.stringContaining('/api/v1/openapi.json') });
  });
});

describe('the token', () => {
  it('refuses to listen beyond loopback without a token', async () => {
    const { dir } = await fileProject();
    const server = createServer({ project: await loadProject(dir), log: () => undefined });
    cleanups.push(() => server.close());
    await expect(server.listen({ host: '0.0.0.0', port: 0 })).rejects.toThrow(/refusing to listen on 0\.0\.0\.0 without a token.*EBB_SERVER_TOKEN/);
  });

  it('with a token, every API request and /metrics needs it as a bearer token; the docs page does not', async () => {
    const { dir } = await fileProject();
    const token = 'a-long-random-token-0123456789';
    const api = await serve(dir, { token });
    for (const path of ['/api/v1/openapi.json', '/metrics']) {
      for (const authorization of [undefined, 'Bearer wrong', `Basic ${token}`, 'Bearer ', `Bearer ${token}x`]) {
        const answer = await fetch(api.url + path, { headers: authorization ? { authorization } : {} });
        expect(answer.status, `${path} with ${authorization}`).toBe(401);
        expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer/);
        expect(await answer.json()).toMatchObject({ type: 'urn:ebb:problem:unauthorized', status: 401 });
      }
    }
    expect((await fetch(`${api.url}/api/v1/openapi.json`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect((await fetch(`${api.url}/api/v1/docs`)).status).toBe(200);
  });
});

describe('ebb serve, the command', () => {
  const bin = join(repoRoot, 'bin', 'ebb.js');

  it('refuses --host 0.0.0.0 without EBB_SERVER_TOKEN, with exit 3 and what to do', async () => {
    const { dir } = await fileProject();
    const result = await ebb(dir, ['serve', '--host', '0.0.0.0', '--port', '0'], { EBB_SERVER_TOKEN: '' });
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/^error: refusing to listen on 0\.0\.0\.0 without a token/);
    expect(result.stderr).toContain('EBB_SERVER_TOKEN');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('serves the API from a process, with the token beyond loopback, and stops on SIGTERM', async () => {
    const { dir } = await fileProject();
    const token = 'process-token-0123456789abcdef';
    const child = spawn(process.execPath, [bin, 'serve', '--project-dir', dir, '--host', '0.0.0.0', '--port', '0'], { env: { ...process.env, EBB_SERVER_TOKEN: token }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    cleanups.push(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let log = '';
    child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no address in the log: ${log}`)), 20_000);
      child.stderr!.on('data', () => {
        const found = /is at (http:\/\/\S+?)\/ /.exec(log);
        if (found) {
          clearTimeout(timer);
          resolve(found[1].replace('0.0.0.0', '127.0.0.1'));
        }
      });
    });
    expect((await fetch(`${url}/api/v1/openapi.json`)).status).toBe(401);
    expect((await fetch(`${url}/api/v1/openapi.json`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(log).not.toContain(token);
  });
});
