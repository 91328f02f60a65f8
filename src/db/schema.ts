import { sql } from 'drizzle-orm';
import {
  bigint,
  date,
  index,
  integer,
  pgEnum,
  pgTable,
  primaryKey,
  smallint,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/** A subscriber is pending until the owner of the address confirms; bounced addresses get no more mail. */
export const subscriberStatus = pgEnum('subscriber_status', [
  'pending',
  'confirmed',
  'unsubscribed',
  'bounced',
]);

export const subscribers = pgTable(
  'subscribers',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    /** As the reader typed it (trimmed); compared case-insensitively through the unique index on lower(email). */
    email: text('email').notNull(),
    name: text('name'),
    status: subscriberStatus('status').notNull().default('pending'),
    /** Long-lived, random; goes into every essay email's unsubscribe link, so it is kept as is. */
    unsubscribeToken: text('unsubscribe_token').notNull(),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
    confirmedAt: ts('confirmed_at'),
    unsubscribedAt: ts('unsubscribed_at'),
    bouncedAt: ts('bounced_at'),
    /**
     * Soft bounces on different letters since the last delivery a provider reported (bounces/suppress.ts);
     * SOFT_BOUNCE_LIMIT of them suppress the address. `softBouncedEssayId`: the letter of the last one counted
     * (0 when it was not an essay's), so more reports about the same letter count once.
     */
    softBounces: integer('soft_bounces').notNull().default(0),
    softBouncedEssayId: integer('soft_bounced_essay_id'),
  },
  (t) => [
    uniqueIndex('subscribers_email_key').on(sql`lower(${t.email})`),
    uniqueIndex('subscribers_unsubscribe_token_key').on(t.unsubscribeToken),
    // The publisher's list: newest first, by status or not, paged by (created_at, id). The second also
    // serves every lookup by status alone (the fan-out's, the counts'): an index on status by itself
    // would be one more for every new subscriber to write.
    index('subscribers_created_idx').on(t.createdAt, t.id),
    index('subscribers_status_created_idx').on(t.status, t.createdAt, t.id),
    // "Address contains …" (pg_trgm, created by migration 0002): a substring search that stays fast at 1M rows.
    // Its pending list (new entries, merged into the index in bulk by whichever insert finds it full) is
    // kept at 512 kB rather than 4 MB: a merge of 4 MB held up one batch of subscriptions for ~50 ms
    // every few thousand new addresses, set the slowest answers under load.
    index('subscribers_email_trgm_idx')
      .using('gin', sql`lower(${t.email}) gin_trgm_ops`)
      .with({ gin_pending_list_limit: 512 }),
  ],
);

/**
 * One request to confirm an address. Queued on the request path (the same write whatever the address),
 * mailed by the dispatcher, which decides whether the address needs it and issues the token then.
 */
export const confirmationStatus = pgEnum('confirmation_status', ['queued', 'sent', 'skipped', 'failed']);

export const confirmations = pgTable(
  'confirmations',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    subscriberId: integer('subscriber_id')
      .notNull()
      .references(() => subscribers.id, { onDelete: 'cascade' }),
    /** The name given with this request; applied when the address is confirmed. */
    name: text('name'),
    status: confirmationStatus('status').notNull().default('queued'),
    /** SHA-256 of the token in the email; the raw token is never stored. */
    tokenHash: text('token_hash'),
    attempts: integer('attempts').notNull().default(0),
    /** While queued: not before this time (a claim's lease, or a retry's backoff). */
    notBefore: ts('not_before'),
    lastError: text('last_error'),
    requestedAt: ts('requested_at').notNull().defaultNow(),
    sentAt: ts('sent_at'),
    expiresAt: ts('expires_at'),
    confirmedAt: ts('confirmed_at'),
    // Consent on record (issue 26), for the request (at requested_at) and its confirmation (at confirmed_at):
    // the page it came from (origin and path), the browser's user agent, the IP only with
    // RECORD_SIGNUP_IP=true, and the version of the consent text shown. Erasure takes them with the row.
    page: text('page'),
    userAgent: text('user_agent'),
    ip: text('ip'),
    textVersion: text('text_version'),
    confirmPage: text('confirm_page'),
    confirmUserAgent: text('confirm_user_agent'),
    confirmIp: text('confirm_ip'),
    confirmTextVersion: text('confirm_text_version'),
  },
  (t) => [
    uniqueIndex('confirmations_token_hash_key').on(t.tokenHash),
    index('confirmations_queued_idx').on(t.id).where(sql`status = 'queued'`),
    index('confirmations_subscriber_idx').on(t.subscriberId, t.sentAt),
  ],
);

