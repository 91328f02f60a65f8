import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from '@hono/zod-openapi';
import { SES_WEBHOOK_PATH } from '../bounces/ses.js';
import type { AppEnv, Deps } from '../deps.js';
import { essayInput, SLUG_SHAPE } from '../essays/service.js';
import { errorBody, json, sendoutView } from '../list/schemas.js';
import { subscribeInput } from '../reader/service.js';
import { AppError } from './errors.js';

/**
 * The OpenAPI document (/openapi.json) and its reference page (/docs). The publisher's subscriber routes
 * describe themselves (src/list/routes.ts); the routes that came before them are described here from
 * the same zod schemas their handlers validate with, so the document can't drift from what is checked.
 */

/** What the reference page may load: its own script and the document, from this service only. */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  // The reference UI injects its styles at run time.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

const essayView = z
  .object({
    slug: z.string(),
    title: z.string(),
    url: z.string(),
    summary: z.string().nullable(),
    publishedAt: z.string().openapi({ format: 'date-time' }),
  })
  .openapi('Essay');

const essayWithSendout = z.object({ essay: essayView, sendout: sendoutView }).openapi('EssayWithSendout');

const token = z.object({
  token: z
    .string()
    .openapi({ param: { name: 'token', in: 'path' }, description: 'The token from the email link.' }),
});

/** The routes of src/subscriptions, src/essays, src/feed, src/webhooks and app.ts, as the handlers there validate them. */
function describeEarlierRoutes(app: OpenAPIHono<AppEnv>): void {
  const r = app.openAPIRegistry;
  const security = [{ publisherToken: [] }];
  const unauthorized = json(errorBody, 'No or wrong publisher token.');

  r.registerComponent('securitySchemes', 'publisherToken', {
    type: 'http',
    scheme: 'bearer',
    description: 'PUBLISHER_TOKEN, as `Authorization: Bearer <PUBLISHER_TOKEN>`.',
  });

  const subscribeBody = subscribeInput.extend({
    redirect: z.string().optional().openapi({
      description: 'Form posts: where to send the reader after (an ALLOWED_ORIGINS address).',
    }),
  });
  r.registerPath({
    method: 'post',
    path: '/subscribe',
    tags: ['Readers'],
    summary: 'Subscribe an address (double opt-in)',
    description:
      'The same answer whatever the address’s state. A confirmation email follows when one is due. Also takes ' +
      'a form post (application/x-www-form-urlencoded), answered with 303 See Other.',
    request: {
      body: {
        required: true,
        content: {
          'application/json': { schema: subscribeBody },
          'application/x-www-form-urlencoded': { schema: subscribeBody },
        },
      },
    },
    responses: {
      202: json(
        z.object({ status: z.literal('pending') }),
        'Recorded; the confirmation email is on its way.',
      ),
      303: { description: 'A form post: on to `redirect` or the “check your inbox” page.' },
      413: json(errorBody, 'Body too large.'),
      415: json(errorBody, 'Neither JSON nor a form.'),
      422: json(errorBody, '`invalid_email`, `invalid_input` or `invalid_redirect`.'),
      429: json(errorBody, 'Too many attempts from this client or for this address (`Retry-After`).'),
    },
  });
  r.registerPath({
    method: 'post',
    path: '/confirm/{token}',
    tags: ['Readers'],
    summary: 'Confirm a subscription (idempotent)',
    description: 'With `Accept: application/json`, answers JSON; otherwise a page.',
    request: { params: token },
    responses: {
      200: json(z.object({ status: z.literal('confirmed') }), 'Confirmed.'),
      404: json(errorBody, 'Unknown token (`token_invalid`).'),
      410: json(errorBody, 'Expired or spent token (`token_expired`).'),
    },
  });
  r.registerPath({
    method: 'post',
    path: '/unsubscribe/{token}',
    tags: ['Readers'],
    summary: 'Unsubscribe at once (RFC 8058 one-click)',
    description:
      'A body of `List-Unsubscribe=One-Click` is accepted. With `Accept: application/json`, answers JSON.',
    request: { params: token },
    responses: {
      200: json(z.object({ status: z.literal('unsubscribed') }), 'Unsubscribed.'),
      404: json(errorBody, 'Unknown token (`token_invalid`).'),
    },
  });
  r.registerPath({
    method: 'get',
    path: '/healthz',
    tags: ['Operations'],
    summary: 'The process is up',
    responses: { 200: json(z.object({ status: z.literal('ok') }), 'Up.') },
  });
  r.registerPath({
    method: 'get',
    path: '/readyz',
    tags: ['Operations'],
    summary: 'The database answers',
    responses: {
      200: json(z.object({ status: z.literal('ready'), database: z.literal('reachable') }), 'Ready.'),
      503: json(
        z.object({
          status: z.literal('unavailable'),
          database: z.literal('unreachable'),
          message: z.string(),
        }),
        'The database does not answer.',
      ),
    },
  });
  r.registerPath({
    method: 'post',
    path: '/api/essays',
    tags: ['Essays'],
    summary: 'Publish an essay and start its send-out',
    description:
      'Every subscriber confirmed now gets one letter. The same slug again changes nothing and answers 200.',
    security,
    request: { body: { required: true, content: { 'application/json': { schema: essayInput } } } },
    responses: {
      200: json(essayWithSendout, 'Already published: its send-out.'),
      202: json(essayWithSendout, 'Published: the send-out has started.'),
      400: json(errorBody, 'Not JSON (`malformed_json`).'),
      401: unauthorized,
      415: json(errorBody, 'Not sent as application/json.'),
      422: json(errorBody, 'A field is not valid (`invalid_input`).'),
    },
  });
  r.registerPath({
    method: 'get',
    path: '/api/essays/{slug}',
    tags: ['Essays'],
    summary: 'An essay and its send-out progress',
    security,
    request: {
      params: z.object({
        slug: z
          .string()
          .regex(SLUG_SHAPE)
          .openapi({ param: { name: 'slug', in: 'path' } }),
      }),
    },
    responses: {
      200: json(essayWithSendout, 'The essay.'),
      401: unauthorized,
      404: json(errorBody, 'No essay has that slug.'),
    },
  });
  r.registerPath({
    method: 'post',
    path: '/api/feed/entries/{id}/send',
    tags: ['Essays'],
    summary: 'Send an entry the feed watcher recorded without sending',
    security,
    request: {
      params: z.object({
        id: z.string().openapi({
          param: { name: 'id', in: 'path' },
          description: 'The entry’s id (guid/id) or link, percent-encoded.',
        }),
      }),
    },
    responses: {
      200: json(
        essayWithSendout.extend({ entry: z.object({ id: z.string(), url: z.string().nullable() }) }),
        'Already sent.',
      ),
      202: json(
        essayWithSendout.extend({ entry: z.object({ id: z.string(), url: z.string().nullable() }) }),
        'Sent.',
      ),
      401: unauthorized,
      404: json(errorBody, 'No feed watched, or no such entry.'),
      422: json(errorBody, 'The entry has no usable link or title.'),
    },
  });

  r.registerPath({
    method: 'post',
    path: SES_WEBHOOK_PATH,
    tags: ['Webhooks'],
    summary: 'Amazon SES bounces and complaints, through Amazon SNS',
    description:
      'Only when SES_SNS_TOPIC_ARN is set (404 otherwise). Takes the messages an SNS HTTPS subscription posts ' +
      '(`text/plain` JSON, raw message delivery off), checks Amazon’s signature (SignatureVersion 1 or 2) with ' +
      'the certificate at SigningCertURL on an Amazon SNS host, the topic and the timestamp (at most an hour ' +
      'old). A permanent bounce marks the address bounced; a complaint unsubscribes it (history: `complained`, ' +
      'recorded once per report, also when the address had already left); a SubscriptionConfirmation is ' +
      'confirmed by visiting its SubscribeURL. Other notifications are ignored.',
    request: {
      body: {
        required: true,
        content: {
          'text/plain': {
            schema: z.string().openapi({
              description: 'The SNS message: Type, MessageId, TopicArn, Message, Timestamp, Signature…',
            }),
          },
        },
      },
    },
    responses: {
      200: json(
        z
          .object({
            status: z.enum(['processed', 'ignored', 'confirmed', 'noted']),
            type: z.string().optional().openapi({ description: 'The SES notification type, e.g. Bounce.' }),
            changed: z
              .number()
              .int()
              .optional()
              .openapi({ description: 'Subscribers whose status changed.' }),
            reason: z.string().optional(),
          })
          .openapi('WebhookOutcome'),
        'Accepted: processed, or nothing to do.',
      ),
      400: json(errorBody, 'Not an SNS message.'),
      401: json(errorBody, 'Not signed by Amazon SNS, not a configured topic, or too old.'),
      404: json(errorBody, 'SES_SNS_TOPIC_ARN is not set.'),
      413: json(errorBody, 'The body is too large.'),
      502: json(
        errorBody,
        'Amazon could not be reached to fetch the certificate or confirm the subscription.',
      ),
    },
  });
}

