import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { jsonParam, rows } from '../db/client.js';
import { stopLetters } from '../dispatch/queries.js';

/**
 * What a mail provider's reports do to the list, by address: every webhook and the bounce mailbox end here.
 *
 * - `bounce` (permanent): the address is suppressed, as after an SMTP 5xx answer: status `bounced`.
 * - `soft_bounce` (mailbox full, greylisted, blocked for now): recorded; SOFT_BOUNCE_LIMIT of them on
 *   different letters, with no delivery reported in between, suppress the address as bounced.
 * - `complaint` (marked as spam): unsubscribed, as if they had clicked the link, and recorded as `complained`.
 * - `delivered`: the receiving server took a letter: the soft bounces counted so far are forgotten.
 *
 * Every bounce and complaint lands in the subscriber's history with its source and the provider's reason,
 * also when the address had already left (complaints often come days later). Statuses change only for
 * subscribers who could still get mail (pending or confirmed). Reports about addresses the list does not
 * hold change nothing. Once applyReports resolves, no letter to a suppressed address starts its SMTP
 * transaction (stopLetters).
 */

/** Who reported: the SMTP answer while sending, a provider's webhook, or the bounce mailbox. */
export type ReportSource =
  | 'smtp'
  | 'ses'
  | 'resend'
  | 'postmark'
  | 'mailgun'
  | 'sendgrid'
  | 'webhook'
  | 'mailbox';

export type ReportKind = 'bounce' | 'soft_bounce' | 'complaint' | 'delivered';

/** One provider report about one address. */
export interface BounceReport {
  email: string;
  kind: ReportKind;
  /** The provider's words (bounce type, the receiving server's answer, feedback type): kept in the history. */
  reason?: string;
  /**
   * The send-out the report is about, when the reporter knows it (the bounce mailbox's VERP id). Unset: the
   * latest essay sent to the address, which is what a provider's report is about in all but rare cases.
   */
  essayId?: number;
  /**
   * The provider's id for this report alone (SendGrid's sg_event_id: a batch holds many events, and a retried
   * batch may overlap an earlier one). A report whose id was recorded before is skipped.
   */
  eventId?: string;
}

export interface ApplyReportsInput {
  source: ReportSource;
  /**
   * The provider's ids for this event (svix-id, sg_event_id, a Mailgun token…). If any was recorded before,
   * nothing is done again (`duplicate`): providers retry, and the same event twice is one effect. Empty: no
   * such check (the SMTP path, whose results are recorded once by the dispatcher).
   */
  eventIds: string[];
  reports: BounceReport[];
  /** Soft bounces on different letters that suppress an address (SOFT_BOUNCE_LIMIT). */
  softBounceLimit: number;
}

export interface ReportsOutcome {
  /** True when an event id had been recorded before: nothing was done. */
  duplicate: boolean;
  /** Addresses whose status changed (suppressed or unsubscribed), as the list holds them. */
  changed: string[];
  /** Reports that matched a subscriber. */
  matched: number;
}

/** How long provider event ids are kept: longer than any provider retries (SendGrid: 72 hours). */
const RECEIPT_DAYS = 7;
const REASON_MAX = 500;

/** Whether this provider event id was recorded before (a Mailgun token seen before is a replay). */
export async function receiptExists(db: Db, source: ReportSource, eventId: string): Promise<boolean> {
  const [found] = await rows(
    db,
    sql`select 1 from bounce_receipts where source = ${source} and event_id = ${eventId}`,
  );
  return found !== undefined;
}

/**
 * Applies one provider event's reports in one transaction with the record of its ids, then waits until no
 * letter to a suppressed address can start (stopLetters). A failure changes nothing, so the provider's retry
 * is acted on.
 */