export const essays = pgTable('essays', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  slug: text('slug').notNull().unique('essays_slug_key'),
  title: text('title').notNull(),
  url: text('url').notNull(),
  summary: text('summary'),
  /** How many deliveries the send-out made: the subscribers confirmed at publish time. */
  total: integer('total').notNull().default(0),
  publishedAt: ts('published_at').notNull().defaultNow(),
});

/**
 * The delivery ledger: one row per (essay, subscriber), the database's guarantee of one letter, never more.
 * pending → sending → sent | failed | skipped | unknown (retries go back to pending, and so does `unknown` when
 * the publisher asks for a resend). `claimed` is only ever seen on rows of dispatchers from before 2026-11:
 * the reaper and a stop still release it.
 */
export const deliveryStatus = pgEnum('delivery_status', [
  'pending',
  'claimed',
  'sending',
  'sent',
  'failed',
  'skipped',
  'unknown',
]);

export const deliveries = pgTable(
  'deliveries',
  {
    // No foreign keys, on purpose: rows are only ever made by the fan-out's INSERT … SELECT from essays and
    // subscribers, and the per-row referential checks made that statement 3-7 times slower at scale.
    essayId: integer('essay_id').notNull(),
    subscriberId: integer('subscriber_id').notNull(),
    status: deliveryStatus('status').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    /** A pending delivery waits until then (retry backoff); null means now. */
    notBefore: ts('not_before'),
    /** The dispatcher that holds the claim, and until when (it renews while alive). */
    claimedBy: uuid('claimed_by'),
    leaseUntil: ts('lease_until'),
    lastError: text('last_error'),
    updatedAt: ts('updated_at'),
    /**
     * How many times the publisher had this delivery sent again after its outcome was `unknown`, and when
     * last: never by the service on its own (src/essays/service.ts resendUnknown).
     */
    resends: integer('resends').notNull().default(0),
    resentAt: ts('resent_at'),
  },
  (t) => [
    primaryKey({ name: 'deliveries_pkey', columns: [t.essayId, t.subscriberId] }),
    index('deliveries_pending_idx').on(t.essayId, t.subscriberId).where(sql`status = 'pending'`),
    index('deliveries_in_flight_idx').on(t.leaseUntil).where(sql`status in ('claimed', 'sending')`),
    // A send-out's page lists its latest failed and unknown deliveries (in this order), counts the unknown
    // ones a resend would send and the resent ones: each index holds only those rows (few), so the page
    // reads them without walking the send-out's million.
    index('deliveries_failed_idx')
      .on(t.essayId, t.updatedAt.desc().nullsLast(), t.subscriberId)
      .where(sql`status in ('failed', 'unknown')`),
    index('deliveries_unknown_idx').on(t.essayId, t.subscriberId).where(sql`status = 'unknown'`),
    index('deliveries_resent_idx').on(t.essayId).where(sql`resends > 0`),
  ],
);

/**
 * The ledger's running counts, kept by a trigger on deliveries (migration 0010_running_counts_triggers):
 * every statement that inserts, updates or deletes deliveries adds its changes here in the same transaction,
 * so a send-out's figures are read from a few rows, exact in any snapshot, whatever code changed the ledger.
 * `second` -1: the essay's deliveries in `status`, all of them. `second` ≥ 0: its finished ones (sent,
 * skipped, failed, unknown) whose last change fell in that second (Unix time, rounded up), for the
 * send-out's timeline. A count is the sum over `shard`: each database session adds to its own row (its
 * backend pid modulo 8), so that dispatchers in several processes don't queue on one row's lock.
 */
