/**
 * The rate limit and concurrency of a connection (SPEC §1, §6), shared by every sync that uses
 * the connection. Without `EBB_REDIS_URL` they hold within this process. With it, their state
 * lives in Redis, so every ebb process of the same project shares them: `concurrency` counts the
 * requests in flight in all processes, and `rate_limit` counts the requests of all processes.
 *
 * Two mechanisms work together:
 * - bottleneck (clustered through Redis when `EBB_REDIS_URL` is set) holds `concurrency` and
 *   spaces the starts evenly, `per_seconds / requests` apart;
 * - a window makes the limit hard at the app's end. Spacing alone is not enough: a request that
 *   leaves late (a busy event loop, a slow answer from Redis) while the next leaves on time puts
 *   `requests + 1` arrivals in a window. The window counts each request from the moment it may
 *   start until its answer came back, the latest it can have reached the app; a request starts
 *   only while fewer than `requests` were counted in the last `per_seconds`, and not sooner than
 *   half the spacing after the one before it, so that the requests that waited do not leave in a burst.
 *   An answer counts for 1% longer than `per_seconds`, so that a clock that disagrees a little
 *   (Redis' with the app's, after a correction) cannot let one request too many into the app's window.
 *
 * Waiting here is not a try: apply counts answers, not waits.
 */
import type Bottleneck from 'bottleneck';
import type { Redis } from 'ioredis';
import { createRequire } from 'node:module';
import pLimit from 'p-limit';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConnectionConfig } from '../config/schema.ts';
import { EbbError } from '../errors.ts';
import { addSecret } from '../redact.ts';

/** What the engine needs of a connection's limiter. */
export interface ConnectionLimiter {
  /** Runs a request when the connection's rate limit and concurrency allow it. */
  schedule<T>(request: () => Promise<T>): Promise<T>;
}

/** The Redis of `EBB_REDIS_URL` cannot be reached, or was lost: the run fails, no record does. */
export class LimiterUnavailableError extends EbbError {}

type LimitConfig = Pick<ConnectionConfig, 'rate_limit' | 'concurrency'>;
type RateLimit = NonNullable<ConnectionConfig['rate_limit']>;

/** How long one request may hold its place; after that a process that died gives it back. */
const HOLD_LIMIT_MS = 5 * 60_000;
/** How long the first connection to Redis may take before the run fails. */
const REDIS_READY_TIMEOUT_MS = 10_000;
/** How long to try to reconnect after Redis went away mid-run before the run fails: EBB_REDIS_RECONNECT_SECONDS, default 15. */
function reconnectMs(): number {
  return Number(process.env.EBB_REDIS_RECONNECT_SECONDS ?? 15) * 1000;
}
/** How much longer than `per_seconds` an answered request counts, as a share of `per_seconds`. */
const MARGIN = 0.01;
/** How often to ask again when the window is full of requests that have no answer yet. */
const POLL_MS = 20;

/** The time between two request starts on a connection with this rate limit. */
export function spacingMs(rate: ConnectionConfig['rate_limit']): number {
  return rate ? Math.ceil((rate.per_seconds * 1000) / rate.requests) : 0;
}

/**
 * The least time between two starts that the window allows: half the spacing, so that it leaves
 * the spacing to bottleneck and steps in only when starts bunch up (after a stall, or when the
 * window was full and several requests waited for the same moment).
 */
function minGapMs(rate: RateLimit): number {
  return (rate.per_seconds * 1000) / rate.requests / 2;
}

/** How long an answered request counts: `per_seconds` and the margin, in milliseconds. */
function windowOf(rate: RateLimit): number {
  return rate.per_seconds * 1000 * (1 + MARGIN);
}

/** The name of a connection's limiter state in Redis: the project and the connection. */
export function limiterId(project: string, connection: string): string {
  return `ebb:${project}:${connection}`;
}

/** The Redis keys of a connection's limiter: bottleneck's, then the window's. */
export function limiterKeys(project: string, connection: string): { bottleneck: string; window: string[] } {
  const id = limiterId(project, connection);
  return { bottleneck: `b_${id}_*`, window: [`${id}:answered`, `${id}:in_flight`, `${id}:next_start`] };
}

/** `EBB_REDIS_URL` as it may be shown: without its password. */
export function displayRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(an unparsable URL)';
  }
}

