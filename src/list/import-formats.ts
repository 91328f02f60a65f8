import type { SubscriberStatus } from '../db/schema.js';

/**
 * What other services' exports call things, so a publisher moving here imports the file they got there as it is.
 * Where the names come from (each sample is in tests/fixtures/imports/):
 *
 * - Mailchimp (Audience → Export audience): a zip of subscribed_, unsubscribed_ and cleaned_members_export_*.csv,
 *   with "Email Address", "First Name", "Last Name" (the audience's default fields; others are its own), then
 *   MEMBER_RATING, OPTIN_TIME, OPTIN_IP, CONFIRM_TIME, CONFIRM_IP, LATITUDE, LONGITUDE, GMTOFF, DSTOFF, TIMEZONE,
 *   CC, REGION, LAST_CHANGED, LEID, EUID, NOTES, TAGS. No status column: the unsubscribed file adds UNSUB_TIME,
 *   UNSUB_CAMPAIGN_TITLE, UNSUB_CAMPAIGN_ID, UNSUB_REASON, UNSUB_REASON_OTHER, the cleaned one CLEAN_TIME,
 *   CLEAN_CAMPAIGN_TITLE, CLEAN_CAMPAIGN_ID, and those times say it row by row. Times are UTC without a zone.
 * - Substack (Settings → Export): email_list.<publication>.csv with email, active_subscription, expiry, plan,
 *   email_disabled, created_at, first_payment_at (as Ghost's Substack migrator reads it). It has no name column and
 *   lists only readers on the list; email_disabled=true means they get no email. An address
 *   …@deletion-request.substack.com stands for a reader who asked Substack to delete them.
 * - Ghost (Members → Export): id, email, name, note, subscribed_to_emails, complimentary_plan, stripe_customer_id,
 *   created_at, deleted_at, labels, tiers (Ghost's own export code). No status column; free/paid/comped are
 *   understood if a file has one.
 * - Buttondown: NOT CONFIRMED. Its CSV export's header names were not found in public sources; the names here are
 *   its API's subscriber fields (email / email_address, subscriber_type / type, creation_date, notes, metadata,
 *   tags, referrer_url, secondary_id) and its documented subscriber types.
 * - listmonk (Subscribers → Export): uuid, email, name, attributes, status (enabled, disabled, blocklisted),
 *   created_at, updated_at, times in Go's format ("2024-05-01 10:00:00.123456 +0000 +0000"). Its per-list
 *   subscription status (unconfirmed, confirmed, unsubscribed) is not in the export: "enabled" is read as confirmed.
 */

export type ImportField =
  | 'email'
  | 'name'
  | 'first_name'
  | 'last_name'
  | 'status'
  | 'confirmed_at'
  | 'created_at'
  | 'unsubscribed_at'
  | 'bounced_at'
  | 'subscribed'
  | 'email_disabled';

/**
 * Header names by what they mean here, compared as `headerKey` gives them. Where a field has several, a row uses
 * the first one that has a value (Mailchimp's CONFIRM_TIME before its OPTIN_TIME).
 */
const HEADER_NAMES: Record<ImportField, readonly string[]> = {
  email: ['email', 'emailaddress'],
  name: ['name', 'fullname'],
  first_name: ['firstname', 'fname', 'givenname'],
  last_name: ['lastname', 'lname', 'surname', 'familyname'],
  status: ['status', 'subscriptionstatus', 'subscribertype', 'type'],
  confirmed_at: ['confirmedat', 'confirmtime', 'optintime'],
  created_at: ['createdat', 'subscribedat', 'creationdate'],
  unsubscribed_at: ['unsubscribedat', 'unsubtime'],
  bounced_at: ['bouncedat', 'cleantime'],
  subscribed: ['subscribedtoemails', 'subscribed'],
  email_disabled: ['emaildisabled'],
};

/** A header name without case, spaces, underscores or other punctuation: "Email Address" → "emailaddress". */
export const headerKey = (raw: string) => raw.toLowerCase().replace(/[^a-z0-9]/g, '');

/** The columns of each field, in the order to try them. */
export type ImportColumns = Partial<Record<ImportField, number[]>>;

