import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { rows } from '../db/client.js';
import { stopLetters } from '../dispatch/queries.js';

/**
 * What a mail provider's report does to the list, by address. Both are single statements that change the status
 * only of subscribers who could still get mail (pending or confirmed), so a report delivered twice changes
 * nothing more. Deliveries of a send-out under way are skipped by the dispatcher, which checks the status as it
 * hands each one to the mail server; each resolves only once no letter to those addresses is on its way to SMTP.
 */

const addressesJson = (addresses: string[]) => JSON.stringify(addresses.map((a) => a.toLowerCase()));

/**
 * A hard bounce: the same suppression as an SMTP 5xx answer (dispatch/queries.ts markBounced): status
 * `bounced`, bounced_at and a `bounced` event, which the publisher's list and history show. Returns the addresses changed.
 */
export async function markAddressesBounced(db: Db, addresses: string[]): Promise<string[]> {
  if (addresses.length === 0) return [];
  const changed = await rows<{ id: number; email: string }>(
    db,
    sql`with changed as (
          update subscribers set status = 'bounced', bounced_at = now(), updated_at = now()
          where lower(email) in (select value from json_array_elements_text(${addressesJson(addresses)}::json))
            and status in ('pending', 'confirmed')
          returning id, email
        ), event as (
          insert into subscriber_events (subscriber_id, kind) select id, 'bounced' from changed
        )
        select id, email from changed`,
  );
  await stopLetters(
    db,
    changed.map((r) => r.id),
  );
  return changed.map((r) => r.email);
}

/**
 * How far the database's clock may be behind the reporter's when deciding that a complaint is already in a
 * subscriber's history (SNS accepts messages up to 5 minutes ahead of our clock too: bounces/sns.ts).
 */
const CLOCK_SKEW = '5 minutes';

/**
 * A complaint (the reader marked an essay as spam): they are unsubscribed, as if they had clicked the link,
 * and their history says why with a `complained` event. Complaints often arrive days after the reader left
 * (unsubscribed, or bounced), so those get the `complained` event too and keep their status: the history
 * shows every complaint. A report delivered again (SNS retries for up to an hour, with the same
 * `reportedAt`) adds no second event: one is recorded only if none was recorded since the report was sent.
 * Returns the addresses whose status changed.
 */
export async function unsubscribeComplainers(
  db: Db,
  addresses: string[],
  reportedAt: Date,
): Promise<string[]> {
  if (addresses.length === 0) return [];
  const changed = await rows<{ id: number; email: string }>(
    db,
    sql`with matched as (
          select id, status from subscribers
          where lower(email) in (select value from json_array_elements_text(${addressesJson(addresses)}::json))
        ), changed as (
          update subscribers set status = 'unsubscribed', unsubscribed_at = now(), updated_at = now()
          where id in (select id from matched) and status in ('pending', 'confirmed')
          returning id, email
        ), event as (
          insert into subscriber_events (subscriber_id, kind)
          select id, 'complained'::subscriber_event_kind from changed
          union all
          select m.id, 'complained'::subscriber_event_kind from matched m
          where m.status in ('unsubscribed', 'bounced')
            and not exists (
              select 1 from subscriber_events e
              where e.subscriber_id = m.id and e.kind = 'complained'
                and e.at >= ${reportedAt.toISOString()}::timestamptz - ${CLOCK_SKEW}::interval
            )
        )
        select id, email from changed`,
  );
  await stopLetters(
    db,
    changed.map((r) => r.id),
  );
  return changed.map((r) => r.email);
}
