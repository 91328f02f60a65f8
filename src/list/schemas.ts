import { z } from '@hono/zod-openapi';
import { subscriberStatus } from '../db/schema.js';

/** The shapes of the publisher's subscriber endpoints: they validate requests and describe them in /openapi.json. */

export const statusSchema = z.enum(subscriberStatus.enumValues).openapi('SubscriberStatus');

/** A point in time as a query parameter: a date (`2026-01-31`) or an ISO 8601 date-time. */
const instant = z
  .string()
  .trim()
  .regex(/^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/, {
    error: 'expected a date like 2026-01-31 or a date-time like 2026-01-31T12:00:00Z',
  })
  .refine(
    (v) =>
      !Number.isNaN(Date.parse(v)) &&
      new Date(`${v.slice(0, 10)}T00:00:00Z`).toISOString().startsWith(v.slice(0, 10)),
    {
      error: 'expected a real date',
    },
  )
  .transform((v) => new Date(v.length === 10 ? `${v}T00:00:00Z` : v));

/** The filters shared by the list and the export. */
export const subscriberFilters = z.object({
  status: statusSchema.optional().openapi({ param: { name: 'status', in: 'query' } }),
  since: instant.optional().openapi({
    param: { name: 'since', in: 'query' },
    description: 'Only subscribers created at or after this date (UTC) or date-time.',
    example: '2026-01-01',
  }),
  q: z
    .string()
    .trim()
    .min(1, { error: 'q must not be empty.' })
    .max(254, { error: 'q is too long: at most 254 characters.' })
    .optional()
    .openapi({
      param: { name: 'q', in: 'query' },
      description: 'Only addresses that contain this text (case-insensitive).',
      example: 'example.org',
    }),
});

export const listQuery = subscriberFilters.extend({
  limit: z.coerce
    .number({ error: 'limit must be a whole number.' })
    .int({ error: 'limit must be a whole number.' })
    .min(1, { error: 'limit must be at least 1.' })
    .max(500, { error: 'limit must be at most 500.' })
    .default(50)
    .openapi({ param: { name: 'limit', in: 'query' }, description: 'Subscribers per page (1–500).' }),
  cursor: z
    .string()
    .max(200, { error: 'cursor is too long: pass nextCursor from the previous page as it is.' })
    .optional()
    .openapi({
      param: { name: 'cursor', in: 'query' },
      description: 'nextCursor from the previous page; absent for the first page.',
    }),
});

export type SubscriberFilters = z.output<typeof subscriberFilters>;
export type ListQuery = z.output<typeof listQuery>;

export const subscriberView = z
  .object({
    id: z.number().int(),
    email: z.string(),
    name: z.string().nullable(),
    status: statusSchema,
    createdAt: z.string().openapi({ format: 'date-time' }),
    confirmedAt: z.string().nullable().openapi({ format: 'date-time' }),
    unsubscribedAt: z.string().nullable().openapi({ format: 'date-time' }),
    bouncedAt: z.string().nullable().openapi({ format: 'date-time' }),
  })
  .openapi('Subscriber');

export type SubscriberView = z.infer<typeof subscriberView>;

export const subscriberPage = z
  .object({
    subscribers: z.array(subscriberView),
    nextCursor: z
      .string()
      .nullable()
      .openapi({ description: 'Pass as `cursor` for the next page; null on the last page.' }),
  })
  .openapi('SubscriberPage');

export const subscriberEvent = z
  .object({
    kind: z
      .enum(['subscribed', 'imported', 'confirmed', 'soft_bounced', 'complained', 'unsubscribed', 'bounced'])
      .openapi({
        description:
          '`complained`: their mail provider reported an essay as spam; they were unsubscribed (if not already). ' +
          '`soft_bounced`: a letter was refused for now; SOFT_BOUNCE_LIMIT of them on different letters suppress.',
      }),
    at: z.string().openapi({ format: 'date-time' }),
    source: z
      .string()
      .nullable()
      .openapi({
        description:
          'Who reported a bounce or complaint: `smtp`, `ses`, `resend`, `postmark`, `mailgun`, `sendgrid`, ' +
          '`webhook` or `mailbox`; null for other events.',
      }),
    reason: z.string().nullable().openapi({ description: 'The reporter’s words, e.g. the bounce type.' }),
    essay: z
      .string()
      .nullable()
      .openapi({ description: 'The slug of the essay whose letter the report is about, when known.' }),
  })
  .openapi('SubscriberEvent');

