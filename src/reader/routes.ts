import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import { cors } from 'hono/cors';
import type { AppEnv, Deps } from '../deps.js';
import { readFields } from '../http/body.js';
import { clientIp } from '../http/client-ip.js';
import type { ErrorCode } from '../http/errors.js';
import { AppError, errorJson, errorStatus, pageVars, respondError, wantsJson } from '../http/errors.js';
import {
  json,
  jsonOrPage,
  page as pageAnswer,
  readerError,
  tooLarge,
  unavailable,
  withRetryAfter,
} from '../http/openapi.js';
import { addressKey, hitLimits } from '../http/rate-limit.js';
import { isWhole, securityHeaders, wholeAnswer } from '../http/security-headers.js';
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

/**
 * The fields of a subscription as the document shows them. The route reads its body itself (a form,
 * multipart or JSON, into flat fields; the honeypot first, so a bot learns nothing from a refusal) and
 * checks them with subscribeInput, so the document names this schema by reference: zod-openapi validates
 * only the schemas given to a route inline.
 */
const subscription = subscribeInput
  .extend({
    redirect: z.string().optional().openapi({
      description: 'Form posts: where to send the reader after (an ALLOWED_ORIGINS address).',
    }),
  })
  .openapi('Subscription');

/** RFC 8058's one-click body, as mail clients send it; the route needs no body (the token says who). */
const oneClick = z
  .object({ 'List-Unsubscribe': z.literal('One-Click').optional() })
  .openapi('OneClickUnsubscribe');

const ref = (name: string) => ({ schema: { $ref: `#/components/schemas/${name}` } });

const token = z.object({
  token: z
    .string()
    .openapi({ param: { name: 'token', in: 'path' }, description: 'The token from the email link.' }),
});

const unknownToken = readerError('Unknown link (`token_invalid`): a page that offers to subscribe again.');
const expiredToken = readerError(
  'Expired or spent link (`token_expired`): a page that offers to subscribe again.',
);

const subscribeRoute = createRoute({
  method: 'post',
  path: '/subscribe',
  tags: ['Readers'],
  summary: 'Subscribe an address (double opt-in)',
  description:
    'The same answer whatever the address’s state; a confirmation email follows when one is due. A JSON ' +
    'request (JSON body, or `Accept: application/json`) is answered with JSON; a form post with 303 See Other, ' +
    'and its errors with a page.',
  request: {
    body: {
      required: true,
      content: {
        'application/json': ref('Subscription'),
        'application/x-www-form-urlencoded': ref('Subscription'),
        'multipart/form-data': ref('Subscription'),
      },
    },
  },
  responses: {
    202: json(z.object({ status: z.literal('pending') }), 'Recorded; the confirmation email is on its way.'),
    303: {
      description: 'A form post: on to `redirect` or the “check your inbox” page.',
      headers: {
        Location: { description: 'Where the browser goes next.', schema: { type: 'string' as const } },
      },
    },
    400: readerError('Unreadable JSON (`malformed_json`) or form, or too many fields (`bad_request`).'),
    ...tooLarge(readerError),
    415: readerError('Neither JSON nor a form (`unsupported_media_type`).'),
    422: readerError('`invalid_email`, `invalid_input` or `invalid_redirect`; the message says what to fix.'),
    429: withRetryAfter(
      readerError('Too many attempts from this client or for this address (`rate_limited`).'),
    ),
    ...unavailable(readerError),
  },
});

const checkInboxRoute = createRoute({
  method: 'get',
  path: '/check-inbox',
  tags: ['Pages'],
  summary: 'The “check your inbox” page a form post leads to',
  responses: { 200: pageAnswer('The page.') },
});

const formRoute = createRoute({
  method: 'get',
  path: '/form',
  tags: ['Pages'],
  summary: 'For site owners: a working form, and the snippet to paste into the site',
  responses: { 200: pageAnswer('The page.') },
});