export async function applyReports(db: Db, input: ApplyReportsInput): Promise<ReportsOutcome> {
  const outcome = await db.transaction(async (t) => {
    const tx = t as unknown as Db;
    if (input.eventIds.length > 0) {
      const ids = [...new Set(input.eventIds)];
      if ((await recordReceipts(tx, input.source, ids)).size < ids.length) {
        return { duplicate: true, changed: [], matched: 0 };
      }
    }
    const reportIds = input.reports.flatMap((r) => (r.eventId === undefined ? [] : [r.eventId]));
    const fresh = await recordReceipts(tx, input.source, [...new Set(reportIds)]);
    const reports = input.reports.filter((r) => r.eventId === undefined || fresh.delete(r.eventId));
    if (reports.length === 0 && input.reports.length > 0) return { duplicate: true, changed: [], matched: 0 };
    return applyInTransaction(tx, input.source, reports, input.softBounceLimit);
  });
  if (input.eventIds.length > 0 || input.reports.some((r) => r.eventId !== undefined)) {
    await db.execute(
      sql`delete from bounce_receipts where received_at < now() - ${`${RECEIPT_DAYS} days`}::interval`,
    );
  }
  const ids = [...new Set(outcome.changed.map((c) => c.id))];
  await stopLetters(db, ids);
  return {
    duplicate: outcome.duplicate,
    changed: [...new Set(outcome.changed.map((c) => c.email))],
    matched: outcome.matched,
  };
}

/**
 * Records these event ids; returns those that were new (the others were recorded before). In sorted order:
 * two transactions that record some of the same ids wait for each other in the same order.
 */
async function recordReceipts(db: Db, source: ReportSource, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const recorded = await rows<{ event_id: string }>(
    db,
    sql`insert into bounce_receipts (source, event_id)
        select ${source}, value from json_array_elements_text(${jsonParam(ids)}::json)
        order by value collate "C"
        on conflict do nothing
        returning event_id`,
  );
  return new Set(recorded.map((r) => r.event_id));
}

/**
 * Applies the reports, taking every lock in an order all report transactions share, so that two of them never
 * deadlock (tests/bounces.concurrency.test.ts): the event ids (recordReceipts, sorted), then the subscribers
 * the reports name, in id order; then one statement changes them all, so the running counts' trigger
 * (drizzle/0010) fires once and takes its rows in key order. (Applied in a statement per kind of report, each
 * firing took its own rows, and two transactions could take the same rows in opposite orders.)
 */
async function applyInTransaction(
  tx: Db,
  source: ReportSource,
  reports: BounceReport[],
  softBounceLimit: number,
): Promise<{ duplicate: boolean; changed: { id: number; email: string }[]; matched: number }> {
  if (reports.length === 0) return { duplicate: false, changed: [], matched: 0 };
  const list = reports.map((r, ord) => ({
    ord,
    kind: r.kind,
    email: r.email.trim().toLowerCase(),
    reason: r.reason?.slice(0, REASON_MAX) ?? null,
    essay_id: r.essayId ?? null,
  }));
  await lockSubscribers(tx, [...new Set(list.map((r) => r.email))]);
  const result = await rows<{ id: number | null; email: string | null; matched: number }>(
    tx,
    sql`with ${reportCtes(list, softBounceLimit)},
        updated as (${UPDATE_SUBSCRIBERS}), event as (${eventsInsert(source, softBounceLimit)})
        select o.id, o.email, (select count(*)::int from matched) + (select count(*)::int from outcome where reset) as matched
        from (select 1) one left join outcome o on o.soft_stop or o.hard_stop or o.complaint_stop`,
  );
  return { duplicate: false, ...applied(result) };
}

/**
 * Locks the subscribers with these addresses in id order. The statement that follows then reads them as
 * they are (nobody else can change them before this transaction ends) and waits for no row.
 */
async function lockSubscribers(tx: Db, emails: string[]): Promise<void> {
  await tx.execute(
    sql`select id from subscribers
        where lower(email) in (select value from json_array_elements_text(${jsonParam(emails)}::json))
        order by id for update`,
  );
}

type Row = { ord: number; kind: ReportKind; email: string; reason: string | null; essay_id: number | null };

/**
 * What the reports do to each subscriber they name, as if applied one kind after another: soft bounces
 * (a batch often holds a letter's deferral and then its delivery), deliveries, hard bounces, complaints.
 *
 * - `matched`: each report but a delivery that names a subscriber, with the letter it is about: the one
 *   given, else the latest essay whose letter was handed to the mail server (by the ledger's primary key).
 * - `outcome`, per subscriber: soft bounces count once per letter not counted before (0 stands for a letter
 *   that is no essay's, a confirmation email), and reaching the limit suppresses a pending or confirmed
 *   address (`soft_stop`); a delivery starts the count again from none (`reset`); a hard bounce suppresses
 *   (`hard_stop`) and a complaint unsubscribes (`complaint_stop`) an address still on the list.
 */