export const deliveryCounts = pgTable(
  'delivery_counts',
  {
    essayId: integer('essay_id').notNull(),
    second: bigint('second', { mode: 'number' }).notNull(),
    status: deliveryStatus('status').notNull(),
    shard: smallint('shard').notNull(),
    count: bigint('count', { mode: 'number' }).notNull(),
  },
  (t) => [primaryKey({ name: 'delivery_counts_pkey', columns: [t.essayId, t.second, t.status, t.shard] })],
);

/**
 * Per-essay counts of deliveries whose subscriber was erased: their ledger rows are folded in here, so a
 * send-out's figures stay true while nothing links an essay to the erased person.
 */
export const erasedDeliveries = pgTable(
  'erased_deliveries',
  {
    essayId: integer('essay_id').notNull(),
    status: deliveryStatus('status').notNull(),
    count: integer('count').notNull(),
  },
  (t) => [primaryKey({ name: 'erased_deliveries_pkey', columns: [t.essayId, t.status] })],
);

/**
 * The list's running counts by status, kept by a trigger on subscribers (migration
 * 0010_running_counts_triggers) as delivery_counts is kept: the overview's figures without counting the list.
 * Summed over `shard`.
 */
export const subscriberCounts = pgTable(
  'subscriber_counts',
  {
    status: subscriberStatus('status').notNull(),
    shard: smallint('shard').notNull(),
    count: bigint('count', { mode: 'number' }).notNull(),
  },
  (t) => [primaryKey({ name: 'subscriber_counts_pkey', columns: [t.status, t.shard] })],
);

/**
 * The list's growth by UTC day, kept by the same trigger: how many subscribers were created (`subscribed`),
 * confirmed, unsubscribed and bounced that day, as their rows' times say now. Summed over `shard`.
 */
export const subscriberDays = pgTable(
  'subscriber_days',
  {
    day: date('day', { mode: 'string' }).notNull(),
    kind: text('kind').notNull(),
    shard: smallint('shard').notNull(),
    count: bigint('count', { mode: 'number' }).notNull(),
  },
  (t) => [primaryKey({ name: 'subscriber_days_pkey', columns: [t.day, t.kind, t.shard] })],
);

/**
 * What happened to a subscriber, for their history (bounces are read from subscribers.bounced_at).
 * `complained`: their mail provider reported an essay as spam; they are unsubscribed. `soft_bounced`: a
 * letter was refused for now (mailbox full, greylisting, a block): SOFT_BOUNCE_LIMIT in a row suppress.
 */
export const subscriberEventKind = pgEnum('subscriber_event_kind', [
  'subscribed',
  'imported',
  'confirmed',
  'unsubscribed',
  'bounced',
  'complained',
  'soft_bounced',
]);

export const subscriberEvents = pgTable(
  'subscriber_events',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    subscriberId: integer('subscriber_id')
      .notNull()
      .references(() => subscribers.id, { onDelete: 'cascade' }),
    kind: subscriberEventKind('kind').notNull(),
    at: ts('at').notNull().defaultNow(),
    /**
     * Who reported it, for bounces and complaints: `smtp` (the server's answer while sending), `ses`,
     * `resend`, `postmark`, `mailgun`, `sendgrid`, `webhook` (POST /webhooks/bounces), `mailbox`.
     */
    source: text('source'),
    /** The reporter's words: bounce type, the receiving server's answer, the feedback type. */
    reason: text('reason'),
    /** The send-out the report is about, when known (no foreign key, as for deliveries). */
    essayId: integer('essay_id'),
  },
  (t) => [
    index('subscriber_events_subscriber_idx').on(t.subscriberId, t.at),
    // Bounces and complaints per send-out (list/stats.ts).
    index('subscriber_events_essay_idx').on(t.essayId, t.kind).where(sql`essay_id is not null`),
    // Complaints by day, bounces and complaints by source, and who ever complained (list/stats.ts): a range
    // of those events alone, not a scan of every subscription's. Not partial: an index predicate can't name
    // the kinds added in the same run of migrations as it (a fresh database runs them all in one transaction).
    index('subscriber_events_kind_idx').on(t.kind, t.at),
  ],
);

