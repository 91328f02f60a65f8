import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { rows } from '../db/client.js';
import { sendoutProgress } from '../essays/service.js';
import type { StatsView } from './schemas.js';

type Growth = StatsView['growth'][number];

/** The list by status, from its running counts (subscriber_counts): a few rows, whatever its size. */
export async function subscriberCounts(db: Db): Promise<StatsView['subscribers']> {
  const byStatus = await rows<{ status: string; n: number }>(
    db,
    sql`select status::text as status, sum(count)::int as n from subscriber_counts group by status`,
  );
  const subscribers = { total: 0, pending: 0, confirmed: 0, unsubscribed: 0, bounced: 0 };
  for (const r of byStatus) {
    subscribers[r.status as keyof typeof subscribers] = Number(r.n);
    subscribers.total += Number(r.n);
  }
  return subscribers;
}

/**
 * The list by status, its growth per UTC day over `days`, how many complained, and the latest `sendouts`
 * send-outs' counts. Complaints come from the `complained` events (a complaint is also an unsubscription when
 * the reader was still subscribed, so it is counted on its own, not instead). The list's figures are read
 * from its running counts (subscriber_counts, subscriber_days: kept by a trigger on subscribers), the
 * complaints through the index on the events' kind: a few hundred rows, whatever the size of the list.
 */
export async function stats(db: Db, options: { days: number; sendouts: number }): Promise<StatsView> {
  const subscribers = await subscriberCounts(db);

  const today = new Date();
  today.setUTCHours(0, 0, 0, 0);
  const since = new Date(today.getTime() - (options.days - 1) * 86_400_000);
  const perDay = await rows<{ day: string; kind: keyof Omit<Growth, 'day'>; n: number }>(
    db,
    sql`select to_char(day, 'YYYY-MM-DD') as day, kind, sum(count)::int as n from subscriber_days
        where day >= ${since.toISOString().slice(0, 10)}::date
        group by day, kind
        union all
        select to_char(date_trunc('day', at at time zone 'UTC'), 'YYYY-MM-DD') as day, 'complained',
               count(*)::int
        from subscriber_events
        where kind = 'complained' and at >= ${since.toISOString()}::timestamptz
        group by 1`,
  );
  const [complainers] = await rows<{ n: number }>(
    db,
    sql`select count(distinct subscriber_id)::int as n from subscriber_events where kind = 'complained'`,
  );

  const growth: Growth[] = [];
  const index = new Map<string, Growth>();
  for (let d = since.getTime(); d <= today.getTime(); d += 86_400_000) {
    const day = new Date(d).toISOString().slice(0, 10);
    const entry = { day, subscribed: 0, confirmed: 0, unsubscribed: 0, bounced: 0, complained: 0 };
    growth.push(entry);
    index.set(day, entry);
  }
  for (const r of perDay) {
    const entry = index.get(r.day);
    if (entry) entry[r.kind] = Number(r.n);
  }

  const essays = await rows<{ id: number; slug: string; title: string; publishedAt: Date | string }>(
    db,
    sql`select id, slug, title, published_at as "publishedAt" from essays
        order by published_at desc, id desc limit ${options.sendouts}`,
  );
  const perEssay = await reportsBy(
    db,
    sql`select essay_id::text as key, kind::text as kind, count(*)::int as n from subscriber_events
        where essay_id in (select value::int from json_array_elements_text(${JSON.stringify(essays.map((e) => e.id))}::json))
          and kind in ('bounced', 'soft_bounced', 'complained')
        group by 1, 2`,
  );
  const sendouts: StatsView['sendouts'] = [];
  for (const e of essays) {
    sendouts.push({
      slug: e.slug,
      title: e.title,
      publishedAt: new Date(e.publishedAt).toISOString(),
      sendout: await sendoutProgress(db, Number(e.id)),
      reports: perEssay.get(String(e.id)) ?? noReports(),
    });
  }
  const perSource = await reportsBy(
    db,
    sql`select coalesce(source, 'unknown') as key, kind::text as kind, count(*)::int as n from subscriber_events
        where kind in ('bounced', 'soft_bounced', 'complained') and at >= ${since.toISOString()}::timestamptz
        group by 1, 2`,
  );
  const sources = [...perSource].map(([source, counts]) => ({ source, ...counts }));
  sources.sort((a, b) => a.source.localeCompare(b.source));
  return { subscribers, complained: Number(complainers?.n ?? 0), growth, sendouts, sources };
}

type Reports = StatsView['sendouts'][number]['reports'];

const noReports = (): Reports => ({ bounced: 0, softBounced: 0, complained: 0 });

/** Bounce and complaint events counted by a key (a send-out, a source). */
async function reportsBy(db: Db, query: ReturnType<typeof sql>): Promise<Map<string, Reports>> {
  const found = await rows<{ key: string; kind: string; n: number }>(db, query);
  const by = new Map<string, Reports>();
  for (const r of found) {
    const counts = by.get(r.key) ?? noReports();
    if (r.kind === 'bounced') counts.bounced += Number(r.n);
    else if (r.kind === 'soft_bounced') counts.softBounced += Number(r.n);
    else counts.complained += Number(r.n);
    by.set(r.key, counts);
  }
  return by;
}
