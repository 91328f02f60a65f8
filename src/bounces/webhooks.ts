import type { z as zod } from '@hono/zod-openapi';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Config } from '../config.js';
import type { AppEnv, Deps } from '../deps.js';
import { AppError } from '../http/errors.js';
import { apiError, json, unavailable } from '../http/openapi.js';
import { maskEmail } from '../mail/mailer.js';
import type { ReadEvent } from './providers.js';
import {
  genericBody,
  mailgunBody,
  postmarkBody,
  readGeneric,
  readMailgun,
  readPostmark,
  readResend,
  readSendGrid,
  resendBody,
  sendgridBody,
} from './providers.js';
import type { ReportSource } from './suppress.js';
import { applyReports, receiptExists } from './suppress.js';
import {
  sha256Hex,
  verifyBasic,
  verifyGeneric,
  verifyMailgun,
  verifySendGrid,
  verifySvix,
} from './verify.js';

/** What a webhook answers the provider (and what a test sees): never the addresses themselves. */
export const webhookOutcome = z
  .object({
    status: z.enum(['processed', 'ignored', 'confirmed', 'noted', 'duplicate']).openapi({
      description: '`duplicate`: this event was acted on before (providers retry); nothing was done again.',
    }),
    type: z.string().optional().openapi({ description: 'The provider’s event type, e.g. email.bounced.' }),
    changed: z.number().int().optional().openapi({ description: 'Subscribers whose status changed.' }),
    reason: z.string().optional(),
  })
  .openapi('WebhookOutcome');

type Outcome = zod.infer<typeof webhookOutcome>;

/** Provider bodies: SendGrid batches and Postmark's bounce dumps are larger than a form's limit. */
export const WEBHOOK_LIMIT_BYTES = 1024 * 1024;

/** One provider's endpoint: where, when it is on, how a request is checked, and how its body is read. */
interface Provider {
  source: ReportSource;
  path: string;
  /** The variables that turn it on, for the 404 message and the document. */
  settings: string;
  summary: string;
  description: string;
  scheme: string;
  schema: zod.ZodType;
  enabled(config: Config): boolean;
  /** Why the request is refused (401), or undefined when it is the provider's. */
  verify(c: Context<AppEnv>, raw: string, deps: Deps, nowMs: number): Promise<string | undefined>;
  read(body: never, raw: string, header: (name: string) => string | undefined): Promise<ReadEvent>;
}