export const essayReceived = z
  .object({
    slug: z.string(),
    title: z.string(),
    url: z.string(),
    publishedAt: z.string().openapi({ format: 'date-time' }),
    delivery: z.enum(['pending', 'claimed', 'sending', 'sent', 'failed', 'skipped', 'unknown']).openapi({
      description:
        '`sent`: the mail server accepted the letter. `unknown`: it may have; not resent. Others: not received.',
    }),
    at: z
      .string()
      .nullable()
      .openapi({ format: 'date-time', description: 'When the delivery last changed.' }),
  })
  .openapi('EssayReceived');

/** What was recorded with a subscription request or its confirmation (issue 26). */
const consentEvidence = {
  page: z.string().nullable().openapi({
    description:
      'The page it came from (Referer: origin and path; else Origin); for a confirmation, the origin.',
  }),
  userAgent: z.string().nullable(),
  ip: z.string().nullable().openapi({ description: 'Recorded only with RECORD_SIGNUP_IP=true.' }),
  textVersion: z.string().nullable().openapi({
    description: 'The consent text’s version: CONSENT_TEXT_VERSION, or a hash of the forms’ wording.',
  }),
};

export const consentRecord = z
  .object({
    requestedAt: z.string().openapi({ format: 'date-time' }),
    ...consentEvidence,
    confirmation: z
      .object({ at: z.string().openapi({ format: 'date-time' }), ...consentEvidence })
      .nullable()
      .openapi({ description: 'The confirmation through this request’s link; null while not confirmed.' }),
  })
  .openapi('ConsentRecord');

export const subscriberDetail = z
  .object({
    subscriber: subscriberView,
    consent: z.array(consentRecord).openapi({
      description:
        'Each subscription request, oldest first (none for imported subscribers); erasure removes them.',
    }),
    history: z.array(subscriberEvent),
    essays: z.array(essayReceived).openapi({ description: 'Every essay sent out to them, newest first.' }),
  })
  .openapi('SubscriberDetail');

export type SubscriberDetail = z.infer<typeof subscriberDetail>;

/** A subscriber is named by id or by address (case-insensitive). */
export const subscriberRef = z.object({
  subscriber: z
    .string()
    .min(1)
    .max(254)
    .openapi({
      param: { name: 'subscriber', in: 'path' },
      description: 'The subscriber’s id, or their email address (URL-encoded).',
      example: 'reader@example.org',
    }),
});

export const importReport = z
  .object({
    rows: z.number().int().openapi({
      description:
        'Data rows read (the header and blank lines not counted): created + updated + unchanged + invalid.',
    }),
    created: z
      .number()
      .int()
      .openapi({ description: 'Addresses new to the list: confirmed + queued + unsubscribed + bounced.' }),
    confirmed: z
      .number()
      .int()
      .openapi({ description: 'Of those, stored as confirmed because the file says they subscribed.' }),
    queued: z
      .number()
      .int()
      .openapi({ description: 'Of those, sent a confirmation email (pending until they click).' }),
    unsubscribed: z.number().int().openapi({
      description: 'Of those, stored as unsubscribed because the file says so (never mailed).',
    }),
    bounced: z.number().int().openapi({
      description:
        'Of those, stored as bounced because the file says so (Mailchimp’s cleaned; never mailed).',
    }),
    updated: z
      .number()
      .int()
      .openapi({ description: 'Pending addresses already on the list that the file says confirmed.' }),
    unchanged: z.number().int().openapi({
      description: 'Addresses already on the list (or repeated in the file), left as they were.',
    }),
    invalid: z.number().int().openapi({ description: 'Rows refused; `errors` says why, by line.' }),
    errors: z
      .array(z.object({ line: z.number().int(), message: z.string() }))
      .openapi({ description: 'The refused rows by line number (the first 1000).' }),
    ignoredColumns: z.array(z.string()).openapi({
      description: 'Columns of the file the import does not use, as the header names them.',
      example: ['MEMBER_RATING', 'LEID'],
    }),
    summary: z.string().openapi({
      description: 'The counts in one sentence, ending with their total and the ignored columns.',
      example:
        'Imported 62 rows: 62 new (60 confirmed, 1 sent a confirmation email, 1 unsubscribed, 0 bounced), ' +
        '0 confirmed now, 0 unchanged, 0 refused; 62 + 0 + 0 + 0 = 62 rows read. Ignored columns: MEMBER_RATING, LEID.',
    }),
  })
  .openapi('ImportReport');

