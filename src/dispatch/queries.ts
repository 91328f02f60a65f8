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

/** An interval of n milliseconds; n is rounded, as a backoff (a fraction of a millisecond in it) is no int. */
export const ms = (n: number) => sql`(${Math.round(n)}::int * interval '1 millisecond')`;

/**
 * A row count written into the statement's text, not passed as a parameter. The hand-over runs thousands of
 * times a second; PostgreSQL plans a prepared statement once for all its runs (a generic plan) only when
 * that plan costs no more than one planned for the values, and with a LIMIT it can't see, it costs more
 * (measured: planning 0.4–1 ms a run, against 0.01 ms; the statement itself takes 0.3). Counts are integers
 * of our own, so the texts stay few: one per count.
 */
function count(n: number) {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`not a row count: ${n}`);
  return sql.raw(String(n));
}

/** At least n, in powers of two: a count to plan for, so that a few texts cover any number of results. */
const atLeast = (n: number) => (n === 0 ? 0 : 2 ** Math.ceil(Math.log2(n)));
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
 * Hands up to `limit` due deliveries to this dispatcher's senders, straight into `sending`, in ledger order
 * after `after` (from the front without it), skipping rows another dispatcher holds. This is the statement
 * that hands a letter to SMTP, so it checks the subscriber here: one no longer confirmed gets `skipped`.
 * An unsubscribe that this check may miss (its statement began before the unsubscribe committed) is caught
 * by stopLetters, which waits for the row this statement locks. `results` (of letters this dispatcher sent)
 * are recorded in the same statement.
 */
export async function claimForSending(
  db: Db,
  me: string,
  limit: number,
  leaseMs: number,
  after?: DeliveryKey,
  results: DeliveryResult[] = [],
): Promise<Claim> {
  const from = after
    ? sql`and (d.essay_id, d.subscriber_id) > (${after.essayId}::int, ${after.subscriberId}::int)`
    : sql``;
  // The results of the letters just sent are recorded by the same statement (one commit for both). It can't
  // touch a row the claim takes: those are `pending` in the statement's snapshot, and results are on `sending`.
  const taken = await rows<SendingDelivery & { status: string }>(
    db,
    sql`
      with ${recorded(me, results)},
      picked as (
        select d.ctid, d.essay_id, d.subscriber_id, s.status = 'confirmed' as confirmed, s.status::text as subscriber,
               s.email, s.name, s.unsubscribe_token
        from deliveries d join subscribers s on s.id = d.subscriber_id
        where d.status = 'pending' and (d.not_before is null or d.not_before <= now()) ${from}
        order by d.essay_id, d.subscriber_id
        limit ${count(limit)}
        for update of d skip locked
      )
      update deliveries d
      set status = (case when picked.confirmed then 'sending' else 'skipped' end)::delivery_status,
          attempts = d.attempts + (case when picked.confirmed then 1 else 0 end),
          last_error = case when picked.confirmed then d.last_error else 'subscriber ' || picked.subscriber end,
          claimed_by = ${me},
          lease_until = case when picked.confirmed then now() + ${ms(leaseMs)} end,
          updated_at = now()
      -- The rows just locked, by their place in the table: however few, a plan made once for every run would
      -- otherwise read the whole ledger to find them.
      from picked
      where d.ctid = picked.ctid
      returning d.essay_id as "essayId", d.subscriber_id as "subscriberId", d.status::text as status,
                d.attempts, picked.email, picked.name, picked.unsubscribe_token as "unsubscribeToken"`,
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

/**
 * The statement part that records SMTP outcomes, as a CTE named `recorded`. A late result still lands on a
 * delivery the reaper marked unknown.
 */
function recorded(me: string, results: DeliveryResult[]) {
  const payload = JSON.stringify(
    results.map((r) => ({
      essay_id: r.essayId,
      subscriber_id: r.subscriberId,
      status: r.status,
      error: r.error,
      retry_ms: Math.round(r.retryMs),
    })),
  );
  return sql`recorded as (
    update deliveries d
    set status = v.status::delivery_status,
        last_error = v.error,
        not_before = case when v.status = 'pending' then now() + (v.retry_ms * interval '1 millisecond') end,
        claimed_by = case when v.status = 'pending' then null else d.claimed_by end,
        lease_until = null,
        updated_at = now()
    -- LIMIT tells the planner how few rows these are: without it, it guesses a hundred, and reads the whole
    -- ledger rather than look each one up by its key.
    from (
      select * from json_to_recordset(${payload}::json)
        as v(essay_id int, subscriber_id int, status text, error text, retry_ms int)
      limit ${count(atLeast(results.length))}
    ) v
    where d.essay_id = v.essay_id and d.subscriber_id = v.subscriber_id
      and d.claimed_by = ${me} and d.status in ('sending', 'unknown')
    returning 1
  )`;
}

/** Records SMTP outcomes in one statement. */
export async function recordResults(db: Db, me: string, results: DeliveryResult[]): Promise<void> {
  if (results.length === 0) return;
  await db.execute(sql`with ${recorded(me, results)} select count(*) from recorded`);
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
    insert into subscriber_events (subscriber_id, kind, source) select id, 'bounced', 'smtp' from changed`);
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

/** How often an unsubscribe looks again for a letter of its subscriber still on its way to SMTP. */
const UNDER_WAY_POLL_MS = 5;
/**
 * An unsubscribe waits this long at most. A letter is `sending` from the statement that hands it over until
 * its result is recorded, a few milliseconds as a rule; one `sending` longer than this has long begun its
 * SMTP transaction (the sender starts it as soon as the row is handed over), and it is only its end that
 * is awaited.
 */
const UNDER_WAY_MAX_MS = 10_000;

/**
 * Stops the letters to these subscribers that SMTP doesn't have yet, once their status has left `confirmed`
 * (unsubscribe, erasure, complaint, bounce) and before that is answered. Resolves when none can start later:
 *
 * 1. Their `pending` deliveries become `skipped`. This update waits for a hand-over under way that locked
 *    one of those rows (claimForSending, whose check of the status may have read it before the change), so
 *    every hand-over is either over, its letters `sending`, or finds the rows no longer pending.
 * 2. It waits until none of their deliveries is `sending` with a live claim: a letter handed over before the
 *    change is about to start its SMTP transaction, or has; waiting for its result means none starts after
 *    the answer. A dead dispatcher's claims (lease expired) never reach SMTP and are not waited for.
 *
 * The ledger has no index on subscriber alone (it would slow every send-out's fan-out): rows are found by
 * primary key, one essay at a time, and in the small index of rows in flight.
 */
export async function stopLetters(db: Db, subscriberIds: number[]): Promise<void> {
  if (subscriberIds.length === 0) return;
  const ids = sql`(select value::int as id from json_array_elements_text(${JSON.stringify(subscriberIds)}::json))`;
  await db.execute(sql`
    update deliveries d
    set status = 'skipped', last_error = 'subscriber ' || s.status::text, updated_at = now()
    from essays e, ${ids} x, subscribers s
    where d.essay_id = e.id and d.subscriber_id = x.id and s.id = x.id and d.status = 'pending'`);
  const deadline = Date.now() + UNDER_WAY_MAX_MS;
  for (;;) {
    const [underWay] = await rows(
      db,
      sql`select 1 from deliveries
          where status in ('claimed', 'sending') and status = 'sending' and lease_until > now()
            and subscriber_id in (select id from ${ids} x)
          limit 1`,
    );
    if (!underWay || Date.now() >= deadline) return;
    await new Promise((resolve) => setTimeout(resolve, UNDER_WAY_POLL_MS));
  }
}
