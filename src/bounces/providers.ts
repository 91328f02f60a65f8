import { z } from '@hono/zod-openapi';
import type { BounceReport } from './suppress.js';

/**
 * What each provider's webhook body says, as bounce reports: the shapes of the providers' documentation,
 * read loosely (providers add fields), and only the events that change the list. Anything else in a body
 * that passed its signature check is `ignored`, answered 200 so the provider does not retry it.
 */

/** An event read from a body: the reports it makes, the provider's id(s) for it, and its type for the answer. */
export interface ReadEvent {
  type: string;
  eventIds: string[];
  reports: BounceReport[];
}

/** The bare address from `a@b` or `"Name" <a@b>`; undefined when there is none. */
export function addressOf(raw: unknown): string | undefined {
  if (typeof raw !== 'string') return undefined;
  const inner = /<([^<>]+)>/.exec(raw)?.[1] ?? raw;
  const address = inner.trim();
  return address.length <= 254 && /^[^\s@]+@[^\s@]+$/.test(address) ? address : undefined;
}

const reports = (
  list: unknown[],
  kind: BounceReport['kind'],
  reason: string | undefined,
  eventId?: string,
): BounceReport[] =>
  list
    .map(addressOf)
    .filter((a): a is string => a !== undefined)
    .map((email) => ({ email, kind, reason, eventId }));

const text = z.string().max(10_000).optional().catch(undefined);

// ---------------------------------------------------------------------------------------------- Resend

/** Resend's envelope (every event type): `type`, `created_at`, `data`. */
export const resendBody = z
  .object({
    type: z.string().openapi({ example: 'email.bounced' }),
    created_at: z.string().optional(),
    data: z.looseObject({}),
  })
  .loose()
  .openapi('ResendWebhookEvent');

const resendData = z
  .object({
    to: z.union([z.array(z.string()).max(1000), z.string()]).catch([]),
    bounce: z.object({ type: text, subType: text, message: text }).loose().optional().catch(undefined),
  })
  .loose();

/** email.bounced (Permanent: a bounce; Transient or Undetermined: soft), email.complained, email.delivered. */
export function readResend(body: z.infer<typeof resendBody>, svixId: string): ReadEvent {
  const data = resendData.parse(body.data);
  const to = Array.isArray(data.to) ? data.to : [data.to];
  const event = (list: BounceReport[]): ReadEvent => ({ type: body.type, eventIds: [svixId], reports: list });
  switch (body.type) {
    case 'email.bounced': {
      const bounce = data.bounce;
      const permanent = bounce?.type === 'Permanent';
      const reason = [bounce?.type, bounce?.subType].filter(Boolean).join(': ') || bounce?.message;
      return event(reports(to, permanent ? 'bounce' : 'soft_bounce', reason));
    }
    case 'email.complained':
      return event(reports(to, 'complaint', 'complaint'));
    case 'email.delivered':
      return event(reports(to, 'delivered', undefined));
    default:
      return event([]);
  }
}

// -------------------------------------------------------------------------------------------- Postmark

export const postmarkBody = z
  .object({
    RecordType: z.string().openapi({ example: 'Bounce' }),
  })
  .loose()
  .openapi('PostmarkWebhookEvent');

/** Postmark bounce types that mean the address will never take mail. */
const POSTMARK_HARD = new Set(['HardBounce', 'BadEmailAddress', 'ManuallyDeactivated']);
/** Types that mean "not now": counted as soft bounces. The rest (auto-replies, challenge mails…) change nothing. */
const POSTMARK_SOFT = new Set(['SoftBounce', 'Transient', 'DnsError', 'Blocked', 'SpamNotification']);

const postmarkRecord = z
  .object({
    Type: text,
    Email: text,
    Recipient: text,
    Description: text,
    Details: text,
  })
  .loose();

/**
 * RecordType Bounce (by Type), SpamComplaint, Delivery. Postmark sends no event id that survives JSON
 * parsing (`ID` is a 64-bit number): a retry sends the same body, so its hash is the event's id.
 */
export function readPostmark(body: z.infer<typeof postmarkBody>, bodyHash: string): ReadEvent {
  const r = postmarkRecord.parse(body);
  const event = (list: BounceReport[]): ReadEvent => ({
    type: r.Type && body.RecordType === 'Bounce' ? `Bounce: ${r.Type}` : body.RecordType,
    eventIds: [`body:${bodyHash}`],
    reports: list,
  });
  const reason = [r.Type, r.Details || r.Description].filter(Boolean).join(': ');
  switch (body.RecordType) {
    case 'Bounce':
      if (r.Type && POSTMARK_HARD.has(r.Type)) return event(reports([r.Email], 'bounce', reason));
      if (r.Type && POSTMARK_SOFT.has(r.Type)) return event(reports([r.Email], 'soft_bounce', reason));
      return event([]);
    case 'SpamComplaint':
      return event(reports([r.Email], 'complaint', reason || 'SpamComplaint'));
    case 'Delivery':
      return event(reports([r.Recipient], 'delivered', undefined));
    default:
      return event([]);
  }
}

