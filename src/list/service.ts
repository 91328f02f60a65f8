import { type SQL, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { rows } from '../db/client.js';
import { stopLetters } from '../dispatch/queries.js';
import { AppError } from '../http/errors.js';
import type { ConsentRow } from '../reader/consent.js';
import { consentColumns } from '../reader/consent.js';
import { eraseRows } from './erasure.js';
import type { ListQuery, SubscriberDetail, SubscriberFilters, SubscriberView } from './schemas.js';

/** The publisher's view of the list: pages of subscribers, one subscriber's story, and erasure. */

/** A row as the queries below select it. */
interface SubscriberRow {
  id: number;
  email: string;
  name: string | null;
  status: SubscriberView['status'];
  createdAt: Date | string;
  confirmedAt: Date | string | null;
  unsubscribedAt: Date | string | null;
  bouncedAt: Date | string | null;
}

export const subscriberColumns = sql`id, email, name, status::text as status, created_at as "createdAt",
  confirmed_at as "confirmedAt", unsubscribed_at as "unsubscribedAt", bounced_at as "bouncedAt"`;

const iso = (v: Date | string | null): string | null => (v === null ? null : new Date(v).toISOString());

export function toView(r: SubscriberRow): SubscriberView {
  return {
    id: Number(r.id),
    email: r.email,
    name: r.name,
    status: r.status,
    createdAt: new Date(r.createdAt).toISOString(),
    confirmedAt: iso(r.confirmedAt),
    unsubscribedAt: iso(r.unsubscribedAt),
    bouncedAt: iso(r.bouncedAt),
  };
}

/** `%` and `_` are wildcards to LIKE: a search for them means the characters themselves. */
function containsPattern(q: string): string {
  return `%${q.toLowerCase().replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
}

/** The WHERE conditions of the list and export filters (each one served by an index). */
export function filterConditions(f: SubscriberFilters): SQL[] {
  const where: SQL[] = [];
  if (f.status) where.push(sql`status = ${f.status}::subscriber_status`);
  if (f.since) where.push(sql`created_at >= ${f.since.toISOString()}::timestamptz`);
  if (f.q) where.push(sql`lower(email) like ${containsPattern(f.q)}`);
  return where;
}

const and = (conditions: SQL[]) =>
  conditions.length ? sql`where ${sql.join(conditions, sql` and `)}` : sql``;

/**
 * A position in the list (newest first): the created_at of the last row shown, to the microsecond, and its id.
 * Opaque to clients; anything that does not decode is a bad cursor, never a database error.
 */
interface Cursor {
  at: string;
  id: number;
}

const CURSOR_AT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

export function encodeCursor(c: Cursor): string {
  return Buffer.from(`${c.at}|${c.id}`).toString('base64url');
}

export function decodeCursor(raw: string): Cursor {
  const [at, id] = Buffer.from(raw, 'base64url').toString('latin1').split('|');
  const n = Number(id);
  if (!at || !CURSOR_AT.test(at) || !/^\d{1,10}$/.test(id ?? '') || n > 2_147_483_647) {
    throw new AppError(
      'invalid_cursor',
      'The cursor is not one this service gave out. Pass nextCursor from the previous page unchanged, or leave it out to start again.',
    );
  }
  return { at, id: n };
}

/**
 * One page of subscribers, newest first. Keyset pagination on (created_at, id): each page costs the same at
 * row 1,000,000 as at row 1 (an index range scan of `limit` rows), and rows added meanwhile shift nothing.
 */
export async function listSubscribers(
  db: Db,
  query: ListQuery,
): Promise<{ subscribers: SubscriberView[]; nextCursor: string | null }> {
  const where = filterConditions(query);
  if (query.cursor) {
    const c = decodeCursor(query.cursor);
    where.push(sql`(created_at, id) < (${c.at}::timestamptz, ${c.id}::int)`);
  }
  const found = await rows<SubscriberRow & { cursorAt: string }>(
    db,
    sql`select ${subscriberColumns},
               to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as "cursorAt"
        from subscribers ${and(where)}
        order by created_at desc, id desc
        limit ${query.limit + 1}`,
  );
  const page = found.slice(0, query.limit);
  const last = page[page.length - 1];
  const more = found.length > query.limit && last;
  return {
    subscribers: page.map(toView),
    nextCursor: more ? encodeCursor({ at: last.cursorAt, id: Number(last.id) }) : null,
  };
}

/** Finds a subscriber by id or address; throws not_found. */
export async function findSubscriber(db: Db, ref: string): Promise<SubscriberView> {
  const byId = /^\d{1,10}$/.test(ref) && Number(ref) <= 2_147_483_647;
  const [found] = await rows<SubscriberRow>(
    db,
    byId
      ? sql`select ${subscriberColumns} from subscribers where id = ${Number(ref)}`
      : sql`select ${subscriberColumns} from subscribers where lower(email) = lower(${ref.trim()})`,
  );
  if (!found) {
    throw new AppError(
      'not_found',
      "No subscriber has that id or address. It may have been erased; search the list (the dashboard's Subscribers page, or GET /api/subscribers?q=…) to find it.",
    );
  }
  return toView(found);
}

/**
 * A subscriber, the consent on record with each of their requests, their history and the essays sent out to
 * them. The history joins the events the lifecycle
 * writes with the times kept on the subscriber (which also cover bounces, and rows from before events existed);
 * the same moment recorded both ways shows once. Essays come from the delivery ledger, looked up by its
 * primary key one essay at a time: no index on deliveries(subscriber_id) to slow the fan-out.
 */
export async function subscriberDetail(db: Db, ref: string): Promise<SubscriberDetail> {
  const subscriber = await findSubscriber(db, ref);
  type Event = SubscriberDetail['history'][number];
  const history = await rows<Omit<Event, 'at'> & { at: Date | string }>(
    db,
    sql`select h.kind, h.at, h.source, h.reason, e.slug as essay from (
          select kind::text as kind, at, source, reason, essay_id from subscriber_events
          where subscriber_id = ${subscriber.id}
          union all
          select k.kind, k.at, null, null, null from subscribers s,
            lateral (values ('subscribed', s.created_at), ('confirmed', s.confirmed_at),
                            ('unsubscribed', s.unsubscribed_at), ('bounced', s.bounced_at)) as k(kind, at)
          where s.id = ${subscriber.id} and k.at is not null
            and not exists (
              select 1 from subscriber_events x
              where x.subscriber_id = s.id and x.kind::text = k.kind and x.at = k.at
            )
        ) h
        left join essays e on e.id = h.essay_id
        order by h.at, array_position(
          array['subscribed','imported','confirmed','soft_bounced','complained','unsubscribed','bounced'], h.kind)`,
  );
  const essays = await rows<{
    slug: string;
    title: string;
    url: string;
    publishedAt: Date | string;
    delivery: SubscriberDetail['essays'][number]['delivery'];
    at: Date | string | null;
  }>(
    db,
    sql`select e.slug, e.title, e.url, e.published_at as "publishedAt", d.status::text as delivery,
               d.updated_at as at
        from essays e
        cross join lateral (
          select status, updated_at from deliveries
          where essay_id = e.id and subscriber_id = ${subscriber.id}
          limit 1
        ) d
        order by e.published_at desc, e.id desc`,
  );
  const consent = await rows<ConsentRow & { requestedAt: Date | string; confirmedAt: Date | string | null }>(
    db,
    sql`select ${consentColumns('c')}, c.confirmed_at as "confirmedAt"
        from confirmations c where c.subscriber_id = ${subscriber.id}
        order by c.requested_at, c.id`,
  );
  return {
    subscriber,
    consent: consent.map((r) => ({
      requestedAt: new Date(r.requestedAt).toISOString(),
      page: r.page,
      userAgent: r.userAgent,
      ip: r.ip,
      textVersion: r.textVersion,
      confirmation:
        r.confirmedAt === null
          ? null
          : {
              at: new Date(r.confirmedAt).toISOString(),
              page: r.confirmPage,
              userAgent: r.confirmUserAgent,
              ip: r.confirmIp,
              textVersion: r.confirmTextVersion,
            },
    })),
    history: history.map((h) => ({ ...h, at: new Date(h.at).toISOString() })),
    essays: essays.map((e) => ({
      ...e,
      publishedAt: new Date(e.publishedAt).toISOString(),
      at: iso(e.at),
    })),
  };
}

/**
 * Erases a subscriber (the right to be forgotten). First they stop getting mail, as an unsubscribe does:
 * their status leaves `confirmed`, and the erasure waits until no letter to them is on its way to SMTP.
 * Then, in one transaction: their ledger rows are folded into anonymous per-essay counts (a delivery not sent
 * yet counts as skipped, one in SMTP's hands as unknown, so no send-out stays "sending"), their row goes with
 * its confirmations and events, and so does their address's rate-limit counter. Send-out figures stay the
 * same; nothing left names or numbers the person.
 */
export async function eraseSubscriber(db: Db, ref: string): Promise<{ deliveries: number }> {
  const subscriber = await findSubscriber(db, ref);
  await db.execute(sql`
    update subscribers set status = 'unsubscribed', updated_at = now()
    where id = ${subscriber.id} and status in ('pending', 'confirmed')`);
  await stopLetters(db, [subscriber.id]);
  return db.transaction(async (t) => {
    const { deliveries } = await eraseRows(t as unknown as Db, [subscriber.id]);
    return { deliveries };
  });
}