const confirmPageRoute = createRoute({
  method: 'get',
  path: '/confirm/{token}',
  tags: ['Readers'],
  summary: 'The confirmation link: a page with one button (changes nothing)',
  request: { params: token },
  responses: {
    200: pageAnswer('The page; its button POSTs to the same address.'),
    404: unknownToken,
    410: expiredToken,
    ...unavailable(readerError),
  },
});

const confirmRoute = createRoute({
  method: 'post',
  path: '/confirm/{token}',
  tags: ['Readers'],
  summary: 'Confirm a subscription (idempotent)',
  description: 'With `Accept: application/json`, answers JSON; otherwise a page. A body, if any, is ignored.',
  request: { params: token },
  responses: {
    200: jsonOrPage(z.object({ status: z.literal('confirmed') }), 'Confirmed (also when it already was).'),
    404: unknownToken,
    410: expiredToken,
    ...tooLarge(readerError),
    ...unavailable(readerError),
  },
});

const unsubscribePageRoute = createRoute({
  method: 'get',
  path: '/unsubscribe/{token}',
  tags: ['Readers'],
  summary: 'The unsubscribe link in a letter: a page with one button (changes nothing)',
  request: { params: token },
  responses: {
    200: pageAnswer('The page; its button POSTs to the same address.'),
    404: unknownToken,
    ...unavailable(readerError),
  },
});

const unsubscribeRoute = createRoute({
  method: 'post',
  path: '/unsubscribe/{token}',
  tags: ['Readers'],
  summary: 'Unsubscribe at once (RFC 8058 one-click)',
  description:
    'Mail clients POST `List-Unsubscribe=One-Click` here (RFC 8058) and get 200 itself, never a redirect. ' +
    'Any body is accepted and ignored. With `Accept: application/json`, answers JSON; otherwise a page.',
  request: {
    params: token,
    body: {
      required: false,
      content: {
        'application/x-www-form-urlencoded': ref('OneClickUnsubscribe'),
        'multipart/form-data': ref('OneClickUnsubscribe'),
      },
    },
  },
  responses: {
    200: jsonOrPage(z.object({ status: z.literal('unsubscribed') }), 'Unsubscribed (also when already).'),
    404: unknownToken,
    ...tooLarge(readerError),
    ...unavailable(readerError),
  },
});