// --------------------------------------------------------------------------------------------- Mailgun

export const mailgunBody = z
  .object({
    signature: z.object({
      timestamp: z.union([z.string(), z.number()]),
      token: z.string().max(200),
      signature: z.string().max(200),
    }),
    'event-data': z.looseObject({ event: z.string().openapi({ example: 'failed' }) }),
  })
  .loose()
  .openapi('MailgunWebhookEvent');

const mailgunEvent = z
  .object({
    id: text,
    event: z.string(),
    severity: text,
    reason: text,
    recipient: text,
    'delivery-status': z
      .object({
        code: z.union([z.number(), z.string()]).optional().catch(undefined),
        description: text,
        message: text,
      })
      .loose()
      .optional()
      .catch(undefined),
  })
  .loose();

/** failed (severity permanent: a bounce; temporary: soft), complained, delivered. */
export function readMailgun(body: z.infer<typeof mailgunBody>): ReadEvent {
  const e = mailgunEvent.parse(body['event-data']);
  const status = e['delivery-status'];
  const eventIds = [`token:${body.signature.token}`, ...(e.id ? [`event:${e.id}`] : [])];
  const event = (list: BounceReport[]): ReadEvent => ({ type: e.event, eventIds, reports: list });
  const said = status?.description || status?.message || e.reason;
  const reason = [e.severity, status?.code, said].filter((x) => x !== undefined && x !== '').join(': ');
  switch (e.event) {
    case 'failed':
      return event(reports([e.recipient], e.severity === 'permanent' ? 'bounce' : 'soft_bounce', reason));
    case 'complained':
      return event(reports([e.recipient], 'complaint', 'complained'));
    case 'delivered':
      return event(reports([e.recipient], 'delivered', undefined));
    default:
      return event([]);
  }
}

// -------------------------------------------------------------------------------------------- SendGrid

export const sendgridBody = z
  .array(z.looseObject({ email: z.string().optional(), event: z.string().openapi({ example: 'bounce' }) }))
  .max(10_000)
  .openapi('SendGridWebhookEvents');

const sendgridEvent = z
  .object({
    email: text,
    event: z.string(),
    type: text,
    reason: text,
    response: text,
    status: text,
    sg_event_id: text,
  })
  .loose();

/**
 * A batch of events: bounce (type `bounce`: a bounce; `blocked`: soft), dropped for a bounced address (a
 * bounce) or a spam-reporting one (a complaint), deferred (soft), spamreport, delivered. Each event is acted
 * on once, by its sg_event_id.
 */
export function readSendGrid(body: z.infer<typeof sendgridBody>): ReadEvent {
  const list: BounceReport[] = [];
  const types = new Set<string>();
  for (const raw of body) {
    const e = sendgridEvent.safeParse(raw);
    if (!e.success) continue;
    const { event, sg_event_id: eventId } = e.data;
    types.add(event);
    const reason = [e.data.type ?? event, e.data.status, e.data.reason ?? e.data.response]
      .filter(Boolean)
      .join(': ');
    const add = (kind: BounceReport['kind']) => list.push(...reports([e.data.email], kind, reason, eventId));
    if (event === 'bounce') add(e.data.type === 'blocked' ? 'soft_bounce' : 'bounce');
    else if (event === 'dropped' && e.data.reason === 'Bounced Address') add('bounce');
    else if (event === 'dropped' && e.data.reason === 'Spam Reporting Address') add('complaint');
    else if (event === 'deferred') add('soft_bounce');
    else if (event === 'spamreport') add('complaint');
    else if (event === 'delivered') list.push(...reports([e.data.email], 'delivered', undefined, eventId));
  }
  return { type: [...types].sort().join(', ') || 'empty batch', eventIds: [], reports: list };
}

// --------------------------------------------------------------------------------------------- generic

export const genericBody = z
  .object({
    email: z.string().max(254).openapi({ example: 'reader@example.org' }),
    type: z.enum(['bounce', 'complaint', 'delivered']),
    permanent: z.boolean().optional().openapi({
      description: 'For a bounce: true for a permanent one (the address is suppressed); else a soft bounce.',
    }),
    reason: z.string().max(1000).optional().openapi({ description: 'Kept in the subscriber’s history.' }),
    id: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .openapi({
        description:
          'Your id for this event: the same event sent again (a retry) is acted on once. Without it, the same ' +
          'body sent again is.',
      }),
  })
  .openapi('BounceWebhookEvent');

/** `{"email","type":"bounce","permanent":true}`, `{"email","type":"complaint"}`, `{"email","type":"delivered"}`. */
export function readGeneric(body: z.infer<typeof genericBody>, bodyHash: string): ReadEvent {
  const kind =
    body.type === 'bounce'
      ? body.permanent
        ? 'bounce'
        : 'soft_bounce'
      : body.type === 'complaint'
        ? 'complaint'
        : 'delivered';
  return {
    type: body.type,
    eventIds: [body.id ? `id:${body.id}` : `body:${bodyHash}`],
    reports: reports([body.email], kind, body.reason ?? (kind === 'delivered' ? undefined : body.type)),
  };
}