/** Counts the requests of the last `per_seconds`: a place is taken before a request, given back after its answer. */
interface RateWindow {
  /** Takes a place for `token`: 0, or the milliseconds to wait before asking again. */
  take(token: string): Promise<number>;
  /** The request of `token` was answered: it keeps counting until `per_seconds` (and the margin) from now. */
  give(token: string): Promise<void>;
}

/** The window of one process. */
class LocalWindow implements RateWindow {
  private readonly inFlight = new Set<string>();
  /** When the answers came, oldest first. */
  private readonly answered: number[] = [];
  private after = 0;

  constructor(
    private readonly rate: RateLimit,
    /** The least time between two starts. */
    private readonly gapMs = minGapMs(rate),
  ) {}

  async take(token: string): Promise<number> {
    const windowMs = windowOf(this.rate);
    const now = performance.now();
    while (this.answered.length > 0 && this.answered[0] <= now - windowMs) this.answered.shift();
    const excess = this.inFlight.size + this.answered.length - this.rate.requests;
    if (excess < 0 && now >= this.after) {
      this.inFlight.add(token);
      this.after = now + this.gapMs;
      return 0;
    }
    if (excess < 0) return Math.max(1, this.after - now);
    return excess < this.answered.length ? Math.max(1, this.answered[excess] + windowMs - now, this.after - now) : POLL_MS;
  }

  async give(token: string): Promise<void> {
    this.inFlight.delete(token);
    this.answered.push(performance.now());
  }
}

/**
 * The window in Redis, on Redis' clock: a sorted set of answered requests (by the time of the
 * answer) and one of requests in flight (by the time their hold runs out).
 */
const TAKE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local window, limit, hold, ttl, gap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
-- A request whose process died counts as answered when its hold ran out.
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'WITHSCORES')
for i = 1, #stale, 2 do redis.call('ZADD', KEYS[1], stale[i + 1], stale[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local inflight, answered = redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[1])
local excess = inflight + answered - limit
local after = tonumber(redis.call('GET', KEYS[3]) or '0')
if excess < 0 and now >= after then
  redis.call('ZADD', KEYS[2], now + hold, ARGV[3])
  redis.call('SET', KEYS[3], tostring(now + gap), 'PX', ttl)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  return '0'
end
if excess < 0 then
  return tostring(math.max(1, after - now))
end
if excess < answered then
  local oldest = redis.call('ZRANGE', KEYS[1], excess, excess, 'WITHSCORES')
  return tostring(math.max(1, tonumber(oldest[2]) + window - now, after - now))
end
return '-1'
`;

const GIVE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
`;

type WindowCommands = {
  ebbWindowTake(answered: string, inFlight: string, after: string, windowMs: number, limit: number, token: string, holdMs: number, ttlMs: number, gapMs: number): Promise<string>;
  ebbWindowGive(answered: string, inFlight: string, token: string, ttlMs: number): Promise<number>;
};

/** The window shared by every process, in Redis. */
class RedisWindow implements RateWindow {
  private readonly keys: [string, string, string];
  private readonly ttlMs: number;

  constructor(
    private readonly redis: SharedRedis,
    id: string,
    private readonly rate: RateLimit,
    private readonly holdMs: number,
  ) {
    this.keys = [`${id}:answered`, `${id}:in_flight`, `${id}:next_start`];
    // Idle keys disappear once nothing in them can count any more.
    this.ttlMs = Math.ceil(rate.per_seconds * 1000 + holdMs + 60_000);
  }