const PROVIDERS: Provider[] = [
  {
    source: 'resend',
    path: '/webhooks/resend',
    settings: 'RESEND_WEBHOOK_SECRET',
    summary: 'Resend bounces and complaints',
    scheme:
      'Svix signature: `svix-id`, `svix-timestamp` (within 5 minutes) and `svix-signature` (`v1,<base64 ' +
      'HMAC-SHA256 of id.timestamp.body>` with the `whsec_` secret; one match among those listed is enough).',
    description:
      '`email.bounced` of type Permanent suppresses the address; Transient or Undetermined is a soft bounce. ' +
      '`email.complained` unsubscribes it (history: `complained`). `email.delivered` forgets the soft bounces ' +
      'counted. Other events are ignored. Acted on once per `svix-id`.',
    schema: resendBody,
    enabled: (config) => config.resendWebhookSecret !== undefined,
    verify: (c, raw, deps, now) =>
      verifySvix(
        deps.config.resendWebhookSecret ?? '',
        {
          id: c.req.header('svix-id'),
          timestamp: c.req.header('svix-timestamp'),
          signature: c.req.header('svix-signature'),
        },
        raw,
        now,
      ),
    read: async (body, _raw, header) => readResend(body, `svix:${header('svix-id')}`),
  },
  {
    source: 'postmark',
    path: '/webhooks/postmark',
    settings: 'POSTMARK_WEBHOOK_USER and POSTMARK_WEBHOOK_PASSWORD',
    summary: 'Postmark bounces and spam complaints',
    scheme:
      'HTTP Basic auth, as Postmark recommends: put the user and password in the webhook URL ' +
      '(`https://USER:PASSWORD@your-host/webhooks/postmark`). Postmark signs nothing, so there is no timestamp.',
    description:
      '`RecordType: "Bounce"` with a hard type (HardBounce, BadEmailAddress, ManuallyDeactivated) suppresses ' +
      'the address; SoftBounce, Transient, DnsError, Blocked and SpamNotification are soft bounces; other types ' +
      'change nothing. `SpamComplaint` unsubscribes it; `Delivery` forgets the soft bounces counted. The same ' +
      'body twice is acted on once.',
    schema: postmarkBody,
    enabled: (config) => config.postmarkWebhook !== undefined,
    verify: (c, _raw, deps) =>
      verifyBasic(
        c.req.header('authorization'),
        deps.config.postmarkWebhook?.user ?? '',
        deps.config.postmarkWebhook?.password ?? '',
      ),
    read: async (body, raw) => readPostmark(body, await sha256Hex(raw)),
  },
  {
    source: 'mailgun',
    path: '/webhooks/mailgun',
    settings: 'MAILGUN_WEBHOOK_SIGNING_KEY',
    summary: 'Mailgun bounces and complaints',
    scheme:
      'The body’s `signature`: `signature` = hex HMAC-SHA256 of `timestamp + token` with the webhook signing ' +
      'key, `timestamp` within 5 minutes; a token seen before is refused (a replay).',
    description:
      '`event-data.event: "failed"` with `severity: "permanent"` suppresses the address; `temporary` is a soft ' +
      'bounce. `complained` unsubscribes it; `delivered` forgets the soft bounces counted. Other events are ' +
      'ignored. Acted on once per token and per `event-data.id`.',
    schema: mailgunBody,
    enabled: (config) => config.mailgunWebhookSigningKey !== undefined,
    verify: async (_c, raw, deps, now) => {
      let body: { signature?: Record<string, unknown> };
      try {
        body = JSON.parse(raw) as typeof body;
      } catch {
        return 'the body is not JSON with a signature';
      }
      const signature = body?.signature;
      if (typeof signature !== 'object' || signature === null) return 'the body has no signature';
      const why = await verifyMailgun(deps.config.mailgunWebhookSigningKey ?? '', signature, now);
      if (why) return why;
      if (await receiptExists(deps.database.db, 'mailgun', `token:${String(signature.token)}`)) {
        return 'this token was seen before: a replayed request';
      }
      return undefined;
    },
    read: async (body) => readMailgun(body),
  },
  {
    source: 'sendgrid',
    path: '/webhooks/sendgrid',
    settings: 'SENDGRID_WEBHOOK_PUBLIC_KEY',
    summary: 'SendGrid bounces and spam reports (Event Webhook)',
    scheme:
      'Signed Event Webhook: ECDSA P-256 / SHA-256 over `timestamp + body`, the base64 DER signature in ' +
      '`X-Twilio-Email-Event-Webhook-Signature`, the timestamp (within 5 minutes) in ' +
      '`X-Twilio-Email-Event-Webhook-Timestamp`, checked with the verification key SendGrid shows.',
    description:
      'A batch of events. `bounce` of type bounce, and `dropped` for a bounced address, suppress the address; ' +
      '`bounce` of type blocked and `deferred` are soft bounces. `spamreport` (and `dropped` for a ' +
      'spam-reporting address) unsubscribes it; `delivered` forgets the soft bounces counted. Other events are ' +
      'ignored. Each event is acted on once, by `sg_event_id`.',
    schema: sendgridBody,
    enabled: (config) => config.sendgridWebhookPublicKey !== undefined,
    verify: (c, raw, deps, now) =>
      verifySendGrid(
        deps.config.sendgridWebhookPublicKey ?? '',
        {
          signature: c.req.header('x-twilio-email-event-webhook-signature'),
          timestamp: c.req.header('x-twilio-email-event-webhook-timestamp'),
        },
        raw,
        now,
      ),
    read: async (body) => readSendGrid(body),
  },
  {
    source: 'webhook',
    path: '/webhooks/bounces',
    settings: 'BOUNCE_WEBHOOK_SECRET',
    summary: 'Bounces and complaints from any other provider, or your own relay',
    scheme:
      '`X-Timestamp`: unix seconds (within 5 minutes); `X-Signature-256: sha256=<hex HMAC-SHA256 of ' +
      '"timestamp.body">` with BOUNCE_WEBHOOK_SECRET.',
    description:
      '`{"email","type":"bounce","permanent":true}` suppresses the address (without `permanent`: a soft ' +
      'bounce); `{"email","type":"complaint"}` unsubscribes it; `{"email","type":"delivered"}` forgets the soft ' +
      'bounces counted. Acted on once per `id` (or per body, without one).',
    schema: genericBody,
    enabled: (config) => config.bounceWebhookSecret !== undefined,
    verify: (c, raw, deps, now) =>
      verifyGeneric(
        deps.config.bounceWebhookSecret ?? '',
        { signature: c.req.header('x-signature-256'), timestamp: c.req.header('x-timestamp') },
        raw,
        now,
      ),
    read: async (body, raw) => readGeneric(body, await sha256Hex(raw)),
  },
];