/**
 * The provider events already acted on, by source and the provider's id (svix-id, sg_event_id, a Mailgun
 * token…): providers retry, and the same event twice must be one effect. Kept a week (longer than any
 * provider retries), then deleted.
 */
export const bounceReceipts = pgTable(
  'bounce_receipts',
  {
    source: text('source').notNull(),
    eventId: text('event_id').notNull(),
    receivedAt: ts('received_at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ name: 'bounce_receipts_pkey', columns: [t.source, t.eventId] }),
    index('bounce_receipts_received_idx').on(t.receivedAt),
  ],
);

export type Subscriber = typeof subscribers.$inferSelect;
export type Essay = typeof essays.$inferSelect;
export type DeliveryStatus = (typeof deliveryStatus.enumValues)[number];
export type SubscriberStatus = (typeof subscriberStatus.enumValues)[number];

/** Counters for rate limits, shared by every process on one database. Keys hold no plain address. */
export const rateLimits = pgTable('rate_limits', {
  key: text('key').primaryKey(),
  windowStart: ts('window_start').notNull(),
  hits: integer('hits').notNull(),
});

/**
 * A feed the watcher reads (FEED_URL), keyed by a hash of its URL: the validators for conditional requests,
 * and the newest entry date seen, below which an entry that shows up unseen is an old one, not a new essay.
 */
export const feeds = pgTable('feeds', {
  feedKey: text('feed_key').primaryKey(),
  url: text('url').notNull(),
  etag: text('etag'),
  lastModified: text('last_modified'),
  newestEntryAt: ts('newest_entry_at'),
  firstReadAt: ts('first_read_at').notNull().defaultNow(),
  lastReadAt: ts('last_read_at').notNull().defaultNow(),
});

/**
 * What became of each entry the watcher saw: `archived` (there when the feed was first read, or older than the
 * newest seen: not sent unless a publisher asks), `published` (sent as an essay), `already_published` (an
 * essay with its slug or address existed: nothing sent), `invalid` (no usable address or title).
 */
export const feedEntryStatus = pgEnum('feed_entry_status', [
  'archived',
  'published',
  'already_published',
  'invalid',
]);

export const feedEntries = pgTable(
  'feed_entries',
  {
    feedKey: text('feed_key')
      .notNull()
      .references(() => feeds.feedKey, { onDelete: 'cascade' }),
    /** SHA-256 of the entry's stable id (guid/id, else its link): ids can be longer than an index allows. */
    entryKey: text('entry_key').notNull(),
    entryId: text('entry_id').notNull(),
    /** The essay slug derived from the entry id; the same id gives the same slug in any feed. */
    slug: text('slug').notNull(),
    title: text('title'),
    url: text('url'),
    summary: text('summary'),
    entryAt: ts('entry_at'),
    status: feedEntryStatus('status').notNull(),
    seenAt: ts('seen_at').notNull().defaultNow(),
    publishedAt: ts('published_at'),
  },
  (t) => [
    primaryKey({ name: 'feed_entries_pkey', columns: [t.feedKey, t.entryKey] }),
    index('feed_entries_url_idx').on(t.feedKey, t.url),
  ],
);

/**
 * ALTCHA challenges already solved once (issue 26), by their signed nonce: a solution is accepted once, by
 * whichever process sees it first. Kept until the challenge expires; the dispatcher deletes them after.
 */
export const altchaSpent = pgTable(
  'altcha_spent',
  {
    nonce: text('nonce').primaryKey(),
    expiresAt: ts('expires_at').notNull(),
  },
  (t) => [index('altcha_spent_expires_idx').on(t.expiresAt)],
);
