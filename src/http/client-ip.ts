import type { Context } from 'hono';
import type { AppEnv } from '../deps.js';

/**
 * The client's IP address. Behind a reverse proxy (TRUST_PROXY=true) it is the last address in
 * X-Forwarded-For, the one the proxy itself appended; otherwise the peer of the connection.
 * Earlier X-Forwarded-For entries come from the client and are never trusted.
 */
export function clientIp(c: Context<AppEnv>): string {
  const deps = c.get('deps');
  if (deps.config.trustProxy) {
    const forwarded = c.req.header('x-forwarded-for')?.split(',').pop()?.trim();
    if (forwarded) return forwarded.slice(0, 64);
  }
  return deps.peerAddress?.(c) ?? 'unknown';
}
