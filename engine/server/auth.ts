/** Who may talk to `ebb serve`: loopback without a token, anyone else only with `Authorization: Bearer <token>`. */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { UsageError } from '../errors.ts';

/** True for the addresses that only this machine can reach: 127.0.0.0/8, ::1 and `localhost`. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  if (bare === 'localhost' || bare === '::1') return true;
  const v4 = bare.startsWith('::ffff:') ? bare.slice(7) : bare;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/** Refuses to bind beyond loopback without a token: the API can trigger runs and delete syncs. */
export function checkBind(host: string, token: string | undefined): void {
  if (!isLoopback(host) && !token) {
    throw new UsageError(
      `refusing to listen on ${host} without a token: anyone who reaches it could run and delete syncs. ` +
        'Set EBB_SERVER_TOKEN to a long random value (every request then needs `Authorization: Bearer <token>`), or listen on 127.0.0.1.',
    );
  }
}

/** Compares a request's `Authorization` header with the token in constant time (digests of equal length). */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const given = /^Bearer\s+(.+)$/i.exec(header?.trim() ?? '')?.[1] ?? '';
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(token)) && given.length > 0;
}