/** The reader's side: subscribe, confirm, unsubscribe, and their pages. */
export function subscriptionRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  app.openAPIRegistry.register('Subscription', subscription);
  app.openAPIRegistry.register('OneClickUnsubscribe', oneClick);
  const { config } = deps;
  const ownOrigin = new URL(config.publicUrl).origin;
  const allowed = new Set([ownOrigin, ...config.allowedOrigins]);
  const security = securityHeaders(ownOrigin);
  /** Every header of a JSON answer but CORS's, gathered once. */
  const jsonHeaders = { ...security, vary: 'Origin', 'content-type': 'application/json' };

  app.use('/subscribe', subscribeCors(config.allowedOrigins));

  app.openapi(subscribeRoute, async (c) => {
    const fields = await readFields(c);
    const redirect = checkRedirect(fields.redirect, allowed);
    if (fields[HONEYPOT_FIELD]) {
      deps.log.info({ msg: 'honeypot filled; request dropped' });
      return accepted(c, redirect);
    }
    // The Standard Schema entry point: the same checks and messages as safeParse(), without building a
    // ZodError (a third of the CPU time of refusing an invalid address). The schema is synchronous.
    const parsed = subscribeInput['~standard'].validate({ email: fields.email ?? '', name: fields.name });
    if (parsed instanceof Promise) throw new Error('subscribeInput must validate synchronously');
    if (parsed.issues) {
      const issue = parsed.issues[0];
      const code = issue?.path?.[0] === 'email' ? 'invalid_email' : 'invalid_input';
      // Answered here rather than thrown to the error handler (the same answer): a rejected promise through
      // the middleware chain costs a sixth of the time of refusing an invalid address.
      const message = issue?.message ?? 'Check the form and try again.';
      if (wantsJson(c)) return answer(c, errorStatus[code], jsonHeaders, refusalJson(code, message));
      return respondError(c, new AppError(code, message));
    }
    const verdict = await hitLimits(deps.database.db, [
      {
        key: `subscribe-ip:${clientIp(c)}`,
        max: config.subscribeLimitPerIp,
        windowSeconds: config.rateLimitWindowSeconds,
      },
      {
        key: `subscribe-address:${addressKey(parsed.value.email)}`,
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
    await subscribe(deps.database.db, parsed.value);
    deps.kick?.();
    return accepted(c, redirect);
  });

  app.openapi(checkInboxRoute, async (c) => c.html(await deps.renderer.page('check-inbox', pageVars(deps))));

  // For site owners: the form to try, and the snippet to paste (shown as text, so escaped).
  app.openapi(formRoute, async (c) => {
    const snippet = await deps.renderer.page('snippet', pageVars(deps));
    return c.html(await deps.renderer.page('form', { ...pageVars(deps), snippet: snippet.trim() }));
  });

  app.openapi(confirmPageRoute, async (c) => {
    await checkConfirmationLink(deps.database.db, c.req.param('token'));
    return page(c, 'confirm', { action: `${config.publicUrl}/confirm/${c.req.param('token')}` });
  });

  app.openapi(confirmRoute, async (c) => {
    await confirm(deps.database.db, c.req.param('token'));
    if (wantsJson(c)) return c.json({ status: 'confirmed' });
    return page(c, 'confirmed');
  });

  app.openapi(unsubscribePageRoute, async (c) => {
    await checkUnsubscribeLink(deps.database.db, c.req.param('token'));
    return page(c, 'unsubscribe', { action: `${config.publicUrl}/unsubscribe/${c.req.param('token')}` });
  });

  // RFC 8058: mail clients POST `List-Unsubscribe=One-Click` here and expect a 2xx answer, never a redirect.
  // The body is not needed: the token says who, and a POST is the one step.
  app.openapi(unsubscribeRoute, async (c) => {
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
    if (wantsJson(c)) return answer(c, 202, jsonHeaders, PENDING);
    return answer(
      c,
      303,
      { ...security, vary: 'Origin', location: redirect ?? `${config.publicUrl}/check-inbox` },
      '',
    );
  }

  /** An answer to POST /subscribe, made whole here: the security and CORS headers with its own. */
  function answer(c: Context<AppEnv>, status: number, headers: Record<string, string>, body: string) {
    const origin = c.get('corsOrigin');
    return wholeAnswer(
      body,
      status,
      origin ? { ...headers, 'access-control-allow-origin': origin } : headers,
    );
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

const PENDING = JSON.stringify({ status: 'pending' });

/** The JSON bodies of refused subscriptions, kept: their messages come from the schema, a handful at most. */
const refusals = new Map<string, string>();

function refusalJson(code: ErrorCode, message: string): string {
  const key = `${code} ${message}`;
  let body = refusals.get(key);
  if (body === undefined) {
    body = errorJson({ code, message });
    if (refusals.size < 64) refusals.set(key, body);
  }
  return body;
}

/**
 * CORS for /subscribe: the site's own pages (ALLOWED_ORIGINS) may post to it from the browser. Preflights
 * go to Hono's cors(). For a POST the allowed origin is kept for the route, which puts it in its answer
 * with Vary; an answer made otherwise (an error thrown) gets both here. (Hono's cors() sets Vary with
 * c.header() after the route: that copies the finished response through a stream, which cost more than
 * the rest of an invalid request.)
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
    const allowed = origin && allowedOrigins.includes(origin) ? origin : undefined;
    if (allowed) c.set('corsOrigin', allowed);
    await next();
    if (isWhole(c.res)) return;
    if (allowed) c.res.headers.set('Access-Control-Allow-Origin', allowed);
    c.res.headers.append('Vary', 'Origin');
  };
}