/** Which columns mean what, and the names of those the import doesn't use (empty names left out). */
export function readColumns(header: string[]): { columns: ImportColumns; ignored: string[] } {
  const keys = header.map(headerKey);
  const columns: ImportColumns = {};
  const used = new Set<number>();
  for (const [field, names] of Object.entries(HEADER_NAMES) as [ImportField, readonly string[]][]) {
    const found = names.flatMap((n) => keys.flatMap((k, i) => (k === n ? [i] : [])));
    if (found.length === 0) continue;
    columns[field] = found;
    for (const i of found) used.add(i);
  }
  const ignored = header.map((h) => h.trim()).filter((h, i) => h !== '' && !used.has(i));
  return { columns, ignored };
}

/** Statuses other services give, by ours. Anything that says "don't mail" is unsubscribed or bounced. */
const STATUS_WORDS: Record<string, SubscriberStatus> = {
  // ours
  pending: 'pending',
  confirmed: 'confirmed',
  unsubscribed: 'unsubscribed',
  bounced: 'bounced',
  // Mailchimp (its API and other tools' exports of it)
  subscribed: 'confirmed',
  cleaned: 'bounced',
  // listmonk ("blacklisted" before v1)
  enabled: 'confirmed',
  disabled: 'unsubscribed',
  blocklisted: 'unsubscribed',
  blacklisted: 'unsubscribed',
  // Buttondown subscriber types
  regular: 'confirmed',
  premium: 'confirmed',
  trialed: 'confirmed',
  gifted: 'confirmed',
  churning: 'confirmed',
  paused: 'confirmed',
  past_due: 'confirmed',
  unpaid: 'confirmed',
  unactivated: 'pending',
  removed: 'unsubscribed',
  spammy: 'unsubscribed',
  undeliverable: 'bounced',
  // Ghost member statuses, Substack subscription types
  free: 'confirmed',
  paid: 'confirmed',
  comped: 'confirmed',
  comp: 'confirmed',
  gift: 'confirmed',
  founding: 'confirmed',
  active: 'confirmed',
};

/** Our status for a service's word; throws an Error naming the word when it is none we know. */
export function statusFrom(raw: string): SubscriberStatus | undefined {
  const word = raw
    .trim()
    .toLowerCase()
    .replace(/[\s-]+/g, '_');
  if (word === '') return undefined;
  const status = STATUS_WORDS[word];
  if (!status) {
    throw new Error(
      `status "${raw.slice(0, 40)}" is not one we know: use pending, confirmed, unsubscribed or bounced ` +
        '(or Mailchimp’s, Buttondown’s, Ghost’s or listmonk’s own).',
    );
  }
  return status;
}

const TRUE = new Set(['true', 't', 'yes', 'y', '1']);
const FALSE = new Set(['false', 'f', 'no', 'n', '0']);

/** A yes/no cell; undefined when empty. */
export function booleanFrom(raw: string, column: string): boolean | undefined {
  const v = raw.trim().toLowerCase();
  if (v === '') return undefined;
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw new Error(`${column} "${raw.slice(0, 40)}" is neither true nor false.`);
}

/** "2024-05-01 10:00:00": Mailchimp's times, in UTC. */
const ZONELESS = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)$/;
/** "2024-05-01 10:00:00.123456 +0000 +0000": Go's time.String(), as listmonk writes times. */
const GO_TIME = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?) ([+-]\d{2})(\d{2})(?: \S+)*$/;

/** An ISO 8601 string for a date cell (a time without a zone is UTC); null when empty. */
export function dateFrom(raw: string, column: string): string | null {
  if (raw === '') return null;
  const zoneless = ZONELESS.exec(raw);
  const go = GO_TIME.exec(raw);
  const text = zoneless ? `${zoneless[1]}T${zoneless[2]}Z` : go ? `${go[1]}T${go[2]}${go[3]}:${go[4]}` : raw;
  const time = Date.parse(text);
  if (Number.isNaN(time)) throw new Error(`${column} "${raw.slice(0, 40)}" is not a date (use ISO 8601).`);
  return new Date(time).toISOString();
}

/** Substack's stand-in for a reader who asked to be deleted. */
export const isDeletionRequest = (email: string) => /@deletion-request\.substack\.com$/i.test(email);
