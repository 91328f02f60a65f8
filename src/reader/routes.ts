import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import { cors } from 'hono/cors';
import type { AppEnv, Deps } from '../deps.js';
import { readFields } from '../http/body.js';
import { clientIp } from '../http/client-ip.js';
import { AppError, pageVars, wantsJson } from '../http/errors.js';
import {
  inputError,
  json,
  jsonOrPage,
  page as pageAnswer,
  readerError,
  tooLarge,
  unavailable,
  withRetryAfter,
} from '../http/openapi.js';
import { addressKey, hitLimits } from '../http/rate-limit.js';
import { newChallenge, spendSolution } from './altcha.js';
import { consentOf, consentTextVersion } from './consent.js';
import { isDisposableAddress } from './disposable.js';
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
    altcha: z
      .string()
      .optional()
      .openapi({
        description:
          'With ALTCHA_HMAC_KEY set, required: the ALTCHA widget’s payload (base64 JSON of a challenge from ' +
          'GET /altcha and its solution), accepted once.',
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
    422: readerError(
      '`invalid_email`, `invalid_input`, `invalid_redirect`, or `verification_failed` (ALTCHA on: the `altcha` ' +
        'field missing, wrong, expired or used before); the message says what to fix.',
    ),
    429: withRetryAfter(
      readerError('Too many attempts from this client or for this address (`rate_limited`).'),
    ),
    ...unavailable(readerError),
  },
});

/** altcha-lib's default (v2) challenge, as GET /altcha answers it. */
const altchaChallenge = z
  .object({
    parameters: z.object({
      algorithm: z.literal('PBKDF2/SHA-256'),
      nonce: z.string(),
      salt: z.string(),
      cost: z.number().int(),
      keyLength: z.number().int(),
      keyPrefix: z.string(),
      expiresAt: z.number().int().openapi({ description: 'Unix time (seconds).' }),
    }),
    signature: z.string(),
  })
  .openapi('AltchaChallenge');

const altchaRoute = createRoute({
  method: 'get',
  path: '/altcha',
  tags: ['Readers'],
  summary: 'A proof-of-work challenge for the ALTCHA widget (with ALTCHA_HMAC_KEY set)',
  description:
    'altcha-lib’s default (v2) format, signed by the service, valid for ALTCHA_EXPIRES_SECONDS; its solution ' +
    'goes in the `altcha` field of POST /subscribe. Off (404) while ALTCHA_HMAC_KEY is unset.',
  responses: {
    200: json(altchaChallenge, 'A fresh challenge (never cached).'),
    404: readerError('ALTCHA is off (`not_found`).'),
  },
});

const homeRoute = createRoute({
  method: 'get',
  path: '/',
  tags: ['Pages'],
  summary: 'What this service is: the way to subscribe and, for its owner, to the dashboard and the API',
  responses: { 200: pageAnswer('The page.') },
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
  const allowed = new Set([new URL(config.publicUrl).origin, ...config.allowedOrigins]);
  const textVersion = consentTextVersion(config, deps.renderer);

  app.use('/subscribe', subscribeCors(config.allowedOrigins));
  app.use('/altcha', cors({ origin: (origin) => (config.allowedOrigins.includes(origin) ? origin : null) }));

  app.openapi(altchaRoute, async (c) => {
    if (!config.altchaHmacKey) throw new AppError('not_found', 'Proof of work is off on this service.');
    c.header('Cache-Control', 'no-store');
    const challenge = await newChallenge(
      config.altchaHmacKey,
      config.altchaExpiresSeconds,
      config.altchaMaxCounter,
    );
    return c.json(challenge as z.infer<typeof altchaChallenge>, 200);
  });

  app.openapi(subscribeRoute, async (c) => {
    const fields = await readFields(c);
    const redirect = checkRedirect(fields.redirect, allowed);
    if (fields[HONEYPOT_FIELD]) {
      deps.log.info({ msg: 'honeypot filled; request dropped' });
      return accepted(c, redirect);
    }
    const parsed = subscribeInput.safeParse({ email: fields.email ?? '', name: fields.name });
    if (!parsed.success) {
      const [issue] = parsed.error.issues;
      // The address is the reader's own mistake to fix: said in their words, as `invalid_email`.
      if (issue?.path[0] === 'email') throw new AppError('invalid_email', issue.message);
      throw inputError(parsed.error.issues);
    }
    if (config.blockDisposableDomains && (await isDisposableAddress(parsed.data.email))) {
      throw new AppError(
        'invalid_email',
        'That address is at a throwaway email service, and this newsletter only goes to addresses people keep. Please use your usual address.',
      );
    }
    // Before the rate limits: a bot's posts without a solution don't use up a real reader's attempts.
    if (config.altchaHmacKey) await spendSolution(deps.database.db, config.altchaHmacKey, fields.altcha);
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
    await subscribe(deps.database.db, parsed.data, consentOf(c, textVersion));
    deps.kick?.();
    return accepted(c, redirect);
  });

  // Where a newcomer lands who opens PUBLIC_URL itself (and, SITE_URL unset, the pages' "Back to …" links).
  app.openapi(homeRoute, async (c) => c.html(await deps.renderer.page('home', pageVars(deps, '/'))));

  app.openapi(checkInboxRoute, async (c) => c.html(await deps.renderer.page('check-inbox', pageVars(deps))));

  // For site owners: the form to try, and the snippet to paste (shown as text, so escaped).
  app.openapi(formRoute, async (c) => {
    const snippet = await deps.renderer.page('snippet', pageVars(deps));
    // Its URL holds no token: the form's own post may name it (with no-referrer, browsers send neither
    // Referer nor a real Origin, and the consent record would say no page).
    c.header('Referrer-Policy', 'same-origin');
    return c.html(await deps.renderer.page('form', { ...pageVars(deps), snippet: snippet.trim() }));
  });

  app.openapi(confirmPageRoute, async (c) => {
    await checkConfirmationLink(deps.database.db, c.req.param('token'));
    // Its button's post names this origin (the consent record's confirmation page), never the token's path.
    return page(
      c,
      'confirm',
      { action: `${config.publicUrl}/confirm/${c.req.param('token')}` },
      'strict-origin',
    );
  });

  app.openapi(confirmRoute, async (c) => {
    await confirm(deps.database.db, c.req.param('token'), consentOf(c, textVersion, true));
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

  async function page(
    c: Context<AppEnv>,
    name: string,
    vars: Record<string, unknown> = {},
    referrerPolicy: 'no-referrer' | 'strict-origin' = 'no-referrer',
  ) {
    c.header('Referrer-Policy', referrerPolicy);
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
 * docs/performance.md, "Hono's cors() kept out of the POST". Go back to cors() alone once that copy is gone.
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
