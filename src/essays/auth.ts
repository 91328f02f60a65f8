import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../deps.js';
import { AppError } from '../errors.js';
import { safeEqual } from '../tokens.js';

/** Lets a request through only with `Authorization: Bearer <PUBLISHER_TOKEN>`; same 401 for missing and wrong. */
export function publisherAuth(token: string): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1] || !safeEqual(match[1], token)) {
      c.header('WWW-Authenticate', 'Bearer realm="oneletter"');
      throw new AppError(
        'unauthorized',
        'Send the publisher token as "Authorization: Bearer <PUBLISHER_TOKEN>".',
      );
    }
    await next();
  };
}
