import type { MiddlewareHandler } from 'hono';
import type { AppEnv, Deps } from '../deps.js';
import { AppError } from './errors.js';
import { checkPublisherToken } from './token-guesses.js';

/**
 * Lets a request through only with `Authorization: Bearer <PUBLISHER_TOKEN>`; the same 401 for a missing and
 * a wrong token, and 429 for an IP that sent too many wrong ones (WRONG_TOKEN_LIMIT_PER_IP).
 */
export function publisherAuth(deps: Deps): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header('authorization');
    const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
    // No header at all is not a guess: a browser or a health check that found the wrong door.
    const verdict = match?.[1] ? await checkPublisherToken(deps, c, match[1]) : 'wrong';
    if (verdict === 'wrong') {
      c.header('WWW-Authenticate', 'Bearer realm="oneletter"');
      throw new AppError(
        'unauthorized',
        'Send the publisher token as "Authorization: Bearer <PUBLISHER_TOKEN>".',
      );
    }
    await next();
  };
}
