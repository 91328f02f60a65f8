import type { Context } from 'hono';
import type { AppEnv, Deps } from '../deps.js';
import { safeEqual } from '../tokens.js';
import { clientIp } from './client-ip.js';
import { AppError } from './errors.js';
import { hitLimits, limitHits } from './rate-limit.js';

/**
 * The publisher token, checked where it is presented (the API's bearer header, the dashboard's sign-in form),
 * with wrong tokens counted per client IP in the database (WRONG_TOKEN_LIMIT_PER_IP per window, shared by
 * every process). Past the limit, that IP gets 429 for the rest of the window, for a right token too: a
 * guesser can't tell a hit from a miss. A right token within the limit costs one indexed read; a right token
 * is never counted.
 */
export async function checkPublisherToken(
  deps: Deps,
  c: Context<AppEnv>,
  presented: string | undefined,
): Promise<'right' | 'wrong'> {
  const { config } = deps;
  const right = presented !== undefined && safeEqual(presented, config.publisherToken);
  const max = config.wrongTokenLimitPerIp;
  if (max === 0) return right ? 'right' : 'wrong';
  const limit = { key: `wrong-token-ip:${clientIp(c)}`, max, windowSeconds: config.rateLimitWindowSeconds };
  const verdict = right
    ? await limitHits(deps.database.db, limit)
    : await hitLimits(deps.database.db, [limit]);
  if (!verdict.allowed) {
    const minutes = Math.ceil(verdict.retryAfter / 60);
    throw new AppError(
      'rate_limited',
      `Too many wrong publisher tokens from this address. Try again in ${minutes} minute${minutes === 1 ? '' : 's'}; a dashboard already signed in goes on working (WRONG_TOKEN_LIMIT_PER_IP sets the limit).`,
      'Too many attempts',
      verdict.retryAfter,
    );
  }
  if (!right) deps.log.info({ msg: 'wrong publisher token', path: c.req.path });
  return right ? 'right' : 'wrong';
}
