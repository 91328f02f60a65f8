import type { Context, MiddlewareHandler } from 'hono';
import { Hono } from 'hono';
import { cors } from 'hono/cors';
import type { AppEnv, Deps } from '../deps.js';
import { readFields } from '../http/body.js';
import { clientIp } from '../http/client-ip.js';
import { AppError, pageVars, wantsJson } from '../http/errors.js';
import { addressKey, hitLimits } from '../http/rate-limit.js';
import {
  checkConfirmationLink,
  checkUnsubscribeLink,
  confirm,
  subscribe,
  subscribeInput,
  unsubscribe,
} from './service.js';

/** The honeypot: a field people never see or fill; bots fill every field. */
export const HONEYPOT_FIELD = 'website';

/** The reader's side: subscribe, confirm, unsubscribe, and their pages. */
export function subscriptionRoutes(deps: Deps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const { config } = deps;
  const allowed = new Set([new URL(config.publicUrl).origin, ...config.allowedOrigins]);

  app.use('/subscribe', subscribeCors(config.allowedOrigins));

  app.post('/subscribe', async (c) => {
    const fields = await readFields(c);
    const redirect = checkRedirect(fields.redirect, allowed);
    if (fields[HONEYPOT_FIELD]) {
      deps.log.info({ msg: 'honeypot filled; request dropped' });
      return accepted(c, redirect);
    }
    const parsed = subscribeInput.safeParse({ email: fields.email ?? '', name: fields.name });
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const code = issue?.path[0] === 'email' ? 'invalid_email' : 'invalid_input';
      throw new AppError(code, issue?.message ?? 'Check the form and try again.');
    }
    const verdict = await hitLimits(deps.database.db, [
      {
        key: `subscribe-ip:${clientIp(c)}`,
        max: config.subscribeLimitPerIp,
        windowSeconds: config.rateLimitWindowSeconds,
      },
      {
        key: `subscribe-address:${addressKey(parsed.data.email)}`,
        max: config.subscribeLimitPerAddress,
        windowSeconds: config.rateLimitWindowSeconds,
      },
    ]);
    if (!verdict.allowed) {
      const minutes = Math.ceil(verdict.retryAfter / 60);
      throw new AppError(
        'rate_limited',
        `Too many subscription attempts. Please try again in ${minutes} minute${minutes === 1 ? '' : 's'}.`,
        undefined,
        verdict.retryAfter,
      );
    }
    await subscribe(deps.database.db, parsed.data);
    deps.kick?.();
    return accepted(c, redirect);
  });

  app.get('/check-inbox', async (c) => c.html(await deps.renderer.page('check-inbox', pageVars(deps))));

  // For site owners: the form to try, and the snippet to paste (shown as text, so escaped).
  app.get('/form', async (c) => {
    const snippet = await deps.renderer.page('snippet', pageVars(deps));
    return c.html(await deps.renderer.page('form', { ...pageVars(deps), snippet: snippet.trim() }));
  });

  app.get('/confirm/:token', async (c) => {
    await checkConfirmationLink(deps.database.db, c.req.param('token'));
    return page(c, 'confirm', { action: `${config.publicUrl}/confirm/${c.req.param('token')}` });
  });

  app.post('/confirm/:token', async (c) => {
    await confirm(deps.database.db, c.req.param('token'));
    if (wantsJson(c)) return c.json({ status: 'confirmed' });
    return page(c, 'confirmed');
  });

  app.get('/unsubscribe/:token', async (c) => {
    await checkUnsubscribeLink(deps.database.db, c.req.param('token'));
    return page(c, 'unsubscribe', { action: `${config.publicUrl}/unsubscribe/${c.req.param('token')}` });
  });

  // RFC 8058: mail clients POST `List-Unsubscribe=One-Click` here and expect a 2xx answer, never a redirect.
  // The body is not needed: the token says who, and a POST is the one step.
  app.post('/unsubscribe/:token', async (c) => {
    await unsubscribe(deps.database.db, c.req.param('token'));
    if (wantsJson(c)) return c.json({ status: 'unsubscribed' });
    return page(c, 'unsubscribed');
  });

  return app;

  async function page(c: Context<AppEnv>, name: string, vars: Record<string, unknown> = {}) {
    c.header('Referrer-Policy', 'no-referrer');
    c.header('Cache-Control', 'no-store');
    return c.html(await deps.renderer.page(name, { ...pageVars(deps), ...vars }));
  }

  function accepted(c: Context<AppEnv>, redirect: string | undefined) {
    if (wantsJson(c)) return c.json({ status: 'pending' }, 202);
    return c.redirect(redirect ?? `${config.publicUrl}/check-inbox`, 303);
  }
}

/** A redirect is followed only to an allowed origin: the form can't be made into an open redirect. */
function checkRedirect(redirect: string | undefined, allowed: Set<string>): string | undefined {
  if (!redirect) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(redirect);
  } catch {}
  if (!url || !/^https?:$/.test(url.protocol) || !allowed.has(url.origin)) {
    throw new AppError(
      'invalid_redirect',
      'The redirect address is not on an allowed origin. The site owner can add its origin to ALLOWED_ORIGINS.',
    );
  }
  return url.href;
}

/**
 * CORS for /subscribe: the site's own pages (ALLOWED_ORIGINS) may post to it from the browser. Preflights
 * go to Hono's cors(). A POST gets the same two headers from here, set before the route answers.
 *
 * Kept rather than cors() for the POST (issue 22): cors() sets Vary with c.header() after the route has
 * answered, and on @hono/node-server that turns the finished answer into a web stream that is read back
 * out (honojs/node-server#399 and honojs/hono#5350 would end it). Measured side by side: see
 * docs/performance.md, 2026-12-07. Go back to cors() alone once that copy is gone.
 */
function subscribeCors(allowedOrigins: string[]): MiddlewareHandler<AppEnv> {
  const preflight = cors({
    origin: (origin) => (allowedOrigins.includes(origin) ? origin : null),
    allowMethods: ['POST'],
    allowHeaders: ['Content-Type', 'Accept'],
    maxAge: 86_400,
  });
  return async (c, next) => {
    if (c.req.method === 'OPTIONS') return preflight(c, next);
    const origin = c.req.header('origin');
    if (origin && allowedOrigins.includes(origin)) c.header('Access-Control-Allow-Origin', origin);
    c.header('Vary', 'Origin');
    await next();
  };
}