  async take(token: string): Promise<number> {
    let answer: string;
    try {
      answer = await this.redis.client.ebbWindowTake(...this.keys, windowOf(this.rate), this.rate.requests, token, this.holdMs, this.ttlMs, minGapMs(this.rate));
    } catch (e) {
      throw new LimiterUnavailableError(`Redis at ${this.redis.shown} (EBB_REDIS_URL) failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    const wait = Number(answer);
    return wait < 0 ? POLL_MS : wait;
  }

  async give(token: string): Promise<void> {
    await this.redis.client.ebbWindowGive(this.keys[0], this.keys[1], token, this.ttlMs);
  }
}

/** Runs a request once its window has room, and counts it until its answer. */
async function inWindow<T>(window: RateWindow, request: () => Promise<T>): Promise<T> {
  const token = randomUUID();
  for (let wait = await window.take(token); wait > 0; wait = await window.take(token)) await sleep(wait);
  try {
    return await request();
  } finally {
    // A failed give leaves the place taken until its hold runs out: slower, never over the limit.
    await window.give(token).catch(() => undefined);
  }
}

/** The one Redis connection of a set of limiters, shared by the limiters of every connection. */
interface SharedRedis {
  /** EBB_REDIS_URL without its password. */
  shown: string;
  client: Redis & WindowCommands;
  connection: Bottleneck.IORedisConnection;
  /** Rejects when Redis is lost for good; every waiting request then fails. */
  lost: Promise<never>;
  close(): Promise<void>;
}

interface Entry {
  /** Without Redis: the whole limiter. */
  local?: ConnectionLimiter['schedule'];
  limiter?: Bottleneck;
  job?: Bottleneck.JobOptions;
  window?: RateWindow;
  redis?: SharedRedis;
  /** Resolves when the limiter can take requests (at once, without Redis). */
  ready: Promise<void>;
}

/**
 * The limiters of one open engine, or of the steps of a long-running process: one per project
 * connection, created on first use, so that the runs of the same connection share it; and at
 * most one connection to Redis. Closing them closes only these: another engine in the same
 * process keeps its own.
 */
export class Limiters {
  private readonly entries = new Map<string, Entry>();
  private redis?: SharedRedis;

  /** The limiter of a project's connection, created on first use. */
  for(connection: string, config: LimitConfig, project: string): ConnectionLimiter {
    const key = JSON.stringify([project, connection]);
    let entry = this.entries.get(key);
    if (!entry) {
      const created = createLimiter(limiterId(project, connection), config, (url) => this.sharedRedis(url));
      this.entries.set(key, created);
      // A limiter that never got ready is made again at the next run (a scheduler lives on).
      created.ready.catch(() => this.entries.get(key) === created && this.entries.delete(key));
      entry = created;
    }
    const { local, limiter, job, window, redis, ready } = entry;
    if (local || !limiter || !redis) return { schedule: local ?? ((request) => request()) };
    const task = <T>(request: () => Promise<T>) => (window ? () => inWindow(window, request) : request);
    return {
      schedule: async <T>(request: () => Promise<T>): Promise<T> => {
        await ready;
        let started: Promise<T> | undefined;
        const scheduled = limiter.schedule(job ?? {}, () => (started = task(request)()));
        try {
          return await Promise.race([scheduled, redis.lost]);
        } catch (e) {
          // A request that started is seen to its answer, even when Redis went away meanwhile: the
          // limiter throws only for requests it never sent. What failed before the request
          // started is the limiter's state in Redis, not the app.
          if (started) return await started;
          if (e instanceof LimiterUnavailableError) throw e;
          throw new LimiterUnavailableError(`Redis at ${redis.shown} (EBB_REDIS_URL) failed: ${e instanceof Error ? e.message : String(e)}`);
        }
      },
    };
  }

  /** Closes these limiters and their connection to Redis, so that the process can exit. */
  async close(): Promise<void> {
    this.entries.clear();
    const redis = this.redis;
    this.redis = undefined;
    await redis?.close();
  }

  private sharedRedis(url: string): SharedRedis {
    this.redis ??= connectRedis(url, (lost) => {
      // This connection is over: a later run (a scheduler lives on) connects again.
      if (this.redis !== lost) return;
      this.redis = undefined;
      this.entries.clear();
    });
    return this.redis;
  }
}

// bottleneck and ioredis serve only the limiters shared through Redis: they load when EBB_REDIS_URL
// is set, not with every command.
const requireCjs = createRequire(import.meta.url);
const loadBottleneck = () => requireCjs('bottleneck') as typeof Bottleneck;
const loadRedis = () => (requireCjs('ioredis') as { Redis: typeof Redis }).Redis;

function createLimiter(id: string, config: LimitConfig, sharedRedis: (url: string) => SharedRedis): Entry {
  const rate = config.rate_limit;
  const settings = { maxConcurrent: config.concurrency, minTime: spacingMs(rate) };
  const url = process.env.EBB_REDIS_URL;
  if (!url) {
    // In one process a semaphore and the window are enough: bottleneck's scheduling costs a few
    // milliseconds per job, which caps a fast app at a few hundred requests per second.
    const slots = pLimit(config.concurrency);
    const window = rate && new LocalWindow(rate, spacingMs(rate));
    const local = <T>(request: () => Promise<T>): Promise<T> => slots(window ? () => inWindow(window, request) : request);
    return { local, ready: Promise.resolve() };
  }

  const redis = sharedRedis(url);
  // A job that its process never frees (the process died) gives its slot back after
  // `expiration`, which also covers the longest waits: for its start (every slot ahead of it,
  // spaced by minTime) and for room in the window.
  const expiration = HOLD_LIMIT_MS + settings.maxConcurrent * settings.minTime + (rate ? rate.per_seconds * 1000 : 0);
  const limiter = new (loadBottleneck())({
    ...settings,
    id,
    datastore: 'ioredis',
    connection: redis.connection,
    clearDatastore: false,
    // Bottleneck's keys expire after this much inactivity; longer than `expiration`, so that the
    // slots of a dead process are freed (and the waiting processes told) before the state goes.
    timeout: expiration + 60_000,
  });
  const ready = (async () => {
    const shown = displayRedisUrl(url);
    const timer = deadline(REDIS_READY_TIMEOUT_MS, `Redis at ${shown} (EBB_REDIS_URL) was not ready within ${REDIS_READY_TIMEOUT_MS / 1000} s`);
    try {
      await Promise.race([limiter.ready(), redis.lost, timer.promise]);
      // The first process to start wrote the settings; a changed ebb.yml must replace them.
      await Promise.race([limiter.updateSettings(settings), redis.lost, timer.promise]);
    } finally {
      timer.cancel();
    }
  })();
  ready.catch(() => undefined);
  return { limiter, job: { expiration }, window: rate && new RedisWindow(redis, id, rate, expiration), redis, ready };
}

function deadline(ms: number, message: string): { promise: Promise<never>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LimiterUnavailableError(message)), ms);
  });
  promise.catch(() => undefined);
  return { promise, cancel: () => clearTimeout(timer) };
}

/** A connection to Redis for limiters; `onLost` is told when it is over for good. */
function connectRedis(url: string, onLost: (state: SharedRedis) => void): SharedRedis {
  const shown = displayRedisUrl(url);
  try {
    const password = new URL(url).password;
    if (password) addSecret(decodeURIComponent(password));
  } catch {
    throw new LimiterUnavailableError('EBB_REDIS_URL is not a URL; use redis://[:password@]host[:port][/db]');
  }
  let everReady = false;
  /** When the connection was lost, while it is. */
  let lostAt: number | undefined;
  let lastError = '';
  const client = new (loadRedis())(url, {
    // bottleneck's scripts and pub/sub were written for RESP2 replies.
    protocol: 2,
    connectTimeout: 5_000,
    // Down at the start: fail fast. Lost mid-run: try for a while, then fail the run.
    retryStrategy: (times) => {
      if (!everReady) return times > 3 ? null : times * 250;
      lostAt ??= Date.now();
      return Date.now() - lostAt >= reconnectMs() ? null : Math.min(times * 250, 2_000);
    },
  }) as Redis & WindowCommands;
  client.on('ready', () => {
    everReady = true;
    lostAt = undefined;
  });
  client.defineCommand('ebbWindowTake', { numberOfKeys: 3, lua: TAKE_SCRIPT });
  client.defineCommand('ebbWindowGive', { numberOfKeys: 2, lua: GIVE_SCRIPT });
  const connection = new (loadBottleneck().IORedisConnection)({ client });
  // The errors of both clients arrive here; they say why Redis cannot be reached.
  connection.on('error', (e: unknown) => (lastError = e instanceof Error ? e.message : String(e)));
  const { subscriber } = connection as unknown as { subscriber: Redis };
  let closing = false;
  const lost = new Promise<never>((_, reject) => {
    const onEnd = () => {
      if (closing) return;
      onLost(state);
      const why = lastError ? `: ${lastError}` : '';
      reject(
        new LimiterUnavailableError(
          everReady ? `lost the connection to Redis at ${shown} (EBB_REDIS_URL)${why}` : `cannot reach Redis at ${shown} (EBB_REDIS_URL)${why}; start Redis or unset EBB_REDIS_URL`,
        ),
      );
      void connection.disconnect(false);
    };
    client.once('end', onEnd);
    subscriber.once('end', onEnd);
  });
  lost.catch(() => undefined);
  const close = async () => {
    closing = true;
    // The connection stops the heartbeats of its limiters. Disconnecting each limiter first would
    // unsubscribe on a client that may be gone, in a promise that bottleneck leaves unhandled.
    const graceful = client.status === 'ready' && subscriber.status === 'ready';
    await connection.disconnect(graceful).catch(() => connection.disconnect(false));
  };
  const state: SharedRedis = { shown, client, connection, lost, close };
  return state;
}