/** The webhook paths, which take bodies up to WEBHOOK_LIMIT_BYTES rather than BODY_LIMIT_BYTES. */
export const PROVIDER_WEBHOOK_PATHS = PROVIDERS.map((p) => p.path);

/** Which provider webhooks are on, with their paths: for the doctor and the start-up line. */
export function enabledWebhooks(config: Config): { source: ReportSource; path: string; settings: string }[] {
  return PROVIDERS.filter((p) => p.enabled(config)).map(({ source, path, settings }) => ({
    source,
    path,
    settings,
  }));
}

/**
 * POST /webhooks/{resend,postmark,mailgun,sendgrid,bounces}: bounce and complaint reports from the mail
 * provider the service sends with. Each answers 404 until its setting is present; a request that is not
 * the provider's (unsigned, badly signed, stale, replayed) gets 401 and changes nothing, before its body is
 * even read as JSON. `deps.now` lets tests move the clock.
 */
export function providerWebhookRoutes(deps: Deps & { now?: () => number }): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  for (const provider of PROVIDERS) mount(app, deps, provider);
  return app;
}

function mount(app: OpenAPIHono<AppEnv>, deps: Deps & { now?: () => number }, provider: Provider): void {
  const { config, log } = deps;
  const now = deps.now ?? Date.now;
  const tooLarge = bodyLimit({
    maxSize: WEBHOOK_LIMIT_BYTES,
    onError: () => {
      throw new AppError('payload_too_large', `The body is larger than ${WEBHOOK_LIMIT_BYTES} bytes.`);
    },
  });
  // Runs before the body is validated: off is 404 and not signed is 401, whatever the body holds.
  const guard: MiddlewareHandler<AppEnv> = async (c, next) => {
    if (!provider.enabled(config)) {
      throw new AppError('not_found', 'There is nothing at this address. Check the link and try again.');
    }
    const why = await provider.verify(c, await c.req.text(), deps, now());
    if (why) {
      log.warn({ msg: 'webhook request refused', source: provider.source, reason: why });
      throw new AppError('signature_invalid', `Refused: ${why}. Nothing was changed.`);
    }
    await next();
  };
  const route = createRoute({
    method: 'post',
    path: provider.path,
    tags: ['Webhooks'],
    summary: provider.summary,
    description: `Only when ${provider.settings} ${provider.settings.includes(' and ') ? 'are' : 'is'} set (404 otherwise). ${provider.scheme} ${provider.description} An address the list does not hold changes nothing.`,
    middleware: [tooLarge, guard] as const,
    request: {
      body: { required: true, content: { 'application/json': { schema: provider.schema } } },
    },
    responses: {
      200: json(webhookOutcome, 'Accepted: processed, a duplicate, or nothing to do.'),
      400: apiError('The body is not JSON (`malformed_json`).'),
      401: apiError(`Not the provider’s: unsigned, badly signed, stale or replayed (\`signature_invalid\`).`),
      404: apiError(`${provider.settings} not set.`),
      413: apiError(`The body is larger than 1 MiB (\`payload_too_large\`).`),
      422: apiError('Signed, but not an event of the documented shape (`invalid_input`).'),
      ...unavailable(apiError),
    },
  });
  app.openapi(route, async (c) => {
    const raw = await c.req.text();
    const event = await provider.read(c.req.valid('json') as never, raw, (name) => c.req.header(name));
    return c.json(await apply(deps, provider.source, event), 200);
  });
}

async function apply(deps: Deps, source: ReportSource, event: ReadEvent): Promise<Outcome> {
  if (event.reports.length === 0) {
    deps.log.info({ msg: 'webhook event ignored', source, type: event.type });
    return {
      status: 'ignored',
      type: event.type,
      reason: 'only bounces, complaints and deliveries change anything',
    };
  }
  const result = await applyReports(deps.database.db, {
    source,
    eventIds: event.eventIds,
    reports: event.reports,
    softBounceLimit: deps.config.softBounceLimit,
  });
  deps.log.info({
    msg: 'webhook event applied',
    source,
    type: event.type,
    kinds: [...new Set(event.reports.map((r) => r.kind))],
    changed: result.changed.map(maskEmail),
    duplicate: result.duplicate,
  });
  if (result.duplicate) {
    return { status: 'duplicate', type: event.type, changed: 0, reason: 'this event was acted on before' };
  }
  return { status: 'processed', type: event.type, changed: result.changed.length };
}