/** Serves /openapi.json and the reference page at /docs (script served from this service: works offline). */
export function openApiRoutes(app: OpenAPIHono<AppEnv>, deps: Deps): void {
  describeEarlierRoutes(app);
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'oneletter',
      version: '1',
      description:
        'A self-hosted newsletter service. Publisher endpoints (`/api/*`) take `Authorization: Bearer <PUBLISHER_TOKEN>`. ' +
        'Errors are `{"error":{"code","message"}}`.',
    },
    servers: [{ url: deps.config.publicUrl }],
  });

  app.get('/docs', (c) => {
    c.header('Cache-Control', 'no-cache');
    return c.html(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>oneletter API reference</title>
</head>
<body>
<noscript>The reference needs JavaScript. The document itself is at <a href="/openapi.json">/openapi.json</a>.</noscript>
<div id="app"></div>
<script src="/docs/scalar.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>`);
  });

  app.get('/docs/init.js', (c) => {
    c.header('Cache-Control', 'no-cache');
    // No fonts from a CDN, no telemetry: the page loads nothing but what this service serves.
    return c.body(
      `Scalar.createApiReference('#app', { url: '/openapi.json', withDefaultFonts: false, telemetry: false, hideClientButton: true });\n`,
      200,
      { 'Content-Type': 'text/javascript; charset=utf-8' },
    );
  });

  app.get('/docs/scalar.js', async (c) => {
    const script = await deps.docsScript?.();
    if (!script)
      throw new AppError('not_found', 'The API reference script is not installed; /openapi.json is.');
    c.header('Cache-Control', 'public, max-age=86400');
    return c.body(script as Uint8Array<ArrayBuffer>, 200, {
      'Content-Type': 'text/javascript; charset=utf-8',
    });
  });
}