/** What an import did, in one sentence whose parts add up to the rows read. */
export function importSummary(r: Omit<ImportReport, 'summary'>): string {
  const ignored = r.ignoredColumns.length ? ` Ignored columns: ${r.ignoredColumns.join(', ')}.` : '';
  return (
    `Imported ${r.rows} rows: ${r.created} new (${r.confirmed} confirmed, ${r.queued} sent a confirmation email, ` +
    `${r.unsubscribed} unsubscribed, ${r.bounced} bounced), ${r.updated} confirmed now, ${r.unchanged} unchanged, ` +
    `${r.invalid} refused; ${r.created} + ${r.updated} + ${r.unchanged} + ${r.invalid} = ${r.rows} rows read.${ignored}`
  );
}

export type ImportReport = z.infer<typeof importReport>;

export const erasedView = z
  .object({
    erased: z.literal(true),
    deliveries: z
      .number()
      .int()
      .openapi({ description: 'Ledger rows folded into anonymous per-essay counts.' }),
  })
  .openapi('Erased');

export const sendoutView = z
  .object({
    status: z.enum(['sending', 'done']),
    total: z.number().int(),
    pending: z.number().int(),
    sent: z.number().int(),
    failed: z.number().int(),
    skipped: z.number().int(),
    unknown: z.number().int(),
  })
  .openapi('Sendout');

export const statsQuery = z.object({
  days: z.coerce
    .number({ error: 'days must be a whole number.' })
    .int({ error: 'days must be a whole number.' })
    .min(1, { error: 'days must be at least 1.' })
    .max(366, { error: 'days must be at most 366.' })
    .default(30)
    .openapi({ param: { name: 'days', in: 'query' }, description: 'Days of growth to show (UTC days).' }),
  sendouts: z.coerce
    .number({ error: 'sendouts must be a whole number.' })
    .int({ error: 'sendouts must be a whole number.' })
    .min(0, { error: 'sendouts must be at least 0.' })
    .max(200, { error: 'sendouts must be at most 200.' })
    .default(20)
    .openapi({ param: { name: 'sendouts', in: 'query' }, description: 'How many recent send-outs to show.' }),
});

/** Provider reports about a send-out's letters, or from one source. */
const reportCounts = z
  .object({
    bounced: z
      .number()
      .int()
      .openapi({ description: 'Hard bounces (and addresses suppressed by soft bounces).' }),
    softBounced: z.number().int(),
    complained: z.number().int(),
  })
  .openapi('ReportCounts');

export const statsView = z
  .object({
    subscribers: z.object({
      total: z.number().int(),
      pending: z.number().int(),
      confirmed: z.number().int(),
      unsubscribed: z.number().int(),
      bounced: z.number().int(),
    }),
    complained: z.number().int().openapi({
      description:
        'Subscribers who have complained (reported an essay as spam) at least once, whatever their status now.',
    }),
    growth: z
      .array(
        z.object({
          day: z.string().openapi({ format: 'date' }),
          subscribed: z.number().int(),
          confirmed: z.number().int(),
          unsubscribed: z.number().int(),
          bounced: z.number().int(),
          complained: z.number().int().openapi({
            description:
              'Complaints recorded that day; one from a subscribed reader also counts as unsubscribed.',
          }),
        }),
      )
      .openapi({
        description:
          'Per UTC day, oldest first: new subscribers, the latest confirmation, unsubscription and bounce of each, and complaints.',
      }),
    sendouts: z.array(
      z.object({
        slug: z.string(),
        title: z.string(),
        publishedAt: z.string().openapi({ format: 'date-time' }),
        sendout: sendoutView,
        reports: reportCounts.openapi({
          description:
            'Bounces and complaints reported about this send-out’s letters (by providers, the bounce mailbox, ' +
            'or the mail server’s answer): the share of `sent` that bounced or complained.',
        }),
      }),
    ),
    sources: z.array(reportCounts.extend({ source: z.string().openapi({ example: 'resend' }) })).openapi({
      description:
        'Bounces and complaints over the same days as `growth`, by who reported them (`smtp`, `ses`, ' +
        '`resend`, `postmark`, `mailgun`, `sendgrid`, `webhook`, `mailbox`; `unknown` for reports from ' +
        'before sources were recorded).',
    }),
  })
  .openapi('Stats');

export type StatsView = z.infer<typeof statsView>;
