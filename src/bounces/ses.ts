import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import type { AppEnv, Deps } from '../deps.js';
import { AppError } from '../http/errors.js';
import { apiError, json, unavailable } from '../http/openapi.js';
import { maskEmail } from '../mail/mailer.js';
import type { SnsMessage } from './sns.js';
import { createSnsVerifier, isAwsSnsUrl, parseSnsMessage } from './sns.js';
import type { BounceReport, ReportsOutcome } from './suppress.js';
import { applyReports } from './suppress.js';

/** Where SNS posts Amazon SES notifications (subscribe PUBLIC_URL + this path to the topic). */
export const SES_WEBHOOK_PATH = '/webhooks/ses';

/** SNS messages carry up to 256 KiB, and JSON escaping in the envelope adds to that. */
export const SES_WEBHOOK_LIMIT_BYTES = 1024 * 1024;

const CONFIRM_TIMEOUT_MS = 10_000;

const recipients = z.array(z.object({ emailAddress: z.string() }).loose()).max(1000);

/**
 * The parts of an SES notification this service acts on. SES sends `notificationType` (identity
 * notifications) or `eventType` (configuration-set event publishing); everything else in it is ignored.
 */
const sesNotification = z
  .object({
    notificationType: z.string().optional(),
    eventType: z.string().optional(),
    bounce: z
      .object({ bounceType: z.string(), bounceSubType: z.string().optional(), bouncedRecipients: recipients })
      .loose()
      .optional(),
    complaint: z
      .object({ complainedRecipients: recipients, complaintFeedbackType: z.string().optional() })
      .loose()
      .optional(),
    delivery: z
      .object({ recipients: z.array(z.string()).max(1000) })
      .loose()
      .optional(),
  })
  .loose();

type SesNotification = z.infer<typeof sesNotification>;

/** What the endpoint answers SNS (and what a test sees): never the addresses themselves. */
interface Outcome {
  status: 'confirmed' | 'noted' | 'processed' | 'ignored' | 'duplicate';
  type?: string;
  changed?: number;
  reason?: string;
}

const sesWebhookRoute = createRoute({
  method: 'post',
  path: SES_WEBHOOK_PATH,
  tags: ['Webhooks'],
  summary: 'Amazon SES bounces and complaints, through Amazon SNS',
  description:
    'Only when SES_SNS_TOPIC_ARN is set (404 otherwise). Takes the messages an SNS HTTPS subscription posts ' +
    '(`text/plain` JSON, raw message delivery off), checks Amazon’s signature (SignatureVersion 1 or 2) with ' +
    'the certificate at SigningCertURL on an Amazon SNS host, the topic and the timestamp (at most an hour ' +
    'old). A permanent bounce marks the address bounced; a transient or undetermined one is a soft bounce ' +
    '(SOFT_BOUNCE_LIMIT of them on different letters suppress); a complaint unsubscribes it (history: ' +
    '`complained`, also when the address had already left); a delivery forgets the soft bounces counted. ' +
    'Each message is acted on once (by MessageId). A SubscriptionConfirmation is confirmed by visiting its ' +
    'SubscribeURL. Other notifications are ignored.',
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
          status: z.enum(['processed', 'ignored', 'confirmed', 'noted', 'duplicate']).openapi({
            description:
              '`duplicate`: this event was acted on before (providers retry); nothing was done again.',
          }),
          type: z.string().optional().openapi({ description: 'The SES notification type, e.g. Bounce.' }),
          changed: z.number().int().optional().openapi({ description: 'Subscribers whose status changed.' }),
          reason: z.string().optional(),
        })
        .openapi('WebhookOutcome'),
      'Accepted: processed, or nothing to do.',
    ),
    400: apiError('Not an SNS message.'),
    401: apiError('Not signed by Amazon SNS, not a configured topic, or too old.'),
    404: apiError('SES_SNS_TOPIC_ARN is not set.'),
    413: apiError('The body is larger than 1 MiB: not an SNS message (`payload_too_large`).'),
    502: apiError('Amazon could not be reached to fetch the certificate or confirm the subscription.'),
    ...unavailable(apiError),
  },
});

/**
 * POST /webhooks/ses: Amazon SES bounce and complaint notifications through an SNS topic. Each message must
 * come from a topic in SES_SNS_TOPIC_ARN and carry Amazon's signature; anything else is refused and changes
 * nothing. A hard bounce suppresses the address like an SMTP 5xx answer; a complaint unsubscribes it.
 * Answers 404, as any unknown address does, until SES_SNS_TOPIC_ARN is set.
 */
export function sesWebhookRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  const { config, log } = deps;
  const fetchFn = deps.fetch ?? ((input, init) => fetch(input, init));
  const verify = createSnsVerifier({ fetch: fetchFn });
  const tooLarge = bodyLimit({
    maxSize: SES_WEBHOOK_LIMIT_BYTES,
    onError: () => {
      throw new AppError(
        'payload_too_large',
        `The body is larger than ${SES_WEBHOOK_LIMIT_BYTES} bytes: not an SNS message.`,
      );
    },
  });

  app.openapi({ ...sesWebhookRoute, middleware: [tooLarge] }, async (c) => {
    if (config.sesSnsTopicArns.length === 0) {
      throw new AppError('not_found', 'There is nothing at this address. Check the link and try again.');
    }
    const message = parseSnsMessage(await c.req.text(), c.req.header('x-amz-sns-message-type'));
    if (!config.sesSnsTopicArns.includes(message.TopicArn)) {
      log.warn({ msg: 'sns message from a topic not in SES_SNS_TOPIC_ARN', messageId: message.MessageId });
      throw new AppError(
        'topic_not_allowed',
        'This endpoint takes messages only from the SNS topics named in SES_SNS_TOPIC_ARN.',
      );
    }
    if (message.Type !== 'Notification' && !isAwsSnsUrl(message.SubscribeURL ?? '')) {
      throw new AppError(
        'signature_invalid',
        'SubscribeURL is not an https:// address on an Amazon SNS host.',
      );
    }
    try {
      await verify(message);
    } catch (error) {
      if (error instanceof AppError) {
        log.warn({ msg: 'sns message refused', messageId: message.MessageId, reason: error.message });
      }
      throw error;
    }
    return c.json(await handle(deps, fetchFn, message), 200);
  });
  return app;
}

