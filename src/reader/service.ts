import { sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Db } from '../db/client.js';
import { jsonParam, rows } from '../db/client.js';
import { coalesced } from '../db/coalesce.js';
import { stopLetters } from '../dispatch/queries.js';
import { AppError } from '../http/errors.js';
import { hashToken, isTokenShape, newTokens } from '../tokens.js';

/** An email address as a reader types it: trimmed, at most 254 characters, a plausible address. */
export const emailSchema = z
  .string({ error: 'Enter your email address.' })
  .trim()
  .min(1, { error: 'Enter your email address.' })
  .max(254, { error: 'That address is too long: an email address has at most 254 characters.' })
  .pipe(z.email({ error: 'That does not look like an email address. Check it and try again.' }));

export const subscribeInput = z.object({
  email: emailSchema,
  name: z
    .string()
    .trim()
    .max(100, { error: 'The name is too long: at most 100 characters.' })
    // Line breaks and control characters (Unicode's Cc, and the line and paragraph separators) have no place
    // in a name, and are how header injection starts. Ranges without flags: the OpenAPI document's
    // `pattern` is this very expression, and means the same to any ECMA-262 engine.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what it refuses.
    .regex(/^[^\u0000-\u001F\u007F-\u009F\u2028\u2029]*$/, {
      error: 'The name may not contain line breaks or control characters. Enter it on one line.',
    })
    .optional()
    .transform((v) => v || undefined),
});

export type SubscribeInput = z.infer<typeof subscribeInput>;

/**
 * What is kept as evidence of consent with a subscription request and its confirmation (issue 26): the page
 * it came from, the user agent, the IP (only with RECORD_SIGNUP_IP=true) and the consent text's version.
 */
export interface Consent {
  page: string | null;
  userAgent: string | null;
  ip: string | null;
  textVersion: string | null;
}

const noConsent: Consent = { page: null, userAgent: null, ip: null, textVersion: null };

/**
 * Records a request to subscribe. Whatever the address's state, this is the same two writes (upsert the
 * subscriber, queue a confirmation request), so the answer and its timing reveal nothing; the dispatcher
 * decides later whether a confirmation email is due. The name waits on the confirmation request: whoever
 * typed it, it reaches the subscriber only when the owner of the address confirms.
 */
export async function subscribe(db: Db, input: SubscribeInput, consent: Consent = noConsent): Promise<void> {
  await recordSubscriptions(db, { email: input.email, name: input.name ?? null, ...consent });
}

/**
 * Subscriptions made at the same time are written in one statement and one commit (see coalesced()): a
 * durable commit per request was most of PostgreSQL's work for a new address. Each is answered once its
 * batch is committed. An address twice in a batch is one subscriber with a request (event and
 * confirmation) for each time, as one after the other would give.
 */
const recordSubscriptions = coalesced(
  async (db: Db, requests: ({ email: string; name: string | null } & Consent)[]): Promise<undefined[]> => {
    const subscribers = new Map<string, { email: string; token: string }>();
    const tokens = newTokens(requests.length);
    for (const [i, { email }] of requests.entries()) {
      const key = email.toLowerCase();
      if (!subscribers.has(key)) subscribers.set(key, { email, token: tokens[i] as string });
    }
    await recordSubscription(db, {
      subscribers: jsonParam([...subscribers.values()]),
      requests: jsonParam(requests),
    });
    return requests.map(() => undefined);
  },
);

/**
 * `subscribers`: [{email, token}], one per address (an upsert can't touch a row twice; should two
 * spellings still meet, the batch fails and each is written alone), in one order so that two processes
 * never wait on each other's rows in a cycle. `requests`: [{email, name, ...Consent}], one per subscription:
 * an event and a confirmation request (with its consent on record) each.
 */
const recordSubscription = (db: Db, values: { subscribers: string; requests: string }) =>
  db.execute(
    sql`
    with subscriber as (
      insert into subscribers (email, unsubscribe_token)
      select v.email, v.token from json_to_recordset(${values.subscribers}::json) as v(email text, token text)
      order by lower(v.email)
      on conflict ((lower(email))) do update set updated_at = now()
      returning id, lower(email) as key
    ), request as (
      select s.id, r.name, r.page, r."userAgent", r.ip, r."textVersion", r.n
      from rows from (json_to_recordset(${values.requests}::json)
                        as (email text, name text, page text, "userAgent" text, ip text, "textVersion" text))
        with ordinality as r(email, name, page, "userAgent", ip, "textVersion", n)
      join subscriber s on s.key = lower(r.email)
    ), event as (
      insert into subscriber_events (subscriber_id, kind) select id, 'subscribed' from request order by n
    )
    insert into confirmations (subscriber_id, name, page, user_agent, ip, text_version)
    select id, name, page, "userAgent", ip, "textVersion" from request order by n`,
  );

