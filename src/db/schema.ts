import { sql } from 'drizzle-orm';
import {
  index,
  integer,
  pgEnum,
  pgTable,
  primaryKey,
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
  },
  (t) => [
    uniqueIndex('subscribers_email_key').on(sql`lower(${t.email})`),
    uniqueIndex('subscribers_unsubscribe_token_key').on(t.unsubscribeToken),
    index('subscribers_status_idx').on(t.status),
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
 * pending → claimed → sending → sent | failed | skipped | unknown.
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
  },
  (t) => [
    primaryKey({ name: 'deliveries_pkey', columns: [t.essayId, t.subscriberId] }),
    index('deliveries_pending_idx').on(t.essayId, t.subscriberId).where(sql`status = 'pending'`),
    index('deliveries_in_flight_idx').on(t.leaseUntil).where(sql`status in ('claimed', 'sending')`),
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
