/**
 * Rate limit and concurrency of a connection, shared by every ebb process through Redis
 * (SPEC §1, §6): three `ebb run` processes, each with its own project and DuckDB file but the
 * same project name and connection, send to one local sink at once. The sink's arrival times
 * must never hold more than `requests` in any window of `per_seconds`, nor more requests in
 * flight than `concurrency`. Without Redis the same three processes exceed the limit, which
 * shows that the test can fail.
 *
 * Needs Redis on 127.0.0.1:6379 (EBB_TEST_REDIS_URL overrides it): see test/support/services.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { duck, ebb, ebbProcess, makeProject, type CliResult } from './support/project.ts';
import { describeWithService } from './support/services.ts';
import { until } from './support/wait.ts';
import { Limiters, limiterId, limiterKeys, spacingMs } from '../engine/apply/limiter.ts';

const REDIS_URL = process.env.EBB_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Why Redis cannot be used, or null when it answers. */
async function redisProblem(): Promise<string | null> {
  const client = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 2000, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  let cause = '';
  client.on('error', (e: Error) => (cause = e.message));
  try {
    await client.connect();
    await client.ping();
    return null;
  } catch (e) {
    return `no Redis at ${REDIS_URL}: ${cause || (e as Error).message}`;
  } finally {
    client.disconnect();
  }
}

const problem = await redisProblem();

/** One request as the sink saw it. */
interface Arrival {
  at: number;
  process: string;
}

/** A local app that records when each request arrived and how many were in flight at once. */
class Sink {
  readonly arrivals: Arrival[] = [];
  inFlight = 0;
  maxInFlight = 0;
  url = '';
  private readonly server: Server;

