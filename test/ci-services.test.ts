/**
 * CI cannot hide a missing database: with EBB_REQUIRE_SERVICES set (as `.ci/run` sets it), the
 * PostgreSQL and Redis suites fail when their server is missing; without it they skip, saying why.
 * Each case runs vitest on those two files with the servers pointed at a closed port.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { repoRoot } from './support/project.ts';

/** A local port that nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Runs vitest on the two server suites, without the servers; returns its exit code and output. */
async function vitestWithoutServers(require: boolean): Promise<{ code: number | null; output: string }> {
  const port = await closedPort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    EBB_TEST_POSTGRES_URL: `postgresql://postgres@127.0.0.1:${port}/test`,
    EBB_TEST_REDIS_URL: `redis://127.0.0.1:${port}`,
  };
  delete env.CI;
  delete env.EBB_REQUIRE_SERVICES;
  if (require) env.EBB_REQUIRE_SERVICES = '1';
  const child = spawn(process.execPath, [join(repoRoot, 'node_modules', 'vitest', 'vitest.mjs'), 'run', 'test/plugins/postgres.test.ts', 'test/limiter.test.ts', '-t', 'has its server|postgres plugin|through Redis|Redis lost'], { cwd: repoRoot, env });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, output };
}

describe('tests that need PostgreSQL or Redis', () => {
  it('fail, naming the missing server, when servers are required', async () => {
    const { code, output } = await vitestWithoutServers(true);
    expect(code, output).toBe(1);
    expect(output).toMatch(/no PostgreSQL at postgresql:\/\/postgres@127\.0\.0\.1:\d+\/test/);
    expect(output).toMatch(/no Redis at redis:\/\/127\.0\.0\.1:\d+/);
    expect(output).toMatch(/3 failed/);
  });

  it('skip, saying why, when they are not', async () => {
    const { code, output } = await vitestWithoutServers(false);
    expect(code, output).toBe(0);
    expect(output).toContain('skipping "postgres plugin"');
    expect(output).toContain('skipping "limits shared by every process through Redis (EBB_REDIS_URL)"');
    expect(output).not.toMatch(/\d+ failed/);
  });
});