const reportCtes = (list: Row[], limit: number) => sql`
  input as (
    select * from json_to_recordset(${jsonParam(list)}::json)
      as r(ord int, kind text, email text, reason text, essay_id int)
  ), matched as (
    select r.ord, r.kind, s.id, r.reason,
           coalesce(r.essay_id, (
             select e.id from essays e
             where exists (
               select 1 from deliveries d
               where d.essay_id = e.id and d.subscriber_id = s.id and d.status in ('sent', 'unknown', 'sending')
             )
             order by e.published_at desc, e.id desc
             limit 1
           )) as essay_id
    from input r join subscribers s on lower(s.email) = r.email
    where r.kind <> 'delivered'
  ), per as (
    select s.id, s.email, s.soft_bounces, s.soft_bounced_essay_id,
           s.status in ('pending', 'confirmed') as receiving,
           count(distinct coalesce(m.essay_id, 0)) filter (
             where m.kind = 'soft_bounce' and coalesce(m.essay_id, 0) is distinct from s.soft_bounced_essay_id
           )::int as letters,
           max(coalesce(m.essay_id, 0)) filter (where m.kind = 'soft_bounce') as last_essay,
           coalesce(bool_or(m.kind = 'soft_bounce'), false) as soft,
           coalesce(bool_or(m.kind = 'bounce'), false) as hard,
           coalesce(bool_or(m.kind = 'complaint'), false) as complaint,
           exists (select 1 from input d where d.kind = 'delivered' and d.email = lower(s.email)) as delivered
    from subscribers s left join matched m on m.id = s.id
    where lower(s.email) in (select email from input)
    group by s.id
  ), counted as (
    select p.*, p.soft_bounces + p.letters as soft_count,
           p.receiving and p.soft and p.soft_bounces + p.letters >= ${limit}::int as soft_stop
    from per p
  ), outcome as (
    select c.*,
           c.delivered and c.soft_count > 0 as reset,
           c.receiving and c.hard and not c.soft_stop as hard_stop,
           c.receiving and c.complaint and not c.hard and not c.soft_stop as complaint_stop
    from counted c
  )`;

/** The subscribers' new state, in one statement (see applyInTransaction). */
const UPDATE_SUBSCRIBERS = sql`
  update subscribers s set
    soft_bounces = case when o.reset then 0 else o.soft_count end,
    soft_bounced_essay_id = case when o.reset then null
                                 when o.letters > 0 then o.last_essay else s.soft_bounced_essay_id end,
    status = case when o.soft_stop or o.hard_stop then 'bounced'::subscriber_status
                  when o.complaint_stop then 'unsubscribed'::subscriber_status else s.status end,
    bounced_at = case when o.soft_stop or o.hard_stop then now() else s.bounced_at end,
    unsubscribed_at = case when o.complaint_stop then now() else s.unsubscribed_at end,
    updated_at = case when o.soft or o.hard_stop or o.complaint_stop then now() else s.updated_at end
  from outcome o
  where s.id = o.id and (o.soft or o.reset or o.hard_stop or o.complaint_stop)`;

/**
 * Every bounce and complaint in the subscriber's history, with its source and the reporter's words, also
 * when the address had already left (complaints often come days later); and the `bounced` event that says
 * why soft bounces suppressed an address.
 */
const eventsInsert = (source: ReportSource, limit: number) => sql`
  insert into subscriber_events (subscriber_id, kind, source, reason, essay_id)
  select e.id, e.kind, ${source}, e.reason, e.essay_id
  from (
    select 1 as step, m.ord, m.id, 'soft_bounced'::subscriber_event_kind as kind, m.reason, m.essay_id
    from matched m where m.kind = 'soft_bounce'
    union all
    select 2, 0, o.id, 'bounced', ${`${limit} soft bounces on different letters, no delivery in between`},
           nullif(o.last_essay, 0)
    from outcome o where o.soft_stop
    union all
    select 3, m.ord, m.id, 'bounced', m.reason, m.essay_id from matched m where m.kind = 'bounce'
    union all
    select 4, m.ord, m.id, 'complained', m.reason, m.essay_id from matched m where m.kind = 'complaint'
  ) e
  order by e.step, e.ord, e.id`;

type Applied = { changed: { id: number; email: string }[]; matched: number };

function applied(result: { id: number | null; email: string | null; matched: number }[]): Applied {
  const changed: { id: number; email: string }[] = [];
  for (const r of result) {
    if (r.id !== null && r.email !== null) changed.push({ id: Number(r.id), email: r.email });
  }
  return { changed, matched: Number(result[0]?.matched ?? 0) };
}