async function handle(deps: Deps, fetchFn: typeof fetch, message: SnsMessage): Promise<Outcome> {
  const { log } = deps;
  if (message.Type === 'SubscriptionConfirmation') {
    await confirmSubscription(fetchFn, message);
    log.info({ msg: 'sns subscription confirmed', topicArn: message.TopicArn });
    return { status: 'confirmed' };
  }
  if (message.Type === 'UnsubscribeConfirmation') {
    log.warn({
      msg: 'sns subscription ended: SES bounces and complaints no longer reach this service',
      topicArn: message.TopicArn,
    });
    return { status: 'noted' };
  }
  const notification = readNotification(message.Message);
  if (!notification) {
    // SES sends a plain-text test message when a topic is set up; nothing to do with it.
    log.info({ msg: 'ses notification ignored: not an SES event', messageId: message.MessageId });
    return { status: 'ignored', reason: 'not an SES bounce or complaint' };
  }
  return applyNotification(deps, message, notification);
}

/** Visits SubscribeURL, which is how an SNS subscription is confirmed. */
async function confirmSubscription(fetchFn: typeof fetch, message: SnsMessage): Promise<void> {
  const failed = (why: string) =>
    new AppError(
      'confirmation_failed',
      `The SNS subscription could not be confirmed (${why}); ask SNS to send the confirmation again.`,
    );
  let res: Response;
  try {
    res = await fetchFn(message.SubscribeURL as string, {
      redirect: 'manual',
      signal: AbortSignal.timeout(CONFIRM_TIMEOUT_MS),
    });
  } catch {
    throw failed('Amazon could not be reached');
  }
  await res.body?.cancel();
  if (res.status !== 200) throw failed(`Amazon answered ${res.status}`);
}

function readNotification(text: string): SesNotification | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = sesNotification.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

/** The bare address from an SES recipient (`a@b` or, rarely, `"Name" <a@b>`); undefined when there is none. */
function addressOf(raw: string): string | undefined {
  const inner = /<([^<>]+)>/.exec(raw)?.[1] ?? raw;
  const address = inner.trim();
  return address.length <= 254 && /^[^\s@]+@[^\s@]+$/.test(address) ? address : undefined;
}

const addresses = (list: { emailAddress: string }[]) =>
  list.map((r) => addressOf(r.emailAddress)).filter((a): a is string => a !== undefined);

async function applyNotification(deps: Deps, message: SnsMessage, n: SesNotification): Promise<Outcome> {
  const { log, config } = deps;
  const messageId = message.MessageId;
  const type = n.eventType ?? n.notificationType ?? 'unknown';
  const apply = (reports: BounceReport[]) =>
    applyReports(deps.database.db, {
      source: 'ses',
      eventIds: [messageId],
      reports,
      softBounceLimit: config.softBounceLimit,
    });
  if (type === 'Bounce' && n.bounce) {
    const list = addresses(n.bounce.bouncedRecipients);
    const permanent = n.bounce.bounceType === 'Permanent';
    const reason = [n.bounce.bounceType, n.bounce.bounceSubType].filter(Boolean).join(': ');
    const result = await apply(
      list.map((email) => ({ email, kind: permanent ? 'bounce' : 'soft_bounce', reason })),
    );
    log.info({
      msg: permanent ? 'ses hard bounce: addresses suppressed' : 'ses soft bounce recorded',
      messageId,
      bounceType: n.bounce.bounceType,
      bounceSubType: n.bounce.bounceSubType,
      recipients: list.map(maskEmail),
      changed: result.changed.map(maskEmail),
      duplicate: result.duplicate,
    });
    return outcome(type, result);
  }
  if (type === 'Complaint' && n.complaint) {
    const list = addresses(n.complaint.complainedRecipients);
    // A feedback report of type "not-spam" says the reader took the mail out of their spam folder.
    if (n.complaint.complaintFeedbackType === 'not-spam') {
      log.info({
        msg: 'ses complaint of type not-spam: address kept',
        messageId,
        recipients: list.map(maskEmail),
      });
      return { status: 'processed', type, changed: 0, reason: 'not-spam feedback: nothing changed' };
    }
    const reason = n.complaint.complaintFeedbackType ?? 'complaint';
    const result = await apply(list.map((email) => ({ email, kind: 'complaint', reason })));
    log.info({
      msg: 'ses complaint: addresses unsubscribed',
      messageId,
      feedbackType: n.complaint.complaintFeedbackType,
      recipients: list.map(maskEmail),
      changed: result.changed.map(maskEmail),
      duplicate: result.duplicate,
    });
    return outcome(type, result);
  }
  if (type === 'Delivery' && n.delivery) {
    const result = await apply(n.delivery.recipients.map((email) => ({ email, kind: 'delivered' })));
    return outcome(type, result);
  }
  log.info({ msg: 'ses notification ignored', messageId, type });
  return { status: 'ignored', type, reason: 'only bounces, complaints and deliveries change anything' };
}

function outcome(type: string, result: ReportsOutcome): Outcome {
  if (result.duplicate) {
    return { status: 'duplicate', type, changed: 0, reason: 'this message was acted on before' };
  }
  return { status: 'processed', type, changed: result.changed.length };
}
