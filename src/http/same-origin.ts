import type { Context } from 'hono';
import type { AppEnv } from '../deps.js';
import { AppError } from './errors.js';

/**
 * The origin the browser sent this request to: the scheme and Host as this server sees them, or, behind a
 * reverse proxy (TRUST_PROXY=true), as its X-Forwarded-Proto and X-Forwarded-Host say. Not PUBLIC_URL: an
 * operator may open the dashboard at localhost, 127.0.0.1, the server's IP or its public name.
 */
export function requestOrigin(c: Context<AppEnv>): string {
  const url = new URL(c.req.url);
  if (!c.get('deps').config.trustProxy) return url.origin;
  // As with X-Forwarded-For, the last value is the one our proxy wrote.
  const proto = lastValue(c.req.header('x-forwarded-proto'))?.toLowerCase();
  const host = lastValue(c.req.header('x-forwarded-host'));
  const scheme = proto === 'http' || proto === 'https' ? proto : url.protocol.slice(0, -1);
  try {
    return new URL(`${scheme}://${host && HOST.test(host) ? host : url.host}`).origin;
  } catch {
    return url.origin;
  }
}

const HOST = /^(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i;

function lastValue(header: string | undefined): string | undefined {
  return header?.split(',').pop()?.trim() || undefined;
}

/** The origin of the page that sent the request, as the browser says: its Origin, or else its Referer. */
function senderOrigin(c: Context): string | undefined {
  const origin = c.req.header('origin');
  // `null` (an opaque origin, or a privacy setting) names no page: the Referer may still.
  if (origin && origin !== 'null') return origin;
  const referer = c.req.header('referer');
  if (!referer) return undefined;
  try {
    return new URL(referer).origin;
  } catch {
    return 'null';
  }
}

/**
 * Refuses a state-changing request unless the browser says it came from this service's own pages: its
 * Sec-Fetch-Site, when sent, is `same-origin`, and its Origin (or, without one, its Referer) is the
 * request's own origin or PUBLIC_URL's. A request that says neither is refused: every browser sends
 * Origin or Sec-Fetch-Site on a POST. One layer against cross-site forms; the session-tied token is the other.
 */
export function checkSameOrigin(c: Context<AppEnv>): void {
  const site = c.req.header('sec-fetch-site');
  const sender = senderOrigin(c);
  const allowed =
    (site === undefined || site === 'same-origin') &&
    (sender === undefined ? site === 'same-origin' : isOwnOrigin(c, sender));
  if (!allowed) {
    throw new AppError('forbidden_origin', 'Dashboard forms are only accepted from the dashboard itself.');
  }
}

/** The request's own origin, or PUBLIC_URL's (behind a proxy that TRUST_PROXY does not vouch for). */
function isOwnOrigin(c: Context<AppEnv>, origin: string): boolean {
  return origin === requestOrigin(c) || origin === new URL(c.get('deps').config.publicUrl).origin;
}

/**
 * Whether the browser talks to us over https: the request's own origin says so, or the request came from
 * our https PUBLIC_URL (behind a proxy that TRUST_PROXY does not vouch for, only the browser knows).
 */
export function overHttps(c: Context<AppEnv>): boolean {
  if (requestOrigin(c).startsWith('https:')) return true;
  const sender = senderOrigin(c) ?? '';
  return sender.startsWith('https:') && isOwnOrigin(c, sender);
}
