/**
 * One rate limiter per connection, shared by every sync that uses the connection in this
 * process (bottleneck). Requests are spaced evenly, so no window of `per_seconds` ever holds
 * more than `requests` starts.
 */
import Bottleneck from 'bottleneck';
import type { ConnectionConfig } from '../config/schema.ts';

const limiters = new Map<string, Bottleneck>();

/** The limiter of a connection, created on first use. */
export function limiterFor(connection: string, config: Pick<ConnectionConfig, 'rate_limit' | 'concurrency'>): Bottleneck {
  let limiter = limiters.get(connection);
  if (!limiter) {
    const rate = config.rate_limit;
    limiter = new Bottleneck({
      maxConcurrent: config.concurrency,
      minTime: rate ? Math.ceil((rate.per_seconds * 1000) / rate.requests) : 0,
    });
    limiters.set(connection, limiter);
  }
  return limiter;
}