/** Confirms the address behind a confirmation token, keeping the consent given; confirming twice is fine. */
export async function confirm(db: Db, token: string, consent: Consent = noConsent): Promise<void> {
  if (!isTokenShape(token)) throw invalidLink();
  const hash = hashToken(token);
  await db.transaction(async (tx) => {
    const [found] = await rows<{
      id: number;
      subscriber_id: number;
      expired: boolean;
      used: boolean;
      subscriber_status: string;
    }>(
      tx as unknown as Db,
      sql`
        select c.id, c.subscriber_id, c.expires_at < now() as expired, c.confirmed_at is not null as used,
               s.status as subscriber_status
        from confirmations c join subscribers s on s.id = c.subscriber_id
        where c.token_hash = ${hash} and c.status = 'sent'
        for update of c, s`,
    );
    if (!found) throw invalidLink();
    if (found.used) {
      if (found.subscriber_status === 'confirmed') return;
      throw usedLink();
    }
    if (found.expired) throw expiredLink();
    await tx.execute(sql`
      update confirmations
      set confirmed_at = now(), confirm_page = ${consent.page}, confirm_user_agent = ${consent.userAgent},
          confirm_ip = ${consent.ip}, confirm_text_version = ${consent.textVersion}
      where id = ${found.id}`);
    await tx.execute(sql`
      update subscribers s
      set status = 'confirmed', confirmed_at = now(), unsubscribed_at = null, bounced_at = null, updated_at = now(),
          name = coalesce((select name from confirmations where id = ${found.id}), s.name)
      where s.id = ${found.subscriber_id}`);
    await tx.execute(
      sql`insert into subscriber_events (subscriber_id, kind) values (${found.subscriber_id}, 'confirmed')`,
    );
    return 'confirmed';
  });
}

/**
 * Unsubscribes the owner of an unsubscribe token at once; unsubscribing twice is fine. Deliveries of a
 * send-out under way that have not reached SMTP yet are skipped: the dispatcher checks the subscriber's
 * status in the same statement that hands a delivery to SMTP. Resolves once no letter to them is on its
 * way to SMTP, so that none starts after the answer.
 */
export async function unsubscribe(db: Db, token: string): Promise<void> {
  if (!isTokenShape(token)) throw invalidLink();
  const found = await rows<{ id: number }>(
    db,
    sql`
      with target as (
        select id, status from subscribers where unsubscribe_token = ${token}
      ), changed as (
        update subscribers s set status = 'unsubscribed', unsubscribed_at = now(), updated_at = now()
        from target where s.id = target.id and target.status in ('pending', 'confirmed')
        returning s.id
      ), event as (
        insert into subscriber_events (subscriber_id, kind) select id, 'unsubscribed' from changed
      )
      select id from target`,
  );
  if (found.length === 0) throw invalidLink();
  await stopLetters(
    db,
    found.map((r) => r.id),
  );
}

/** Throws unless an unsubscribe token belongs to someone (the page with the button checks first). */
export async function checkUnsubscribeLink(db: Db, token: string): Promise<void> {
  if (!isTokenShape(token)) throw invalidLink();
  const found = await rows(db, sql`select 1 from subscribers where unsubscribe_token = ${token}`);
  if (found.length === 0) throw invalidLink();
}

/** Throws unless a confirmation token is one we sent, not expired, and not spent on an ended subscription. */
export async function checkConfirmationLink(db: Db, token: string): Promise<void> {
  if (!isTokenShape(token)) throw invalidLink();
  const [found] = await rows<{ expired: boolean; used: boolean }>(
    db,
    sql`select c.expires_at < now() and c.confirmed_at is null as expired,
               c.confirmed_at is not null and s.status <> 'confirmed' as used
        from confirmations c join subscribers s on s.id = c.subscriber_id
        where c.token_hash = ${hashToken(token)} and c.status = 'sent'`,
  );
  if (!found) throw invalidLink();
  if (found.used) throw usedLink();
  if (found.expired) throw expiredLink();
}

/** A link used once, for a subscription that has ended since: it must not bring the subscription back. */
function usedLink(): AppError {
  return new AppError(
    'token_expired',
    'This confirmation link was already used, and the subscription has ended since. Subscribe again to get a new link.',
    'This link was already used',
  );
}

function expiredLink(): AppError {
  return new AppError(
    'token_expired',
    'This confirmation link has expired. Subscribe again and we will send you a new one.',
  );
}

/** The answer to a token that matches nothing. */
export function invalidLink(): AppError {
  return new AppError(
    'token_invalid',
    'This link matches no subscription. Check that the whole link from the email was opened, or subscribe again.',
    'This link is not valid',
  );
}
