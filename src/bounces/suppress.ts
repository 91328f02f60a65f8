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

/** Records these event ids; returns those that were new (the others were recorded before). */
async function recordReceipts(db: Db, source: ReportSource, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const recorded = await rows<{ event_id: string }>(
    db,
    sql`insert into bounce_receipts (source, event_id)
        select ${source}, value from json_array_elements_text(${jsonParam(ids)}::json)
        on conflict do nothing
        returning event_id`,
  );
  return new Set(recorded.map((r) => r.event_id));
}

async function applyInTransaction(
  tx: Db,
  source: ReportSource,
  reports: BounceReport[],
  softBounceLimit: number,
): Promise<{ duplicate: boolean; changed: { id: number; email: string }[]; matched: number }> {
  const byKind = (kind: ReportKind) =>
    reports
      .filter((r) => r.kind === kind)
      .map((r) => ({
        email: r.email.trim().toLowerCase(),
        reason: r.reason?.slice(0, REASON_MAX) ?? null,
        essay_id: r.essayId ?? null,
      }));
  const changed: { id: number; email: string }[] = [];
  let matched = 0;
  // Soft bounces before deliveries: a batch often holds a letter's deferral and then its delivery.
  const soft = await softBounces(tx, source, byKind('soft_bounce'), softBounceLimit);
  matched += await delivered(tx, byKind('delivered'));
  const hard = await bounces(tx, source, byKind('bounce'));
  const complaints = await complainers(tx, source, byKind('complaint'));
  for (const r of [soft, hard, complaints]) {
    changed.push(...r.changed);
    matched += r.matched;
  }
  return { duplicate: false, changed, matched };
}

type Row = { email: string; reason: string | null; essay_id: number | null };
type Applied = { changed: { id: number; email: string }[]; matched: number };

/**
 * The reports that name a subscriber, with the letter each is about: the one given, else the latest essay
 * whose letter was handed to the mail server, found one essay at a time by the ledger's primary key.
 */
const matchedCtes = (list: Row[]) => sql`
  input as (
    select * from json_to_recordset(${jsonParam(list)}::json) as r(email text, reason text, essay_id int)
  ), matched as (
    select s.id, s.status, r.reason,
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
  )`;

/**
 * What a hard bounce and a complaint do to an address still on the list: its status (no more mail), the time
 * of it, and the event in the subscriber's history (also when they had already left).
 */
const STOPS = {
  bounced: sql`status = 'bounced', bounced_at = now()`,
  complained: sql`status = 'unsubscribed', unsubscribed_at = now()`,
} as const;

const bounces = (db: Db, source: ReportSource, list: Row[]) => stopMail(db, source, list, 'bounced');
const complainers = (db: Db, source: ReportSource, list: Row[]) => stopMail(db, source, list, 'complained');

async function stopMail(
  db: Db,
  source: ReportSource,
  list: Row[],
  kind: keyof typeof STOPS,
): Promise<Applied> {
  if (list.length === 0) return { changed: [], matched: 0 };
  const result = await rows<{ id: number | null; email: string | null; matched: number }>(
    db,
    sql`with ${matchedCtes(list)},
        changed as (
          update subscribers set ${STOPS[kind]}, updated_at = now()
          where id in (select id from matched) and status in ('pending', 'confirmed')
          returning id, email
        ), event as (
          insert into subscriber_events (subscriber_id, kind, source, reason, essay_id)
          select id, ${sql.raw(`'${kind}'`)}, ${source}, reason, essay_id from matched
        )
        select c.id, c.email, (select count(*)::int from matched) as matched
        from (select 1) one left join changed c on true`,
  );
  return applied(result);
}

/**
 * Soft bounces: each is recorded; the count goes up once per letter not counted before (0 stands for a letter
 * that is no essay's, a confirmation email). Reaching `limit` suppresses a pending or confirmed address,
 * with a `bounced` event that says why.
 */
async function softBounces(db: Db, source: ReportSource, list: Row[], limit: number): Promise<Applied> {
  if (list.length === 0) return { changed: [], matched: 0 };
  const result = await rows<{ id: number | null; email: string | null; matched: number }>(
    db,
    sql`with ${matchedCtes(list)},
        per as (
          select m.id,
                 count(distinct coalesce(m.essay_id, 0))
                   filter (where coalesce(m.essay_id, 0) is distinct from s.soft_bounced_essay_id)::int as letters,
                 max(coalesce(m.essay_id, 0)) as last_essay,
                 s.soft_bounces, s.status in ('pending', 'confirmed') as receiving
          from matched m join subscribers s on s.id = m.id
          group by m.id, s.soft_bounced_essay_id, s.soft_bounces, s.status
        ), updated as (
          update subscribers s set
            soft_bounces = s.soft_bounces + p.letters,
            soft_bounced_essay_id = case when p.letters > 0 then p.last_essay else s.soft_bounced_essay_id end,
            status = (case when p.receiving and s.soft_bounces + p.letters >= ${limit}::int
                           then 'bounced' else s.status::text end)::subscriber_status,
            bounced_at = case when p.receiving and s.soft_bounces + p.letters >= ${limit}::int
                              then now() else s.bounced_at end,
            updated_at = now()
          from per p
          where s.id = p.id
          returning s.id, s.email, s.soft_bounces
        ), changed as (
          select u.id, u.email, p.last_essay from updated u join per p on p.id = u.id
          where p.receiving and u.soft_bounces >= ${limit}::int
        ), event as (
          insert into subscriber_events (subscriber_id, kind, source, reason, essay_id)
          select id, 'soft_bounced'::subscriber_event_kind, ${source}, reason, essay_id from matched
          union all
          select id, 'bounced'::subscriber_event_kind, ${source},
                 ${`${limit} soft bounces on different letters, no delivery in between`}, nullif(last_essay, 0)
          from changed
        )
        select c.id, c.email, (select count(*)::int from matched) as matched
        from (select 1) one left join changed c on true`,
  );
  return applied(result);
}

/** A delivery the provider reports: the address's soft bounces start again from none. */
async function delivered(db: Db, list: Row[]): Promise<number> {
  if (list.length === 0) return 0;
  const result = await rows(
    db,
    sql`update subscribers set soft_bounces = 0, soft_bounced_essay_id = null
        where lower(email) in (select value from json_array_elements_text(${jsonParam(list.map((r) => r.email))}::json))
          and soft_bounces > 0
        returning 1`,
  );
  return result.length;
}

function applied(result: { id: number | null; email: string | null; matched: number }[]): Applied {
  const changed: { id: number; email: string }[] = [];
  for (const r of result) {
    if (r.id !== null && r.email !== null) changed.push({ id: Number(r.id), email: r.email });
  }
  return { changed, matched: Number(result[0]?.matched ?? 0) };
}