  private constructor(latencyMs: number) {
    this.server = createServer((req, res) => {
      const at = performance.timeOrigin + performance.now();
      this.inFlight += 1;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      let text = '';
      req.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      req.on('end', () => {
        const body = JSON.parse(text) as { process: string };
        this.arrivals.push({ at, process: body.process });
        setTimeout(() => {
          // Counted out before the answer leaves, so the client cannot start the next one first.
          this.inFlight -= 1;
          res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ id: this.arrivals.length }));
        }, latencyMs);
      });
    });
  }

  static async start(latencyMs = 0): Promise<Sink> {
    const sink = new Sink(latencyMs);
    await new Promise<void>((resolve) => sink.server.listen(0, '127.0.0.1', resolve));
    sink.url = `http://127.0.0.1:${(sink.server.address() as AddressInfo).port}`;
    return sink;
  }

  /** Arrival times in order. */
  times(): number[] {
    return this.arrivals.map((a) => a.at).sort((a, b) => a - b);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** The most arrivals in any window [t, t + windowMs). */
function maxInWindow(times: number[], windowMs: number): number {
  let max = 0;
  let end = 0;
  for (let start = 0; start < times.length; start++) {
    while (end < times.length && times[end] < times[start] + windowMs) end++;
    max = Math.max(max, end - start);
  }
  return max;
}

/** Arrivals per second between the first and the last one. */
function rate(times: number[]): number {
  return ((times.length - 1) * 1000) / (times[times.length - 1] - times[0]);
}

interface Limits {
  rate_limit?: { requests: number; per_seconds: number };
  concurrency?: number;
}

/**
 * `count` projects that are copies of one project (same `name`, same connection `sink`), each
 * with its own DuckDB file holding `records` contacts; their records say which copy sent them.
 */
async function projects(name: string, sink: Sink, limits: Limits, count: number, records: number): Promise<string[]> {
  const dirs: string[] = [];
  for (let p = 1; p <= count; p++) {
    const dir = await makeProject({
      version: 1,
      name,
      warehouse: { type: 'duckdb', path: 'warehouse.duckdb' },
      connections: { sink: { plugin: 'http', config: { base_url: sink.url }, ...limits, retry: { delays_seconds: [] } } },
      syncs: [
        {
          name: 's',
          source: { table: 'contacts', key: 'id' },
          destination: { connection: 'sink', object: 'x', requests: { create: { method: 'POST', path: '/x', body: '{{ record | tojson }}' } } },
          strategy: 'create',
          mapping: { email: 'email', process: { value: `p${p}` } },
        },
      ],
    });
    await duck(join(dir, 'warehouse.duckdb'), `CREATE TABLE contacts AS SELECT i AS id, 'c' || i || '@p${p}.io' AS email FROM range(1, ${records + 1}) t(i)`);
    dirs.push(dir);
  }
  return dirs;
}

/**
 * Runs `ebb run s` in every project at once; every record of each must succeed. The projects have
 * no retries at all, so this also shows that waiting for the limiter is not a try.
 */
async function runAll(dirs: string[], env: Record<string, string>, records: number): Promise<void> {
  const results = await Promise.all(dirs.map((dir) => ebbProcess(dir, ['run', 's', '--json'], env)));
  for (const result of results) expectHealthy(result, records);
}

function expectHealthy(result: CliResult, records: number): void {
  expect(result.code, result.stderr + result.stdout).toBe(0);
  const { runs } = JSON.parse(result.stdout) as { runs: Array<{ health: string; counts: Record<string, number> }> };
  expect(runs[0].health).toBe('HEALTHY');
  expect(runs[0].counts).toMatchObject({ succeeded: records, failed: 0 });
}

/** A project name (and so a Redis key prefix) that no other test run uses. */
function uniqueName(what: string): string {
  return `limiter_${what}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** A port on which nothing listens: a free one, let go. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const sinks: Sink[] = [];
afterEach(async () => {
  await Promise.all(sinks.splice(0).map((s) => s.stop()));
});

describeWithService('limits shared by every process through Redis (EBB_REDIS_URL)', problem, 'test/limiter.test.ts', () => {
  let redis: Redis;
  const names: string[] = [];
  const env = { EBB_REDIS_URL: REDIS_URL };

  beforeAll(() => {
    if (problem) throw new Error(`these tests need Redis: ${problem}`);
    redis = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    if (!redis) return;
    // The keys would expire by themselves after the limiter's timeout; don't leave them around.
    for (const name of names) {
      const { bottleneck, window } = limiterKeys(name, 'sink');
      await redis.del(...(await redis.keys(bottleneck)), ...window);
    }
    redis.disconnect();
  });

  const requests = 20;
  const perSeconds = 1;
  const records = 60;

  it(`three processes at once never send more than ${requests} requests in any ${perSeconds} s window, at close to that rate`, async () => {
    const sink = await Sink.start();
    sinks.push(sink);
    const name = uniqueName('rate');
    names.push(name);
    const dirs = await projects(name, sink, { rate_limit: { requests, per_seconds: perSeconds } }, 3, records);
    await runAll(dirs, env, records);

    const times = sink.times();
    expect(times).toHaveLength(3 * records);
    const max = maxInWindow(times, perSeconds * 1000);
    const achieved = rate(times);
    console.log(`with Redis: at most ${max} requests in a ${perSeconds} s window (limit ${requests}); ${achieved.toFixed(1)} requests/s over ${((times.at(-1)! - times[0]) / 1000).toFixed(2)} s`);
    const slack = Math.min(...times.slice(requests).map((t, i) => t - times[i] - perSeconds * 1000));
    console.log(`least time beyond the window between request i and i+${requests}: ${slack.toFixed(1)} ms`);
    expect(max).toBeLessThanOrEqual(requests);
    expect(achieved).toBeGreaterThanOrEqual(0.85 * (requests / perSeconds));

    // The three processes really sent at the same time: each one's requests are spread over a
    // period that the others' requests overlap.
    const spans = ['p1', 'p2', 'p3'].map((p) => {
      const own = sink.arrivals.filter((a) => a.process === p).map((a) => a.at);
      expect(own).toHaveLength(records);
      return [Math.min(...own), Math.max(...own)];
    });
    expect(Math.max(...spans.map(([first]) => first))).toBeLessThan(Math.min(...spans.map(([, last]) => last)));

    // The state is named after the project and the connection, holds the limits, and expires.
    const settings = await redis.hgetall(`b_${limiterId(name, 'sink')}_settings`);
    expect(settings).toMatchObject({ id: limiterId(name, 'sink'), minTime: String(spacingMs({ requests, per_seconds: perSeconds })), maxConcurrent: '4' });
    const { bottleneck, window } = limiterKeys(name, 'sink');
    const keys = [...(await redis.keys(bottleneck)), ...(await redis.keys(`${limiterId(name, 'sink')}:*`))];
    expect(keys).toEqual(expect.arrayContaining([`b_${limiterId(name, 'sink')}_settings`, window[0]]));
    for (const key of keys) expect(await redis.pttl(key), key).toBeGreaterThan(0);
  });

  it('the same three processes without Redis exceed the limit (each keeps only its own)', async () => {
    const sink = await Sink.start();
    sinks.push(sink);
    const dirs = await projects(uniqueName('local'), sink, { rate_limit: { requests, per_seconds: perSeconds } }, 3, records);
    await runAll(dirs, { EBB_REDIS_URL: '' }, records);

    const times = sink.times();
    expect(times).toHaveLength(3 * records);
    const max = maxInWindow(times, perSeconds * 1000);
    console.log(`without Redis: at most ${max} requests in a ${perSeconds} s window (limit ${requests}); ${rate(times).toFixed(1)} requests/s`);
    expect(max).toBeGreaterThan(requests);
  });

  it('concurrency 2 across three processes: never more than 2 requests in flight at the app', async () => {
    const sink = await Sink.start(200);
    sinks.push(sink);
    const name = uniqueName('concurrency');
    names.push(name);
    const dirs = await projects(name, sink, { concurrency: 2 }, 3, 8);
    await runAll(dirs, env, 8);

    expect(sink.arrivals).toHaveLength(24);
    console.log(`with Redis, concurrency 2: at most ${sink.maxInFlight} requests in flight`);
    expect(sink.maxInFlight).toBeLessThanOrEqual(2);
    // The limit is used, not just respected.
    expect(sink.maxInFlight).toBe(2);
  });
});

describeWithService('limiters owned by an open engine', problem, 'test/limiter.test.ts', () => {
  it('closing one engine leaves the limiters and the Redis connection of another open; one engine shares one limiter between its runs', async () => {
    const saved = process.env.EBB_REDIS_URL;
    process.env.EBB_REDIS_URL = REDIS_URL;
    const [a, b] = [new Limiters(), new Limiters()];
    try {
      const config = { concurrency: 1 };
      const project = uniqueName('engines');
      // Two runs of one connection in one engine: one limiter, so one request at a time between them.
      let inFlight = 0;
      let most = 0;
      const request = async () => {
        most = Math.max(most, ++inFlight);
        await sleep(20);
        inFlight -= 1;
      };
      await Promise.all([...Array(4)].flatMap(() => [a.for('crm', config, project).schedule(request), a.for('crm', config, project).schedule(request)]));
      expect(most).toBe(1);
      expect(await b.for('crm', config, project).schedule(async () => 'b before')).toBe('b before');
      await a.close();
      const after = b.for('crm', config, project).schedule(async () => 'b after');
      expect(await Promise.race([after, sleep(5000).then(() => 'timed out')])).toBe('b after');
    } finally {
      if (saved === undefined) delete process.env.EBB_REDIS_URL;
      else process.env.EBB_REDIS_URL = saved;
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describeWithService('Redis lost in the middle of a run', problem, 'test/limiter.test.ts', () => {
  it('fails the run with an error that names the URL, in bounded time; what was sent succeeded, the rest is DELAYED, none failed or in doubt', async () => {
    const sink = await Sink.start();
    sinks.push(sink);
    const port = await freePort();
    // A Redis of its own, to be killed.
    const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    try {
      const url = `redis://127.0.0.1:${port}`;
      const probe = new Redis(url, { retryStrategy: (times) => (times > 40 ? null : 50) });
      probe.on('error', () => undefined);
      const failedToStart = new Promise<never>((_, reject) => server.once('error', (e) => reject(new Error(`these tests need redis-server: ${e.message}`))));
      await Promise.race([probe.ping(), failedToStart]).finally(() => probe.disconnect());

      const [dir] = await projects(uniqueName('lost'), sink, { rate_limit: { requests: 10, per_seconds: 1 } }, 1, 40);
      // It tries to reconnect for 2 s (EBB_REDIS_RECONNECT_SECONDS), then fails.
      const running = ebb(dir, ['run', 's', '--json'], { EBB_REDIS_URL: url, EBB_REDIS_RECONNECT_SECONDS: '2' });
      let ended = false;
      void running.then(() => (ended = true));
      await until('five requests, or the end of the run', () => sink.arrivals.length >= 5 || ended);
      server.kill('SIGKILL');
      const killed = Date.now();
      const result = await running;
      console.log(`Redis lost after ${sink.arrivals.length} requests: the run failed ${((Date.now() - killed) / 1000).toFixed(1)} s later`);
      expect(result.code, result.stderr + result.stdout).toBe(1);
      const { runs } = JSON.parse(result.stdout) as { runs: Array<{ health: string; error: string | null; counts: Record<string, number> }> };
      expect(runs[0].health).toBe('FAILED');
      expect(runs[0].error).toContain(`lost the connection to Redis at ${url}`);
      // What reached the app succeeded, with its answer; the rest was not sent and goes again in
      // the next run: nothing is failed, nor in doubt.
      expect(runs[0].counts, JSON.stringify(runs[0].counts)).toMatchObject({ succeeded: sink.arrivals.length, delayed: 40 - sink.arrivals.length, failed: 0, needs_review: 0 });
      expect(sink.arrivals.length).toBeLessThan(40);
      expect(Date.now() - killed, 'the run should fail about 2 s after Redis went away').toBeLessThan(8_000);
    } finally {
      server.kill('SIGKILL');
    }
  });
});

