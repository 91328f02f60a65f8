import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { rows } from '../db/client.js';

/** The statements of the send-out engine. Each is one atomic statement; the database decides who sends what. */

export interface DeliveryKey {
  essayId: number;
  subscriberId: number;
}

export interface ClaimedDelivery extends DeliveryKey {
  email: string;
  name: string | null;
  unsubscribeToken: string;
}

/** What to record for a delivery after its SMTP transaction. */
export interface DeliveryResult extends DeliveryKey {
  status: 'sent' | 'pending' | 'failed' | 'unknown';
  error: string | null;
  /** For `pending` (a retry): wait this long first. */
  retryMs: number;
}

const ms = (n: number) => sql`(${n}::int * interval '1 millisecond')`;
/** A delivery this dispatcher now holds as `sending`, with its attempt count (this one included). */
export interface SendingDelivery extends ClaimedDelivery {
  attempts: number;
}

/** What one claim took: the deliveries to send now, and how many rows it went through (skips included). */
export interface Claim {
  sending: SendingDelivery[];
  /** Rows taken: those sending, and those skipped because their subscriber is no longer confirmed. */
  taken: number;
  /** The last row taken, in ledger order: where the next claim starts. */
  last?: DeliveryKey;
}

/**
 * Claims up to `limit` due deliveries for this dispatcher straight into `sending`, in ledger order after
 * `after` (from the front without it), skipping rows another dispatcher holds. The claim is the statement
 * that hands a delivery to SMTP, so it also checks the subscriber: one no longer confirmed gets `skipped`.
 * A small `limit` bounds what a crash can leave `unknown`. One update per delivery before its result, where
 * claiming a batch and then marking each group `sending` made two: a fifth of PostgreSQL's work per letter.
 */
export async function claimForSending(
  db: Db,
  me: string,
  limit: number,
  leaseMs: number,
  after?: DeliveryKey,
): Promise<Claim> {
  const from = after
    ? sql`and (essay_id, subscriber_id) > (${after.essayId}::int, ${after.subscriberId}::int)`
    : sql``;
  const taken = await rows<SendingDelivery & { status: string }>(
    db,
    sql`
      with picked as (
        select essay_id, subscriber_id from deliveries
        where status = 'pending' and (not_before is null or not_before <= now()) ${from}
        order by essay_id, subscriber_id
        limit ${limit}
        for update skip locked
      )
      update deliveries d
      set status = (case when s.status = 'confirmed' then 'sending' else 'skipped' end)::delivery_status,
          attempts = d.attempts + (case when s.status = 'confirmed' then 1 else 0 end),
          last_error = case when s.status = 'confirmed' then d.last_error else 'subscriber ' || s.status end,
          claimed_by = ${me},
          lease_until = case when s.status = 'confirmed' then now() + ${ms(leaseMs)} end,
          updated_at = now()
      from picked, subscribers s
      where d.essay_id = picked.essay_id and d.subscriber_id = picked.subscriber_id and s.id = d.subscriber_id
      returning d.essay_id as "essayId", d.subscriber_id as "subscriberId", d.status::text as status,
                d.attempts, s.email, s.name, s.unsubscribe_token as "unsubscribeToken"`,
  );
  let last: DeliveryKey | undefined;
  const sending: SendingDelivery[] = [];
  for (const row of taken) {
    if (
      !last ||
      row.essayId > last.essayId ||
      (row.essayId === last.essayId && row.subscriberId > last.subscriberId)
    ) {
      last = { essayId: row.essayId, subscriberId: row.subscriberId };
    }
    if (row.status !== 'sending') continue;
    sending.push({
      essayId: row.essayId,
      subscriberId: row.subscriberId,
      email: row.email,
      name: row.name,
      unsubscribeToken: row.unsubscribeToken,
      attempts: Number(row.attempts),
    });
  }
  sending.sort((a, b) => a.essayId - b.essayId || a.subscriberId - b.subscriberId);
  return { sending, taken: taken.length, last };
}

/** Records SMTP outcomes in one statement. A late result still lands on a delivery the reaper marked unknown. */
export async function recordResults(db: Db, me: string, results: DeliveryResult[]): Promise<void> {
  if (results.length === 0) return;
  const payload = JSON.stringify(
    results.map((r) => ({
      essay_id: r.essayId,
      subscriber_id: r.subscriberId,
      status: r.status,
      error: r.error,
      retry_ms: Math.round(r.retryMs),
    })),
  );
  await db.execute(sql`
    with v as (
      select * from json_to_recordset(${payload}::json)
        as v(essay_id int, subscriber_id int, status text, error text, retry_ms int)
    )
    update deliveries d
    set status = v.status::delivery_status,
        last_error = v.error,
        not_before = case when v.status = 'pending' then now() + (v.retry_ms * interval '1 millisecond') end,
        claimed_by = case when v.status = 'pending' then null else d.claimed_by end,
        lease_until = null,
        updated_at = now()
    from v
    where d.essay_id = v.essay_id and d.subscriber_id = v.subscriber_id
      and d.claimed_by = ${me} and d.status in ('sending', 'unknown')`);
}

/** Marks subscribers whose address the server refused for good: they get no more essays. */
export async function markBounced(db: Db, subscriberIds: number[]): Promise<void> {
  if (subscriberIds.length === 0) return;
  // The event keeps the bounce in the subscriber's history after a later confirmation clears bounced_at.
  await db.execute(sql`
    with changed as (
      update subscribers set status = 'bounced', bounced_at = now(), updated_at = now()
      where id in (select value::int from json_array_elements_text(${JSON.stringify(subscriberIds)}::json))
        and status in ('pending', 'confirmed')
      returning id
    )
    insert into subscriber_events (subscriber_id, kind) select id, 'bounced' from changed`);
}

/** A live dispatcher keeps its claims. */
export async function renewLeases(db: Db, me: string, leaseMs: number): Promise<void> {
  await db.execute(sql`
    update deliveries set lease_until = now() + ${ms(leaseMs)}
    where claimed_by = ${me} and status in ('claimed', 'sending')`);
}

/**
 * Claims whose dispatcher stopped renewing them: only claimed → back to pending (never reached SMTP, safe
 * to send); sending → unknown (SMTP may have the message: never resent).
 */
export async function reapExpiredLeases(db: Db): Promise<{ released: number; unknown: number }> {
  const reaped = await rows<{ status: string }>(
    db,
    sql`
      update deliveries
      set status = (case when status = 'claimed' then 'pending' else 'unknown' end)::delivery_status,
          claimed_by = case when status = 'claimed' then null else claimed_by end,
          last_error = case when status = 'claimed' then last_error
                       else 'the dispatcher stopped while SMTP had the message; not resent' end,
          lease_until = null,
          updated_at = now()
      where status in ('claimed', 'sending') and lease_until < now()
      returning status::text as status`,
  );
  const unknown = reaped.filter((r) => r.status === 'unknown').length;
  return { released: reaped.length - unknown, unknown };
}

/**
 * Puts this dispatcher's claims back to pending: those of a claim whose answer was lost (the database went
 * away as it committed), and `claimed` rows of earlier versions. None of them reached SMTP. Only safe while
 * this dispatcher sends nothing and holds no unrecorded result: between rounds, and at stop.
 */
export async function releaseClaims(db: Db, me: string): Promise<number> {
  const released = await rows(
    db,
    sql`update deliveries set status = 'pending', claimed_by = null, lease_until = null, updated_at = now()
        where claimed_by = ${me} and status in ('claimed', 'sending')
        returning 1`,
  );
  return released.length;
}