describe('the limiter in one process', () => {
  it('a stalled event loop does not release the requests that were due in a burst over the limit', async () => {
    const saved = process.env.EBB_REDIS_URL;
    delete process.env.EBB_REDIS_URL;
    const limiters = new Limiters();
    try {
      const requests = 10;
      const limiter = limiters.for('sink', { rate_limit: { requests, per_seconds: 0.5 }, concurrency: 4 }, uniqueName('stall'));
      const starts: number[] = [];
      await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          limiter.schedule(async () => {
            starts.push(performance.now());
            // Blocks the event loop, as a burst of CPU work in the process would.
            if (i === 12) for (const until = performance.now() + 300; performance.now() < until; );
          }),
        ),
      );
      expect(starts).toHaveLength(40);
      expect(maxInWindow(starts.sort((a, b) => a - b), 500)).toBeLessThanOrEqual(requests);
    } finally {
      if (saved !== undefined) process.env.EBB_REDIS_URL = saved;
      await limiters.close();
    }
  });
});

describe('Redis that is down', () => {
  it('fails the run at once with an error that names the URL without its password; nothing is sent', async () => {
    const sink = await Sink.start();
    sinks.push(sink);
    const port = await freePort();

    const [dir] = await projects(uniqueName('down'), sink, { rate_limit: { requests: 20, per_seconds: 1 } }, 1, 5);
    const started = Date.now();
    const result = await ebb(dir, ['run', 's', '--json'], { EBB_REDIS_URL: `redis://:hunter2secret@127.0.0.1:${port}` });
    const output = result.stdout + result.stderr;
    expect(result.code, output).toBe(1);
    const { runs } = JSON.parse(result.stdout) as { runs: Array<{ health: string; error: string | null; counts: Record<string, number> }> };
    expect(runs[0].health).toBe('FAILED');
    expect(runs[0].error).toContain(`cannot reach Redis at redis://:***@127.0.0.1:${port}`);
    expect(output).not.toContain('hunter2secret');
    expect(runs[0].counts.failed ?? 0).toBe(0);
    expect(sink.arrivals).toHaveLength(0);
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});
